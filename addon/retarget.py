# SPDX-License-Identifier: GPL-3.0-or-later
"""Retargeting math: model joint positions <-> armature pose-bone rotations.

Pure Python (no bpy, no mathutils, no numpy) so it can be imported and unit-tested without
Blender. Matrices are row-major nested lists: ``[3][3]`` rotations and ``[4][4]`` affine
transforms; vectors are 3-lists. Every position/direction here is in **armature space**
(the armature object's local frame, Blender units) unless a docstring says otherwise.

Conventions follow Blender's pose evaluation (without constraints):
``pose[b] = pose[parent] @ inv(rest[parent]) @ rest[b] @ basis[b]``, where ``rest`` is
``Bone.matrix_local`` (bone head at the origin, bone Y axis along head->tail) and ``basis`` is
``PoseBone.matrix_basis`` (the bone's own location/rotation/scale channels).

A *role* is a body segment of the model skeleton (``ROLES``): the mapped bones of a role are
turned so that their Y axis points along ``to_joint - from_joint`` of the target pose (swing),
and, when a twist reference is available in both rest and target, so that the reference vector
(e.g. the hip line for the hips) keeps the side of the bone it had in the rest pose (twist).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterable

# ----------------------------------------------------------------------------- model skeleton
# Mirror of backend/skeleton.py (the add-on cannot import the backend); tests check they agree.
JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "spine", "thorax", "neck", "head", "left_shoulder", "left_elbow", "left_wrist",
    "right_shoulder", "right_elbow", "right_wrist", "right_toe", "left_toe", "left_hand", "right_hand",
)
PARENTS: tuple[int, ...] = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15, 3, 6, 13, 16)
JOINT_INDEX = {n: i for i, n in enumerate(JOINT_NAMES)}
#: Canonical bone lengths of the model skeleton (joint to parent), metres.
BONE_LENGTHS: tuple[float, ...] = (
    0.0, 0.1329, 0.4429, 0.4542, 0.1329, 0.4429, 0.4542, 0.2335, 0.2571, 0.1211, 0.1150,
    0.1510, 0.2789, 0.2517, 0.1510, 0.2789, 0.2517, 0.1628, 0.1628, 0.11875, 0.11875,
)
#: Thigh + shin of the model skeleton, metres (the yardstick between model and rig scale).
MODEL_LEG_LENGTH = BONE_LENGTHS[JOINT_INDEX["left_knee"]] + BONE_LENGTHS[JOINT_INDEX["left_ankle"]]


@dataclass(frozen=True)
class Role:
    """A body segment that rig bones can be mapped to.

    Attributes:
        name: role id (``"upper_arm.L"``...), the key of a bone mapping.
        from_joint, to_joint: model joints; mapped bones point from the first to the second.
        twist: candidate twist references, each a (joint_a, joint_b) pair whose vector
            ``b - a`` fixes the rotation about the bone axis; the first one that is not
            (nearly) parallel to the bone in both rest and target pose is used.
        head_joint: model joint located at the head of the role's first bone (or None).
        tail_joint: model joint located at the tail of the role's last bone (or None).
    """

    name: str
    from_joint: str
    to_joint: str
    twist: tuple[tuple[str, str], ...] = ()
    head_joint: str | None = None
    tail_joint: str | None = None


_HIPS = (("right_hip", "left_hip"),)
_SHOULDERS = (("right_shoulder", "left_shoulder"),)


def _side_roles(s: str, side: str) -> list[Role]:
    j = lambda n: f"{side}_{n}"  # noqa: E731
    return [
        Role(f"shoulder.{s}", "thorax", j("shoulder")),
        Role(f"upper_arm.{s}", j("shoulder"), j("elbow"), ((j("elbow"), j("wrist")),), head_joint=j("shoulder")),
        Role(f"forearm.{s}", j("elbow"), j("wrist"), ((j("wrist"), j("hand")),), head_joint=j("elbow")),
        Role(f"hand.{s}", j("wrist"), j("hand"), (), head_joint=j("wrist"), tail_joint=j("hand")),
        Role(f"thigh.{s}", j("hip"), j("knee"), ((j("knee"), j("ankle")), (j("ankle"), j("toe"))), head_joint=j("hip")),
        Role(f"shin.{s}", j("knee"), j("ankle"), ((j("ankle"), j("toe")),), head_joint=j("knee")),
        Role(f"foot.{s}", j("ankle"), j("toe"), ((j("knee"), j("ankle")),), head_joint=j("ankle"), tail_joint=j("toe")),
    ]


#: All roles, parents before children. Keys of a bone mapping are these names.
ROLES: tuple[Role, ...] = tuple(
    [
        Role("hips", "pelvis", "spine", _HIPS, head_joint="pelvis"),
        Role("spine", "pelvis", "spine", _HIPS, tail_joint="spine"),
        Role("chest", "spine", "thorax", _SHOULDERS, tail_joint="thorax"),
        Role("neck", "thorax", "neck", _SHOULDERS, tail_joint="neck"),
        Role("head", "neck", "head", _SHOULDERS, tail_joint="head"),
    ]
    + _side_roles("L", "left")
    + _side_roles("R", "right")
)
ROLE_BY_NAME = {r.name: r for r in ROLES}

# ----------------------------------------------------------------------------- small linear algebra
Vec = list
Mat = list


def sub(a, b):
    return [a[0] - b[0], a[1] - b[1], a[2] - b[2]]


def add(a, b):
    return [a[0] + b[0], a[1] + b[1], a[2] + b[2]]


def scale(a, s):
    return [a[0] * s, a[1] * s, a[2] * s]


def dot(a, b):
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def cross(a, b):
    return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]


def norm(a):
    return math.sqrt(dot(a, a))


def normalized(a, eps: float = 1e-12):
    """Unit vector along ``a``, or None if ``a`` is (nearly) zero."""
    n = norm(a)
    return None if n < eps else [a[0] / n, a[1] / n, a[2] / n]


def angle_between(a, b) -> float:
    """Angle between two 3-vectors, radians (0..pi)."""
    na, nb = norm(a), norm(b)
    if na < 1e-12 or nb < 1e-12:
        raise ValueError("angle_between: zero-length vector")
    return math.atan2(norm(cross(a, b)), dot(a, b))


def matmul(a: Mat, b: Mat) -> Mat:
    """Product of two square matrices of the same size (3x3 or 4x4)."""
    n = len(a)
    return [[sum(a[i][k] * b[k][j] for k in range(n)) for j in range(n)] for i in range(n)]


def matvec(a: Mat, v: Vec) -> Vec:
    """``a @ v`` for a 3x3 ``a``, or the affine transform of point ``v`` for a 4x4 ``a``."""
    if len(a) == 4:
        return [a[i][0] * v[0] + a[i][1] * v[1] + a[i][2] * v[2] + a[i][3] for i in range(3)]
    return [a[i][0] * v[0] + a[i][1] * v[1] + a[i][2] * v[2] for i in range(3)]


def transpose(a: Mat) -> Mat:
    return [list(r) for r in zip(*a)]


def identity(n: int = 3) -> Mat:
    return [[1.0 if i == j else 0.0 for j in range(n)] for i in range(n)]


def to3(m: Mat) -> Mat:
    return [list(m[i][:3]) for i in range(3)]


def to4(r: Mat, t: Vec | None = None) -> Mat:
    t = t or [0.0, 0.0, 0.0]
    return [list(r[0]) + [t[0]], list(r[1]) + [t[1]], list(r[2]) + [t[2]], [0.0, 0.0, 0.0, 1.0]]


def translation(m: Mat) -> Vec:
    return [m[0][3], m[1][3], m[2][3]]


def column(m: Mat, j: int) -> Vec:
    return [m[0][j], m[1][j], m[2][j]]


def rigid_inverse(m: Mat) -> Mat:
    """Inverse of a 4x4 rotation+translation matrix (no scale)."""
    rt = transpose(to3(m))
    return to4(rt, scale(matvec(rt, translation(m)), -1.0))


def orthonormalize(r: Mat) -> Mat:
    """Closest-ish rotation to ``r`` (Gram-Schmidt on the columns, Y first); removes scale."""
    y = normalized(column(r, 1)) or [0.0, 1.0, 0.0]
    z = cross(column(r, 0), y)
    z = normalized(z) or perpendicular(y)
    x = cross(y, z)
    return [[x[i], y[i], z[i]] for i in range(3)]


def perpendicular(v: Vec) -> Vec:
    """Some unit vector perpendicular to unit ``v``."""
    a = [1.0, 0.0, 0.0] if abs(v[0]) < 0.9 else [0.0, 1.0, 0.0]
    return normalized(cross(v, a))


def axis_angle_matrix(axis: Vec, angle: float) -> Mat:
    """Rotation matrix of ``angle`` radians about unit ``axis`` (right hand)."""
    x, y, z = axis
    c, s = math.cos(angle), math.sin(angle)
    t = 1.0 - c
    return [
        [t * x * x + c, t * x * y - s * z, t * x * z + s * y],
        [t * x * y + s * z, t * y * y + c, t * y * z - s * x],
        [t * x * z - s * y, t * y * z + s * x, t * z * z + c],
    ]


def swing(a: Vec, b: Vec) -> Mat:
    """The smallest rotation taking direction ``a`` to direction ``b`` (both non-zero)."""
    a, b = normalized(a), normalized(b)
    ax = cross(a, b)
    s, c = norm(ax), dot(a, b)
    if s < 1e-9:
        if c > 0:
            return identity()
        return axis_angle_matrix(perpendicular(a), math.pi)
    return axis_angle_matrix(scale(ax, 1.0 / s), math.atan2(s, c))


def frame(y: Vec, ref: Vec) -> Mat | None:
    """Orthonormal frame (columns x, y, z) with Y along ``y`` and X toward ``ref``'s part
    perpendicular to ``y``; None if ``ref`` is (nearly) parallel to ``y``."""
    y = normalized(y)
    if y is None:
        return None
    p = sub(ref, scale(y, dot(ref, y)))
    n = norm(p)
    if n < TWIST_MIN_SIN * max(norm(ref), 1e-12):
        return None
    x = scale(p, 1.0 / n)
    z = cross(x, y)
    return [[x[i], y[i], z[i]] for i in range(3)]


#: A twist reference is used only if at least this sine of the angle to the bone (~8.6 deg).
TWIST_MIN_SIN = 0.15


# --- rotation conversions (pure fallbacks; blender_rig uses mathutils for Euler compatibility)
def quaternion_from_matrix(r: Mat) -> list[float]:
    """Unit quaternion ``[w, x, y, z]`` of a rotation matrix (w >= 0)."""
    tr = r[0][0] + r[1][1] + r[2][2]
    if tr > 0:
        s = math.sqrt(tr + 1.0) * 2
        q = [0.25 * s, (r[2][1] - r[1][2]) / s, (r[0][2] - r[2][0]) / s, (r[1][0] - r[0][1]) / s]
    elif r[0][0] > r[1][1] and r[0][0] > r[2][2]:
        s = math.sqrt(1.0 + r[0][0] - r[1][1] - r[2][2]) * 2
        q = [(r[2][1] - r[1][2]) / s, 0.25 * s, (r[0][1] + r[1][0]) / s, (r[0][2] + r[2][0]) / s]
    elif r[1][1] > r[2][2]:
        s = math.sqrt(1.0 + r[1][1] - r[0][0] - r[2][2]) * 2
        q = [(r[0][2] - r[2][0]) / s, (r[0][1] + r[1][0]) / s, 0.25 * s, (r[1][2] + r[2][1]) / s]
    else:
        s = math.sqrt(1.0 + r[2][2] - r[0][0] - r[1][1]) * 2
        q = [(r[1][0] - r[0][1]) / s, (r[0][2] + r[2][0]) / s, (r[1][2] + r[2][1]) / s, 0.25 * s]
    n = math.sqrt(sum(c * c for c in q))
    q = [c / n for c in q]
    return q if q[0] >= 0 else [-c for c in q]


def matrix_from_quaternion(q) -> Mat:
    """Rotation matrix of quaternion ``[w, x, y, z]`` (normalised first)."""
    n = math.sqrt(sum(c * c for c in q))
    if n < 1e-12:
        raise ValueError("matrix_from_quaternion: zero quaternion")
    w, x, y, z = (c / n for c in q)
    return [
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ]


def _axis_rot(axis: str, a: float) -> Mat:
    c, s = math.cos(a), math.sin(a)
    if axis == "X":
        return [[1, 0, 0], [0, c, -s], [0, s, c]]
    if axis == "Y":
        return [[c, 0, s], [0, 1, 0], [-s, 0, c]]
    return [[c, -s, 0], [s, c, 0], [0, 0, 1]]


def matrix_from_euler(angles, order: str = "XYZ") -> Mat:
    """Rotation of Blender Euler ``angles`` (x, y, z radians) in ``order`` (e.g. ``"XYZ"``:
    X applied first, i.e. ``R = Rz @ Ry @ Rx``)."""
    idx = {"X": 0, "Y": 1, "Z": 2}
    r = identity()
    for ax in order:
        r = matmul(_axis_rot(ax, angles[idx[ax]]), r)
    return r


def euler_from_matrix(r: Mat, order: str = "XYZ") -> list[float]:
    """Euler angles ``[x, y, z]`` (radians) with ``matrix_from_euler(angles, order) == r``."""
    idx = {"X": 0, "Y": 1, "Z": 2}
    i, j, k = (idx[c] for c in order)
    # R = R_k(c) R_j(b) R_i(a); parity +1 for cyclic orders (XYZ, YZX, ZXY).
    par = 1.0 if (j - i) % 3 == 1 else -1.0
    sb = -par * r[k][i]
    sb = max(-1.0, min(1.0, sb))
    b = math.asin(sb)
    if abs(sb) < 1 - 1e-9:
        a = math.atan2(par * r[k][j], r[k][k])
        c = math.atan2(par * r[j][i], r[i][i])
    else:  # gimbal lock: put everything in a
        c = 0.0
        a = math.atan2(-par * r[j][k], r[j][j])
    out = [0.0, 0.0, 0.0]
    out[i], out[j], out[k] = a, b, c
    return out


# ----------------------------------------------------------------------------- rig description
@dataclass
class RestBone:
    """One bone of the armature at rest.

    Attributes:
        name: bone name.
        parent: parent bone name or None.
        matrix: ``[4][4]`` rest matrix in armature space (``Bone.matrix_local``): translation =
            head, column 1 = unit head->tail direction.
        length: bone length (armature units).
    """

    name: str
    parent: str | None
    matrix: Mat
    length: float

    @property
    def head(self) -> Vec:
        return translation(self.matrix)

    @property
    def tail(self) -> Vec:
        return add(self.head, scale(column(self.matrix, 1), self.length))


@dataclass
class Rig:
    """Armature rest pose (bones in hierarchy order, parents first) plus a role->bones mapping."""

    bones: dict[str, RestBone]
    mapping: dict[str, list[str]]
    order: list[str] = field(default_factory=list)

    def __post_init__(self):
        if not self.order:
            self.order = hierarchy_order(self.bones)
        missing = sorted({b for bs in self.mapping.values() for b in bs if b not in self.bones})
        if missing:
            raise KeyError(f"bone mapping names bones that are not in the armature: {missing}")
        unknown = sorted(r for r in self.mapping if r not in ROLE_BY_NAME)
        if unknown:
            raise KeyError(f"unknown role(s) {unknown}; valid roles: {', '.join(ROLE_BY_NAME)}")


def hierarchy_order(bones: dict[str, RestBone]) -> list[str]:
    """Bone names ordered so that every parent comes before its children."""
    out, seen = [], set()

    def visit(n):
        if n in seen:
            return
        p = bones[n].parent
        if p is not None and p in bones:
            visit(p)
        seen.add(n)
        out.append(n)

    for n in bones:
        visit(n)
    return out


def rest_joint_positions(rig: Rig) -> dict[str, Vec]:
    """Where the model joints sit on the rig at rest, armature space.

    Returns:
        joint name -> ``[x, y, z]`` for the joints that the mapping locates (role head/tail).
    """
    return _joints_from(rig, {n: b.matrix for n, b in rig.bones.items()})


def _joints_from(rig: Rig, mats: dict[str, Mat]) -> dict[str, Vec]:
    out: dict[str, Vec] = {}
    for role in ROLES:
        bones = rig.mapping.get(role.name) or []
        if not bones:
            continue
        if role.head_joint and role.head_joint not in out:
            out[role.head_joint] = translation(mats[bones[0]])
        if role.tail_joint:
            last = bones[-1]
            m = mats[last]
            out[role.tail_joint] = add(translation(m), scale(column(m, 1), rig.bones[last].length))
    # Joints found only as a role's from/to (e.g. thorax from the shoulders' parent): tail of
    # the bone that ends there, if mapped.
    return out


def rig_leg_length(rig: Rig) -> float:
    """Mean hip->knee->ankle length of the rig at rest (armature units).

    Raises:
        ValueError: if neither leg is mapped (thigh and shin roles).
    """
    j = rest_joint_positions(rig)
    legs = []
    for s in ("left", "right"):
        names = (f"{s}_hip", f"{s}_knee", f"{s}_ankle")
        if all(n in j for n in names):
            legs.append(norm(sub(j[names[1]], j[names[0]])) + norm(sub(j[names[2]], j[names[1]])))
    if not legs:
        raise ValueError("the bone mapping needs thigh and shin bones (roles thigh.L/R, shin.L/R) to measure the rig's scale")
    return sum(legs) / len(legs)


# ----------------------------------------------------------------------------- forward kinematics
def pose_matrices(rig: Rig, basis: dict[str, Mat]) -> dict[str, Mat]:
    """Armature-space pose matrices of every bone (Blender's rule, no constraints).

    Args:
        basis: bone name -> ``[4][4]`` local channels matrix (``PoseBone.matrix_basis``);
            missing bones are at rest (identity).
    Returns:
        bone name -> ``[4][4]`` armature-space matrix (``PoseBone.matrix``).
    """
    out: dict[str, Mat] = {}
    for n in rig.order:
        out[n] = matmul(_parent_rest_chain(rig, n, out), basis.get(n) or identity(4))
    return out


def _parent_rest_chain(rig: Rig, n: str, posed: dict[str, Mat]) -> Mat:
    """``pose[parent] @ inv(rest[parent]) @ rest[n]`` (or ``rest[n]`` for a root bone)."""
    b = rig.bones[n]
    if b.parent is None or b.parent not in posed:
        return b.matrix
    p = rig.bones[b.parent]
    return matmul(posed[b.parent], matmul(rigid_inverse(p.matrix), b.matrix))


def posed_joint_positions(rig: Rig, pose: dict[str, Mat]) -> dict[str, Vec]:
    """Model joints on the posed rig, armature space (see ``rest_joint_positions``)."""
    return _joints_from(rig, pose)


def bone_directions(joints: dict[str, Vec]) -> dict[str, Vec]:
    """Unit bone directions parent->joint (model skeleton) for joints whose parent is present."""
    out = {}
    for name, p in joints.items():
        par = PARENTS[JOINT_INDEX[name]]
        if par < 0 or JOINT_NAMES[par] not in joints:
            continue
        d = normalized(sub(p, joints[JOINT_NAMES[par]]))
        if d is not None:
            out[name] = d
    return out


# ----------------------------------------------------------------------------- solving a pose
Constrain = Callable[[str, Mat, "Vec | None"], "tuple[Mat, Vec | None]"]


@dataclass
class BoneResult:
    """New local channels for one bone: ``rotation`` ``[3][3]`` and ``location`` (or None = keep)."""

    rotation: Mat
    location: Vec | None = None


def solve_pose(
    rig: Rig,
    targets: dict[str, Vec],
    basis: dict[str, Mat] | None = None,
    root_position: Vec | None = None,
    skip: Iterable[str] = (),
    constrain: Constrain | None = None,
    parent_chain: Callable[[str, dict], Mat] | None = None,
) -> dict[str, BoneResult]:
    """Local rotations that make the mapped bones follow a target pose.

    Walks the hierarchy parents first. Each mapped bone is swung so its Y axis points along
    its role's ``to_joint - from_joint``; if a twist reference (``Role.twist``) is usable in
    rest and target the bone's rest frame is carried onto the target frame (swing + twist),
    else only the swing is applied to the orientation inherited from its parent. Unmapped and
    skipped bones keep their current local channels.

    Args:
        rig: rest pose and mapping.
        targets: model joint name -> position, armature space (any scale: only directions
            are used, plus ``root_position``).
        basis: current local channels, bone -> ``[4][4]`` (identity where missing).
        root_position: if given, armature-space position for the head of the first mapped
            bone of the ``hips`` role (else ``spine``); that bone gets a location.
        skip: bones whose channels must not change (e.g. known bones during completion).
        constrain: called as ``constrain(bone, rotation3x3, location_or_None)`` for each
            solved bone; returns the channels actually stored (rotation mode, locks), which
            the walk then uses for the children.
        parent_chain: ``parent_chain(bone, posed)`` -> ``[4][4]`` armature-space matrix the
            bone would have with identity channels; default: Blender's rule from ``posed``
            parents. A live rig (constraints) passes its evaluated parent matrices instead.

    Bones whose rest Y axis is far (> 45 deg) from their role's rest segment (e.g. a
    horizontal root control mapped to the hips) are turned as a rigid frame instead: the
    rest frame of the segment and twist reference is carried onto the target frame.
    Returns:
        bone name -> ``BoneResult`` for every bone that was solved.
    Raises:
        ValueError: if no mapped bone has both of its role's joints in ``targets``.
    """
    basis = {k: v for k, v in (basis or {}).items()}
    skip = set(skip)
    rest_j = rest_joint_positions(rig)
    role_of: dict[str, Role] = {}
    for role in ROLES:
        for b in rig.mapping.get(role.name) or []:
            role_of.setdefault(b, role)
    root_bone = None
    if root_position is not None:
        for rn in ("hips", "spine"):
            if rig.mapping.get(rn):
                root_bone = rig.mapping[rn][0]
                break
    chain_of = parent_chain or (lambda name, posed_: _parent_rest_chain(rig, name, posed_))
    solved: dict[str, BoneResult] = {}
    posed: dict[str, Mat] = {}
    for n in rig.order:
        cur = basis.get(n) or identity(4)
        role = role_of.get(n)
        if role is None or n in skip or role.from_joint not in targets or role.to_joint not in targets:
            posed[n] = matmul(chain_of(n, posed), cur)
            continue
        d = sub(targets[role.to_joint], targets[role.from_joint])
        if normalized(d) is None:
            posed[n] = matmul(chain_of(n, posed), cur)
            continue
        # Current local location and scale are kept; rotation replaced.
        loc = translation(cur)
        scl = [norm(column(cur, i)) for i in range(3)]
        pre = chain_of(n, posed)
        r0 = orthonormalize(to3(pre))
        rest_rot = to3(rig.bones[n].matrix)
        rest_axis = column(rest_rot, 1)
        if role.from_joint in rest_j and role.to_joint in rest_j:
            seg = sub(rest_j[role.to_joint], rest_j[role.from_joint])
            if normalized(seg) is not None and angle_between(seg, rest_axis) > math.radians(45):
                rest_axis = seg  # rigid-frame mode (root controls)
        desired = None
        for a, b in role.twist:
            if a in targets and b in targets and a in rest_j and b in rest_j:
                f_rest = frame(rest_axis, sub(rest_j[b], rest_j[a]))
                f_tgt = frame(d, sub(targets[b], targets[a]))
                if f_rest is not None and f_tgt is not None:
                    desired = matmul(matmul(f_tgt, transpose(f_rest)), rest_rot)
                    break
        if desired is None:
            desired = matmul(swing(column(r0, 1), d), r0)
        rot = orthonormalize(matmul(transpose(r0), desired))
        new_loc = None
        if n == root_bone:
            new_loc = matvec(transpose(r0), sub(root_position, translation(pre)))
        if constrain is not None:
            rot, new_loc = constrain(n, rot, new_loc)
        solved[n] = BoneResult(rot, new_loc)
        final_loc = new_loc if new_loc is not None else loc
        local = to4([[rot[i][j] * scl[j] for j in range(3)] for i in range(3)], final_loc)
        posed[n] = matmul(pre, local)
    if not solved and not skip:
        raise ValueError(
            "no mapped bone could be posed: the target pose lacks the joints of every mapped role "
            f"(targets: {sorted(targets)}; mapped roles: {sorted(k for k, v in rig.mapping.items() if v)})"
        )
    return solved


def segment_rotation(role: Role, old: dict[str, Vec], new: dict[str, Vec]) -> Mat | None:
    """Rotation taking a role's segment in pose ``old`` to the same segment in pose ``new``.

    The segment is ``to_joint - from_joint``; with the role's first usable twist reference in
    both poses the whole frame is carried (swing + twist), else only the smallest swing. Used by
    Pose assist to turn bones by how the model pose changed between two answers. ``old``,
    ``new``: joint -> position (same axes). Returns ``[3][3]``, or None if the role's joints are
    missing or degenerate.
    """
    if not all(j in old and j in new for j in (role.from_joint, role.to_joint)):
        return None
    a, b = sub(old[role.to_joint], old[role.from_joint]), sub(new[role.to_joint], new[role.from_joint])
    if normalized(a) is None or normalized(b) is None:
        return None
    for ta, tb in role.twist:
        if all(j in old and j in new for j in (ta, tb)):
            f_old, f_new = frame(a, sub(old[tb], old[ta])), frame(b, sub(new[tb], new[ta]))
            if f_old is not None and f_new is not None:
                return matmul(f_new, transpose(f_old))
    return swing(a, b)


def place_on_rig(
    joints: dict[str, Vec],
    rig: Rig,
    mode: str = "GROUND",
    anchor: Vec | None = None,
) -> tuple[dict[str, Vec], Vec | None]:
    """Scale a model-scale pose to the rig's size and choose where the root goes.

    Args:
        joints: model joint -> position (armature-space axes, model scale, metres-like).
        mode: ``"GROUND"``: pelvis above the rest pelvis, lowest foot joint at the rest
            lowest foot height; ``"ANCHOR"``: pelvis at ``anchor`` (armature space);
            ``"KEEP"``: no root location (the root keeps its channels).
    Returns:
        (joints scaled by rig_leg / model_leg about the pelvis, root position or None).
    """
    s = rig_leg_length(rig) / MODEL_LEG_LENGTH
    pelvis = joints.get("pelvis", [0.0, 0.0, 0.0])
    scaled = {k: add(pelvis, scale(sub(v, pelvis), s)) for k, v in joints.items()}
    if mode == "KEEP":
        return scaled, None
    if mode == "ANCHOR":
        if anchor is None:
            raise ValueError("place_on_rig: mode ANCHOR needs an anchor position")
        shift = sub(anchor, pelvis)
        return {k: add(v, shift) for k, v in scaled.items()}, list(anchor)
    if mode != "GROUND":
        raise ValueError(f"place_on_rig: unknown mode {mode!r}; use GROUND, ANCHOR or KEEP")
    rest = rest_joint_positions(rig)
    feet = ("left_ankle", "right_ankle", "left_toe", "right_toe")
    rest_floor = min((rest[f][2] for f in feet if f in rest), default=0.0)
    pose_floor = min((scaled[f][2] for f in feet if f in scaled), default=None)
    rest_pelvis = rest.get("pelvis", [0.0, 0.0, 0.0])
    shift = [rest_pelvis[0] - pelvis[0], rest_pelvis[1] - pelvis[1], 0.0]
    shift[2] = (rest_floor - pose_floor) if pose_floor is not None else rest_pelvis[2] - pelvis[2]
    moved = {k: add(v, shift) for k, v in scaled.items()}
    return moved, moved.get("pelvis")
