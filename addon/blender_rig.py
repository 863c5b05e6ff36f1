# SPDX-License-Identifier: GPL-3.0-or-later
"""The bpy side of retargeting: read an armature's rest pose and mapping, write pose-bone
channels and keyframes, read posed joints back.

World-frame joint positions (Z up, metres, model scale) go in; the armature object's
transform (e.g. a Mixamo FBX import rotated to Y up and scaled 0.01) is taken into account.
Pose bones keep their rotation mode (quaternion, any Euler order, axis-angle) and locked
channels; keys go on the bone's own channels, grouped under the bone's name.
"""

from __future__ import annotations

import json
import math

import bpy
from bpy_extras import anim_utils
from mathutils import Matrix, Quaternion, Vector

from . import linalg as la
from . import placement as pl
from . import retarget as rt
from . import skeleton as sk
from .rig_presets import detect_mapping, mapping_problems

MAPPING_PROP = "posediff_mapping"


class RigError(ValueError):
    """The armature cannot be posed as asked (message says why and what to do)."""


# ----------------------------------------------------------------------------- mapping
def get_mapping(ob) -> dict[str, list[str]]:
    """The bone mapping saved on the armature (custom property), else one auto-detected."""
    raw = ob.get(MAPPING_PROP) if ob is not None else None
    if raw:
        try:
            m = json.loads(raw)
            return {k: [b for b in v if b] for k, v in m.items() if v}
        except (ValueError, AttributeError):
            pass
    return detect_mapping([b.name for b in ob.data.bones])


def set_mapping(ob, mapping: dict[str, list[str]]) -> None:
    """Save ``mapping`` on the armature object (custom property ``posediff_mapping``, JSON)."""
    ob[MAPPING_PROP] = json.dumps({k: list(v) for k, v in mapping.items() if v})


def check_armature(ob) -> None:
    """Raise ``RigError`` unless ``ob`` is an armature whose mapping is usable."""
    if ob is None or ob.type != "ARMATURE":
        raise RigError("select an armature (the rig to pose) and make it the active object")
    probs = mapping_problems(get_mapping(ob), [b.name for b in ob.data.bones])
    if probs:
        raise RigError(f"bone mapping of '{ob.name}': " + "; ".join(probs) + " (PoseDiff panel > Bone mapping)")
    check_transforms(ob)


def _finite(*vectors) -> bool:
    return all(math.isfinite(x) for v in vectors for x in v)


def check_transforms(ob) -> None:
    """Raise ``RigError`` when the armature cannot be read or keyed as it is: in Edit Mode (its
    rest pose is not saved yet), a zero or non-finite object transform (its world matrix has no
    inverse), or pose bones with a NaN/infinite location, rotation or scale (they would be sent
    as joints or kept in the keys); the message names the object or bones and how to fix them."""
    if ob.mode == "EDIT":
        raise RigError(f"'{ob.name}' is in Edit Mode: leave it (Tab) so its rest pose is saved, then try again")
    mw = ob.matrix_world
    if not _finite(*mw):
        raise RigError(f"the transform of '{ob.name}' is not finite (NaN or infinity): set its Location, Rotation "
                       "and Scale (sidebar N > Item) or of its parent, then try again")
    if abs(mw.to_3x3().determinant()) < 1e-12:
        scale = ", ".join(f"{x:g}" for x in mw.to_scale())
        raise RigError(f"'{ob.name}' is scaled to zero on an axis (world scale {scale}): give it a non-zero Scale "
                       "(sidebar N > Item), then try again")
    bad = [pb.name for pb in ob.pose.bones
           if not _finite(pb.location, pb.rotation_quaternion, pb.rotation_euler, pb.rotation_axis_angle, pb.scale)]
    if bad:
        names = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise RigError(f"pose bone(s) {names} of '{ob.name}' have a NaN or infinite location, rotation or scale: "
                       "in Pose Mode select them and clear the transform (Alt+G, Alt+R, Alt+S) or fix their keys, "
                       "then try again")


def _lists(m) -> list:
    return [list(r) for r in m]


