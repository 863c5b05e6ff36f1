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

import bpy
from bpy_extras import anim_utils
from mathutils import Matrix, Quaternion, Vector

from . import retarget as rt
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


def apply_pose(ob, joints_world: dict, placement: str = "GROUND", anchor_world=None,
               skip=(), keyframe: bool = False, frame: int | None = None) -> list[str]:
    """Pose the armature after model joints given in the world frame.

    Args:
        ob: armature object (mapping on it or auto-detected).
        joints_world: model joint -> ``[x, y, z]`` world frame (Z up), metres, model scale,
            any placement (only directions, and the pelvis for placement, are used).
        placement: ``"GROUND"`` (pelvis over the rig's rest pelvis, feet on its rest floor),
            ``"ANCHOR"`` (pelvis at ``anchor_world``, world point) or ``"KEEP"`` (no root location).
        skip: bone names whose channels must not change.
        keyframe: insert keys on the changed channels at ``frame`` (default: current frame).
    Returns:
        names of the bones whose channels were written.
    Raises:
        RigError: not an armature / unusable mapping / pose without the mapped joints.
    """
    rig = rig_of(ob)
    arm = world_pose_to_armature(ob, joints_world)
    anchor = world_to_armature_point(ob, anchor_world) if anchor_world is not None else None
    try:
        targets, root = rt.place_on_rig(arm, rig, placement, anchor)
    except ValueError as e:
        raise RigError(str(e)) from None
    pbs = ob.pose.bones
    basis = {pb.name: _lists(pb.matrix_basis) for pb in pbs}
    vl = bpy.context.view_layer

    def parent_chain(name, _posed):
        pb = pbs[name]
        b = pb.bone
        if pb.parent is None:
            return _lists(b.matrix_local)
        return _lists(pb.parent.matrix @ b.parent.matrix_local.inverted() @ b.matrix_local)

    def constrain(name, rot, loc):
        out = _store(pbs[name], rot, loc)
        vl.update()  # children read their parent's evaluated matrix (constraints included)
        return out

    vl.update()
    try:
        solved = rt.solve_pose(rig, targets, basis, root, skip, constrain, parent_chain)
        if placement == "GROUND" and root is not None:
            # The rig's proportions differ from the model's: put its own lowest foot joint on
            # the rest floor (a second pass only moves the root).
            drop = _floor_offset(ob, rig)
            if drop is not None and abs(drop) > 1e-6:
                root = [root[0], root[1], root[2] + drop]
                solved = rt.solve_pose(rig, targets, basis, root, skip, constrain, parent_chain)
    except ValueError as e:
        raise RigError(str(e)) from None
    if keyframe:
        f = bpy.context.scene.frame_current if frame is None else frame
        for name, res in solved.items():
            pb = pbs[name]
            pb.keyframe_insert(_rot_paths(pb), frame=f, group=name)
            if res.location is not None:
                pb.keyframe_insert("location", frame=f, group=name)
    return list(solved)


def _floor_offset(ob, rig: rt.Rig) -> float | None:
    """Rest floor minus the posed rig's lowest foot joint, armature Z (None without feet)."""
    feet = ("left_ankle", "right_ankle", "left_toe", "right_toe")
    rest = rt.rest_joint_positions(rig)
    posed = rt.posed_joint_positions(rig, {pb.name: _lists(pb.matrix) for pb in ob.pose.bones})
    have = [f for f in feet if f in rest and f in posed]
    if not have:
        return None
    return min(rest[f][2] for f in have) - min(posed[f][2] for f in have)


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
    s = rt.MODEL_LEG_LENGTH / rig_leg_world(ob)
    p = joints_world.get("pelvis") or [0.0, 0.0, 0.0]
    return {k: rt.add(p, rt.scale(rt.sub(v, p), s)) for k, v in joints_world.items()}


def bones_to_joints(ob, bone_names) -> set[str]:
    """Model joints located by the given mapped bones (each role's to_joint, and the pelvis
    for the hips role)."""
    names = set(bone_names)
    out = set()
    for role in rt.ROLES:
        bones = get_mapping(ob).get(role.name) or []
        if any(b in names for b in bones):
            out.add(role.to_joint)
            if role.name in ("hips",):
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


def keyed_bones(ob, frame: int) -> set[str]:
    """Bones with a key on ``frame`` in the object's action (slotted actions: Blender 4.4+)."""
    ad = ob.animation_data
    if ad is None or ad.action is None:
        return set()
    bag = anim_utils.action_get_channelbag_for_slot(ad.action, ad.action_slot)
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
    ad = ob.animation_data
    if ad is None or ad.action is None:
        return []
    bag = anim_utils.action_get_channelbag_for_slot(ad.action, ad.action_slot)
    if bag is None:
        return []
    pre = f'pose.bones["{bone}"]'
    return sorted((fc.data_path, fc.array_index, round(k.co.x, 3), round(k.co.y, 6))
                  for fc in bag.fcurves if fc.data_path.startswith(pre) for k in fc.keyframe_points)
