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

from .linalg import (
    Mat,
    Vec,
    add,
    angle_between,
    column,
    frame,
    identity,
    matmul,
    matvec,
    norm,
    normalized,
    orthonormalize,
    rigid_inverse,
    scale,
    sub,
    swing,
    to3,
    to4,
    translation,
    transpose,
)
from .skeleton import (
    JOINT_INDEX,
    JOINT_NAMES,
    MODEL_LEG_LENGTH,
    PARENTS,
    ROLE_BY_NAME,
    ROLES,
    Role,
)


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

    #: ``inv(rest[parent]) @ rest[bone]`` per bone with a parent (rest only: computed once, see
    #: :meth:`rest_offset`).
    _offsets: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        if not self.order:
            self.order = hierarchy_order(self.bones)
        missing = sorted({b for bs in self.mapping.values() for b in bs if b not in self.bones})
        if missing:
            raise KeyError(f"bone mapping names bones that are not in the armature: {missing}")
        unknown = sorted(r for r in self.mapping if r not in ROLE_BY_NAME)
        if unknown:
            raise KeyError(f"unknown role(s) {unknown}; valid roles: {', '.join(ROLE_BY_NAME)}")

    def rest_offset(self, name: str) -> Mat:
        """``inv(rest[parent]) @ rest[name]`` (``[4][4]``) of a bone with a parent (cached)."""
        off = self._offsets.get(name)
        if off is None:
            b = self.bones[name]
            off = self._offsets[name] = matmul(rigid_inverse(self.bones[b.parent].matrix), b.matrix)
        return off

    def posed_order(self) -> list[str]:
        """:attr:`order` restricted to the mapped bones and their ancestors: the bones whose posed
        matrix the solve needs (a face or finger bone with no mapped bone below it is not)."""
        need: set[str] = set()
        for bs in self.mapping.values():
            for n in bs:
                while n is not None and n in self.bones and n not in need:
                    need.add(n)
                    n = self.bones[n].parent
        return [n for n in self.order if n in need]


_ARM_ROLES = ("shoulder", "upper_arm", "forearm", "hand")


def update_levels(rig: Rig) -> dict[str, int] | None:
    """A level per mapped bone such that a bone can move only bones of higher levels: what a live
    rig must re-evaluate between (:func:`solve_pose` on evaluated matrices may then set every bone
    of one level before one evaluation). Bone B is above bone A when A's role ends at or above the
    joint where B's role starts in the model skeleton, when A's role starts at the pelvis (the
    root segments move everything) or at B's role's start, earlier in ``ROLES``, when
    A comes before B in the same role's list, when A is an ancestor of B in the rig, or when A is
    the neck, the head or a shoulder and B an arm of either side (on a generated Rigify rig these
    move mechanism bones the arms hang from: measured). None when these disagree (a cycle: bones
    must then be evaluated one by one). Pure math.
    """
    def ancestors(j: str) -> set[str]:  # the joint and those above it
        out, i = set(), JOINT_INDEX[j]
        while i >= 0:
            out.add(JOINT_NAMES[i])
            i = PARENTS[i]
        return out

    mapped = [(ri, k, b, r) for ri, r in enumerate(ROLES) for k, b in enumerate(rig.mapping.get(r.name) or [])
              if b in rig.bones]
    names = {b for _, _, b, _ in mapped}
    above: dict[str, set[str]] = {b: set() for b in names}  # bone -> bones that can move it
    for ri, k, b, r in mapped:
        up = ancestors(r.from_joint)
        for ra, ka, a, q in mapped:
            earlier = (ra, ka) < (ri, k)
            if a != b and (q.to_joint in up or (earlier and q.from_joint in ("pelvis", r.from_joint))
                           or (q.name in ("neck", "head") and r.name.split(".")[0] in _ARM_ROLES)
                           or (q.name.startswith("shoulder.") and r.name.split(".")[0] in _ARM_ROLES[1:])):
                above[b].add(a)
        n = rig.bones[b].parent
        while n is not None and n in rig.bones:
            if n in names:
                above[b].add(n)
            n = rig.bones[n].parent
    level = dict.fromkeys(names, 0)
    for _ in range(len(names) + 1):  # longest path; more rounds than bones: a cycle
        changed = False
        for b, ups in above.items():
            lv = max((level[a] + 1 for a in ups), default=0)
            if lv != level[b]:
                level[b], changed = lv, True
        if not changed:
            return level
    return None


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
    return matmul(posed[b.parent], rig.rest_offset(n))


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
    order: list[str] | None = None,
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
        order: the bones to walk, in this order (default :meth:`Rig.posed_order`; with the
            default ``parent_chain`` parents must come before their children).

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
    for n in order or rig.posed_order():  # the other bones are neither solved nor parents of solved ones
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


def chain_root_positions(known: dict, dirs: dict) -> dict:
    """The known positions a completion needs from a rig of other proportions: those of joints
    whose parent joint is not known; a joint below a known parent is given by its direction.

    A rig's proportions differ from the model's (bones 0.8-1.25x after the leg-length rescale), so
    its joint positions away from the pelvis contradict the model skeleton; pinning them distorts
    the completed body. Measured with ``posediff eval complete --known directions`` (10 S8 frames,
    best-of-20 / best-of-1 of the unknown joints, mm; legs / arms / one side unknown): positions
    and directions 78.9 / 130.1, 122.3 / 298.1, 84.8 / 150.9; chain roots and directions 68.6 /
    109.2, 124.2 / 266.6, 77.0 / 125.2 (the canonical skeleton's own positions: 65.5 / 103.7,
    102.6 / 257.6, 75.0 / 130.1). The keyed bones keep their rotations through the add-on's pins.
    """
    parents = dict(zip(JOINT_NAMES, (JOINT_NAMES[p] if p >= 0 else None for p in PARENTS)))
    return {j: v for j, v in known.items() if not (j in dirs and parents.get(j) in known)}