def rig_of(ob) -> rt.Rig:
    """``retarget.Rig`` of an armature object (rest matrices in armature space)."""
    check_armature(ob)
    bones = {
        b.name: rt.RestBone(b.name, b.parent.name if b.parent else None, _lists(b.matrix_local), b.length)
        for b in ob.data.bones
    }
    return rt.Rig(bones, get_mapping(ob))


# ----------------------------------------------------------------------------- frames
def world_pose_to_armature(ob, joints_world: dict) -> dict:
    """World directions -> armature axes (rotation only: scale and placement are handled by
    ``retarget.place_on_rig``)."""
    r = ob.matrix_world.to_3x3().normalized().transposed()
    return {k: list(r @ Vector(v)) for k, v in joints_world.items()}


def world_to_armature_point(ob, p) -> list:
    return list(ob.matrix_world.inverted() @ Vector(p))


def armature_units_per_metre(ob) -> float:
    """How many armature-space units one world metre is (1 / object scale)."""
    s = ob.matrix_world.to_scale()
    return 3.0 / (abs(s.x) + abs(s.y) + abs(s.z))


def rig_leg_world(ob, rig: rt.Rig | None = None) -> float:
    """Rig's mean thigh+shin length in world metres."""
    rig = rig or rig_of(ob)
    return rt.rig_leg_length(rig) / armature_units_per_metre(ob)


# ----------------------------------------------------------------------------- writing channels
def _rot_paths(pb) -> str:
    return {"QUATERNION": "rotation_quaternion", "AXIS_ANGLE": "rotation_axis_angle"}.get(
        pb.rotation_mode, "rotation_euler")


def _store(pb, rot3, loc) -> tuple[list, list | None]:
    """Write a rotation (and location) into ``pb``'s own channels, respecting rotation mode and
    locks; returns what was actually stored (rotation 3x3, location)."""
    m = Matrix(rot3)
    mode = pb.rotation_mode
    lock = tuple(pb.lock_rotation)
    if mode == "QUATERNION":
        q = m.to_quaternion()
        cur = pb.rotation_quaternion.copy()
        if q.dot(cur) < 0:
            q.negate()
        vals = [q.w, q.x, q.y, q.z]
        if pb.lock_rotations_4d and pb.lock_rotation_w:
            vals[0] = cur.w
        for i in range(3):
            if lock[i]:
                vals[i + 1] = cur[i + 1]
        pb.rotation_quaternion = Quaternion(vals).normalized() if any(lock) else Quaternion(vals)
    elif mode == "AXIS_ANGLE":
        axis, angle = m.to_quaternion().to_axis_angle()
        vals = [angle, axis.x, axis.y, axis.z]
        cur = list(pb.rotation_axis_angle)
        if pb.lock_rotations_4d and pb.lock_rotation_w:
            vals[0] = cur[0]
        for i in range(3):
            if lock[i]:
                vals[i + 1] = cur[i + 1]
        pb.rotation_axis_angle = vals
    else:
        e = m.to_euler(mode, pb.rotation_euler)
        for i in range(3):
            if not lock[i]:
                pb.rotation_euler[i] = e[i]
    if loc is not None:
        for i in range(3):
            if not pb.lock_location[i]:
                pb.location[i] = loc[i]
    basis = pb.matrix_basis
    return _lists(basis.to_3x3().normalized()), (list(basis.translation) if loc is not None else None)


def plain_fk(ob) -> bool:
    """Whether every pose bone's matrix follows from its parent's by Blender's plain rule
    (``pose[parent] @ inv(rest[parent]) @ rest[bone] @ basis``): no bone constraints, no drivers on
    the pose or the armature, every bone inheriting rotation and full scale with local location.
    Such a rig (a metarig, a Mixamo or VRM import) can be posed without evaluating the depsgraph
    after each bone (:func:`apply_pose`)."""
    for owner in (ob, ob.data):
        ad = owner.animation_data
        if ad is not None and len(ad.drivers):
            return False
    for pb in ob.pose.bones:
        b = pb.bone
        if pb.constraints or not b.use_inherit_rotation or b.inherit_scale != "FULL" or not b.use_local_location:
            return False
    return True


def apply_pose(ob, joints_world: dict, placement: str = "GROUND", anchor_world=None,
               skip=(), keyframe: bool = False, frame: int | None = None, pins: dict | None = None,
               rig: rt.Rig | None = None, batch_updates: bool = False) -> list[str]:
    """Pose the armature after model joints given in the world frame.

    One rule (``placement`` module): pinned bones stay where they are in the world; the root
    and the other bones move; unpinned poses stand on the rig's floor in world Z (whatever the
    armature object's axes and scale, e.g. a Y-up Mixamo FBX import).

    Args:
        ob: armature object (mapping on it or auto-detected).
        joints_world: model joint -> ``[x, y, z]`` world frame (Z up), metres, model scale,
            any placement (only directions, and the pelvis for placement, are used).
        placement: ``"GROUND"`` (pelvis over where the rig stands now, lowest foot joint on the
            rig's floor: the rest pose's lowest foot joint, world Z), ``"HOLD"`` (pelvis where it
            is now: keeps the current root height), ``"ANCHOR"`` (pelvis at ``anchor_world``,
            world point), ``"ANCHOR_GROUND"`` (anchored, and with ``pins`` the unpinned feet reach
            down to the floor by leg IK) or ``"KEEP"`` (no root location).
        skip: bone names whose channels must not change.
        keyframe: insert keys on the changed channels at ``frame`` (default: current frame).
        pins: bone -> ``[4][4]`` armature-space pose matrix (``PoseBone.matrix``) the bone must
            keep (keyed/fixed bones); limb chains are re-solved so the pinned joints are reached
            with the rig's own bone lengths (``placement.pin_targets``).
        rig: ``rig_of(ob)``, when the caller poses the same armature many times (a clip's frames).
        batch_updates: on a rig with constraints, evaluate the depsgraph once per level of
            ``retarget.update_levels`` instead of after every bone (check it with
            :func:`batched_updates_agree` first; ignored with pins or without levels).
    Returns:
        names of the bones whose channels were written.
    Raises:
        RigError: not an armature / unusable mapping / pose without the mapped joints.

    A rig with constraints is solved bone by bone on its evaluated matrices (the depsgraph updated
    after each bone, as a child's parent may be moved by a constraint); a :func:`plain_fk` rig
    without pins is solved on the same rule computed here, with one update per solve (a clip's
    frame: 24 -> 12 ms measured on the metarig).
    """
    rig = rig or rig_of(ob)
    pins = {k: v for k, v in (pins or {}).items() if k in ob.pose.bones}
    arm = world_pose_to_armature(ob, joints_world)
    pbs = ob.pose.bones
    vl = bpy.context.view_layer
    vl.update()
    mode, anchor = placement, None
    if placement in ("GROUND", "HOLD"):
        now = posed_joints_world(ob)
        here = now.get("pelvis") or list(ob.matrix_world @ Vector(rt.rest_joint_positions(rig).get("pelvis", [0, 0, 0])))
        mode, anchor = "ANCHOR", world_to_armature_point(ob, here)
    elif placement in ("ANCHOR", "ANCHOR_GROUND"):
        mode = "ANCHOR"
        if anchor_world is None:
            raise RigError("placement ANCHOR needs an anchor position")
        anchor = world_to_armature_point(ob, anchor_world)
    elif placement != "KEEP":
        raise RigError(f"unknown placement {placement!r}; use GROUND, HOLD, ANCHOR, ANCHOR_GROUND or KEEP")
    ground_legs = placement == "ANCHOR_GROUND"
    try:
        targets, root = rt.place_on_rig(arm, rig, mode, anchor)
    except ValueError as e:
        raise RigError(str(e)) from None
    basis = {pb.name: _lists(pb.matrix_basis) for pb in pbs}

    def parent_chain(name, _posed):
        pb = pbs[name]
        b = pb.bone
        if pb.parent is None:
            return _lists(b.matrix_local)
        return _lists(pb.parent.matrix @ b.parent.matrix_local.inverted() @ b.matrix_local)

    def constrain(name, rot, loc):
        if name in pins:
            pbs[name].matrix = Matrix(pins[name])
            vl.update()
            m = pbs[name].matrix_basis
            return _lists(m.to_3x3().normalized()), list(m.translation)
        out = _store(pbs[name], rot, loc)
        vl.update()  # children read their parent's evaluated matrix (constraints included)
        return out

    fast = not pins and plain_fk(ob)
    # a rig with constraints is walked in the order the bones move each other (a Rigify arm hangs
    # from mechanism bones its shoulder moves, though the shoulder is not its parent)
    levels = None if fast else rt.update_levels(rig)
    order = None
    if levels is not None:
        pos = {n: i for i, n in enumerate(rig.order)}
        order = sorted(levels, key=lambda n: (levels[n], pos[n]))
    if fast:
        def solve(tg, rp):
            out = rt.solve_pose(rig, tg, basis, rp, skip, lambda name, rot, loc: _store(pbs[name], rot, loc))
            vl.update()
            return out
    elif batch_updates and not pins and levels is not None:
        written: list[int] = []  # levels of the bones set since the last evaluation

        def chain(name, posed):
            if written and min(written) < levels[name]:
                vl.update()
                written.clear()
            return parent_chain(name, posed)

        def store(name, rot, loc):
            written.append(levels[name])
            return _store(pbs[name], rot, loc)

        def solve(tg, rp):
            written.clear()
            out = rt.solve_pose(rig, tg, basis, rp, skip, store, chain, order=order)
            vl.update()
            return out
    else:
        def solve(tg, rp):
            return rt.solve_pose(rig, tg, basis, rp, skip, constrain, parent_chain, order=order)

    vl.update()
    try:
        solved = solve(targets, root)
        if pins:
            goals = _pinned_joints(rig, pins)
            if "pelvis" in goals and root is not None:
                root = goals["pelvis"]
                solved = solve(targets, root)
            want = {k: v for k, v in goals.items() if k != "pelvis"}
            if "pelvis" not in goals and root is not None:
                # the root moves so that the pinned limb ends are within reach
                d = pl.reach_shift(_posed_arm(ob, rig), want)
                if la.norm(d) > 1e-9:
                    root = la.add(root, d)
                    solved = solve(targets, root)
            targets, root, solved = _reach_pins(ob, rig, want, targets, root, solved, solve)
            if ground_legs and not any(f in want for f in pl.FEET):
                # unpinned feet go to the floor: the legs reach down (or up) to it, the pins stay
                dz = pl.ground_shift(_feet_world_z(ob, rig), floor_height(ob, rig))
                if abs(dz) > 1e-4:
                    up = list(ob.matrix_world.inverted().to_3x3() @ Vector((0.0, 0.0, dz)))
                    posed = _posed_arm(ob, rig)
                    floor_goals = {f: la.add(posed[f], up) for f in ("left_ankle", "right_ankle") if f in posed}
                    targets, root, solved = _reach_pins(ob, rig, {**want, **floor_goals}, targets, root, solved, solve)
        elif placement == "GROUND" and root is not None:
            # The rig's proportions differ from the model's: put its own lowest foot joint on
            # its floor, in world Z (a second pass only moves the root).
            dz = pl.ground_shift(_feet_world_z(ob, rig), floor_height(ob, rig))
            if abs(dz) > 1e-6:
                up = ob.matrix_world.inverted().to_3x3() @ Vector((0.0, 0.0, dz))
                root = [root[0] + up.x, root[1] + up.y, root[2] + up.z]
                solved = solve(targets, root)
    except ValueError as e:
        raise RigError(str(e)) from None
    if keyframe:
        f = bpy.context.scene.frame_current if frame is None else frame
        for name, res in solved.items():
            pb = pbs[name]
            pb.keyframe_insert(_rot_paths(pb), frame=f, group=name)
            if res.location is not None or name in pins:
                pb.keyframe_insert("location", frame=f, group=name)
    return list(solved)


def batched_updates_agree(ob, joints_world: dict, anchor_world, rig: rt.Rig, tol: float = 1e-5) -> bool:
    """Whether :func:`apply_pose` with ``batch_updates`` poses ``ob`` as the bone-by-bone solve
    does for this pose (``ANCHOR`` placement; every pose bone's channels within ``tol``); the pose
    bones are left as they were. A clip is keyed with batched updates only when its first frame
    agrees (a rig whose constraints couple bones across levels then keeps the exact solve)."""
    if plain_fk(ob) or rt.update_levels(rig) is None:
        return False
    pbs = ob.pose.bones
    before = {pb.name: pb.matrix_basis.copy() for pb in pbs}

    def pose(batch: bool) -> dict:
        for pb in pbs:
            pb.matrix_basis = before[pb.name]
        apply_pose(ob, joints_world, placement="ANCHOR", anchor_world=anchor_world, rig=rig, batch_updates=batch)
        return {pb.name: pb.matrix_basis.copy() for pb in pbs}

    try:
        exact, batched = pose(False), pose(True)
    finally:
        for pb in pbs:
            pb.matrix_basis = before[pb.name]
        bpy.context.view_layer.update()
    return all(max(abs(a - b) for ra, rb in zip(exact[n], batched[n]) for a, b in zip(ra, rb)) <= tol for n in exact)


_CHAIN_BASES = ("left_hip", "right_hip", "left_shoulder", "right_shoulder")


def _reach_pins(ob, rig, want: dict, targets: dict, root, solved, solve, passes: int = 6):
    """Re-solve until the posed rig's joints reach ``want`` (armature space): limb IK on the
    targets (``placement.pin_targets``) with the residual fed back; pinned hips/shoulders move
    the root. Returns (targets, root, solved)."""
    eff = {k: list(v) for k, v in want.items()}
    tol = 1e-4 * armature_units_per_metre(ob)
    for it in range(passes):
        posed = _posed_arm(ob, rig)
        res = {k: la.sub(want[k], posed[k]) for k in want if k in posed}
        if not res or max(la.norm(r) for r in res.values()) < tol:
            break
        if it:  # feed the residual back (the rig's joints are not exactly on its bone axes)
            eff = {k: la.add(eff[k], res[k]) if k in res else eff[k] for k in eff}
        bases = [res[k] for k in _CHAIN_BASES if k in res]
        if bases and root is not None:
            root = la.add(root, la.scale([sum(c) for c in zip(*bases)], 1.0 / len(bases)))
            solved = solve(targets, root)
            posed = _posed_arm(ob, rig)
        targets = pl.pin_targets(targets, posed, eff)
        solved = solve(targets, root)
    return targets, root, solved


def _posed_arm(ob, rig: rt.Rig) -> dict:
    bpy.context.view_layer.update()
    return rt.posed_joint_positions(rig, {pb.name: _lists(pb.matrix) for pb in ob.pose.bones})


def _pinned_joints(rig: rt.Rig, pins: dict) -> dict:
    """Model joints (armature space) located by pinned bones' matrices: a role's head joint
    (first bone) and tail joint (last bone); the hips role's head gives the pelvis."""
    out = {}
    for role in sk.ROLES:
        bones = rig.mapping.get(role.name) or []
        if not bones:
            continue
        if role.head_joint and bones[0] in pins:
            out[role.head_joint] = la.translation(pins[bones[0]])
        if role.tail_joint and bones[-1] in pins:
            m = pins[bones[-1]]
            out[role.tail_joint] = la.add(la.translation(m), la.scale(la.column(m, 1), rig.bones[bones[-1]].length))
    return out


def floor_height(ob, rig: rt.Rig | None = None) -> float:
    """The rig's floor: world Z of the rest pose's lowest foot joint (ankle/toe), metres
    (0.0 when no foot is mapped)."""
    rig = rig or rig_of(ob)
    rest = rt.rest_joint_positions(rig)
    mw = ob.matrix_world
    zs = [(mw @ Vector(rest[f])).z for f in ("left_ankle", "right_ankle", "left_toe", "right_toe") if f in rest]
    return min(zs) if zs else 0.0


def _feet_world_z(ob, rig: rt.Rig) -> list[float]:
    posed = _posed_arm(ob, rig)
    mw = ob.matrix_world
    return [(mw @ Vector(posed[f])).z for f in ("left_ankle", "right_ankle", "left_toe", "right_toe") if f in posed]


def pose_matrices(ob, bones) -> dict:
    """Armature-space pose matrices (``PoseBone.matrix``, evaluated) of ``bones`` (for pins)."""
    bpy.context.view_layer.update()
    return {b: _lists(ob.pose.bones[b].matrix) for b in bones if b in ob.pose.bones}


def lowest_foot_above_floor(ob) -> float | None:
    """World-Z height of the posed rig's lowest foot joint above its floor, metres (None
    without feet): 0 when the pose stands on the floor."""
    rig = rig_of(ob)
    zs = _feet_world_z(ob, rig)
    return min(zs) - floor_height(ob, rig) if zs else None


# ----------------------------------------------------------------------------- reading back
def posed_joints_world(ob) -> dict:
    """Model joints on the posed rig (evaluated, constraints included), world frame.

    Returns:
        joint -> ``[x, y, z]`` world metres at the rig's own scale.
    """
    rig = rig_of(ob)
    bpy.context.view_layer.update()
    mats = {pb.name: _lists(pb.matrix) for pb in ob.pose.bones}
    j = rt.posed_joint_positions(rig, mats)
    mw = ob.matrix_world
    return {k: list(mw @ Vector(v)) for k, v in j.items()}


def to_model_scale(ob, joints_world: dict) -> dict:
    """Rig joints (world) rescaled about the pelvis to the model skeleton's size (thigh+shin)."""
    s = sk.MODEL_LEG_LENGTH / rig_leg_world(ob)
    p = joints_world.get("pelvis") or [0.0, 0.0, 0.0]
    return {k: la.add(p, la.scale(la.sub(v, p), s)) for k, v in joints_world.items()}


_LIMB_ROLES = ("upper_arm", "forearm", "hand", "thigh", "shin", "foot")


def bones_to_joints(ob, bone_names) -> set[str]:
    """Model joints located by the given mapped bones: each role's to_joint, the pelvis for
    the hips role, and a limb bone's head joint (a kept forearm keeps its elbow too)."""
    names = set(bone_names)
    out = set()
    mapping = get_mapping(ob)
    for role in sk.ROLES:
        bones = mapping.get(role.name) or []
        if any(b in names for b in bones):
            out.add(role.to_joint)
            if role.name == "hips" or role.name.split(".")[0] in _LIMB_ROLES:
                out.add(role.from_joint)
    return out


def mapped_bones(ob) -> list[str]:
    return [b for bs in get_mapping(ob).values() for b in bs]


def is_selected(pb) -> bool:
    """Whether a pose bone is selected: ``PoseBone.select`` (Blender 5.0+), ``Bone.select`` (4.4)."""
    return bool(pb.select if hasattr(pb, "select") else pb.bone.select)


def selected_bones(ob) -> set[str]:
    """Names of the armature's selected pose bones."""
    return {pb.name for pb in ob.pose.bones if is_selected(pb)}


def channelbag(idb):
    """The F-curves' channelbag of an ID's (object's, camera data's) action in its slot (slotted
    actions: Blender 4.4+), or None (no animation)."""
    ad = idb.animation_data
    if ad is None or ad.action is None:
        return None
    return anim_utils.action_get_channelbag_for_slot(ad.action, ad.action_slot)


def keyed_bones(ob, frame: int) -> set[str]:
    """Bones with a key on ``frame`` in the object's action (slotted actions: Blender 4.4+)."""
    bag = channelbag(ob)
    if bag is None:
        return set()
    out = set()
    for fc in bag.fcurves:
        p = fc.data_path
        if not p.startswith('pose.bones["'):
            continue
        if any(abs(k.co.x - frame) < 1e-3 for k in fc.keyframe_points):
            out.add(p.split('"')[1])
    return out


def bone_keys(ob, bone: str) -> list[tuple]:
    """All keys of a bone's channels as ``(data_path, index, frame, value)`` (for checks)."""
    bag = channelbag(ob)
    if bag is None:
        return []
    pre = f'pose.bones["{bone}"]'
    return sorted((fc.data_path, fc.array_index, round(k.co.x, 3), round(k.co.y, 6))
                  for fc in bag.fcurves if fc.data_path.startswith(pre) for k in fc.keyframe_points)
