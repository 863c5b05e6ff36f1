# SPDX-License-Identifier: GPL-3.0-or-later
"""Will the rig use the keys PoseDiff writes? Rigify IK/FK switches (switched to FK, keyed) and
constraints or drivers that override keyed bones (named in the operator's message)."""

from __future__ import annotations

import contextlib

import bpy

#: Rigify's limbs, one table for the add-on: the IK/FK switch bone's prefix -> its FK control
#: prefixes (root to tip), all its IK controls, and the IK control that moves the limb's end with
#: the model joint it stands for (a pose-assist pin); ``.L/.R`` added to every name.
RIGIFY_LIMB_CONTROLS = {
    "upper_arm_parent": {"fk": ("upper_arm", "forearm", "hand"), "ik": ("upper_arm_ik", "hand_ik", "upper_arm_ik_target"),
                         "end": ("hand_ik", "wrist")},
    "thigh_parent": {"fk": ("thigh", "shin", "foot"),
                     "ik": ("thigh_ik", "foot_ik", "thigh_ik_target", "toe_ik", "foot_heel_ik", "foot_spin_ik"),
                     "end": ("foot_ik", "ankle")},
}
_RIGIFY_LIMBS = tuple((switch, limb["fk"]) for switch, limb in RIGIFY_LIMB_CONTROLS.items())
_OVERRIDING = {"COPY_ROTATION", "COPY_TRANSFORMS", "COPY_LOCATION", "TRACK_TO", "DAMPED_TRACK", "LOCKED_TRACK",
               "CHILD_OF", "ARMATURE", "STRETCH_TO", "TRANSFORM", "ACTION", "SPLINE_IK"}


def rigify_switches(ob, bones) -> list[str]:
    """Rigify limb switch bones (``upper_arm_parent.L``, ``thigh_parent.R``...; custom property
    ``IK_FK``, 0 = IK, 1 = FK) that govern the given FK control bones (``*_fk.L/R``)."""
    out = []
    for b in bones:
        if "_fk" not in b or b[-2:] not in (".L", ".R"):
            continue
        for switch, parts in _RIGIFY_LIMBS:
            if any(b.startswith(p + "_fk") for p in parts):
                name = switch + b[-2:]
                pb = ob.pose.bones.get(name)
                if pb is not None and "IK_FK" in pb.keys() and name not in out:
                    out.append(name)
    return out


def use_fk(ob, bones, keyframe: bool = False, frame: int | None = None) -> list[str]:
    """Switch the Rigify limbs of ``bones`` to FK (``IK_FK`` = 1.0; keyed when ``keyframe``),
    so the rig follows the FK keys PoseDiff writes. Returns the switches that were in IK."""
    changed = []
    f = bpy.context.scene.frame_current if frame is None else frame
    for name in rigify_switches(ob, bones):
        pb = ob.pose.bones[name]
        if float(pb["IK_FK"]) < 1.0 - 1e-6:
            changed.append(name)
        pb["IK_FK"] = 1.0
        if keyframe:
            pb.keyframe_insert('["IK_FK"]', frame=f, group=name)
    if changed:
        bpy.context.view_layer.update()
    return changed


def snap_fk_to_pose(ob, bones) -> list[str]:
    """Put the Rigify FK controls among ``bones`` (``upper_arm_fk.L``...) onto the limb as it is
    posed now, IK or FK, by giving each the armature-space matrix of its ``ORG-`` bone (which
    follows whichever chain drives the limb), parents first: what Rigify's own FK snap does, so
    that switching a limb from IK to FK (:func:`use_fk`) does not make it jump. Returns the
    controls moved."""
    order = [p for _switch, parts in _RIGIFY_LIMBS for p in parts]  # parents before children
    fk = sorted((b for b in bones if "_fk" in b and b[-2:] in (".L", ".R") and b.split("_fk")[0] in order),
                key=lambda b: order.index(b.split("_fk")[0]))
    moved = []
    for b in fk:
        pb, org = ob.pose.bones.get(b), ob.pose.bones.get(f"ORG-{b.split('_fk')[0]}{b[-2:]}")
        if pb is None or org is None:
            continue
        bpy.context.view_layer.update()
        pb.matrix = org.matrix.copy()
        moved.append(b)
    if moved:
        bpy.context.view_layer.update()
    return moved


def limbs_in_ik(ob, bones) -> list[str]:
    """The Rigify switches of ``bones`` whose limbs are in IK now (``IK_FK`` < 1)."""
    return [n for n in rigify_switches(ob, bones) if float(ob.pose.bones[n]["IK_FK"]) < 1.0 - 1e-6]


def ik_controls_as_fk(ob, bones, mapped) -> set[str]:
    """``bones`` with each Rigify IK control of a limb in IK (``hand_ik.L``, ``foot_ik.R``,
    ``upper_arm_ik.L``, the pole ``thigh_ik_target.R``...) replaced by that limb's FK controls
    among ``mapped`` (``upper_arm_fk.L``, ``forearm_fk.L``, ``hand_fk.L``): the animator who
    keyed or selected an IK control set the limb as it shows, which its FK chain carries once
    :func:`fk_view` has snapped it there. Other bones are kept if they are in ``mapped``."""
    out = set(bones)
    for switch in limbs_in_ik(ob, mapped):
        limb, side = RIGIFY_LIMB_CONTROLS[switch[:-2]], switch[-2:]
        ctrls = {c + side for c in limb["ik"]}
        if out & ctrls:
            out -= ctrls
            out |= {f"{p}_fk{side}" for p in limb["fk"] if f"{p}_fk{side}" in mapped}
    return out & set(mapped)


@contextlib.contextmanager
def fk_view(ob, bones):
    """Within the block, the FK controls of the Rigify limbs of ``bones`` that are in IK lie on
    the limbs as they show (:func:`snap_fk_to_pose`), so reading the rig's pose through its FK
    controls (the bone mapping) reads what the animator sees; on leaving, their channels are put
    back. Yields the switches of the limbs snapped (none: nothing changed)."""
    switches = limbs_in_ik(ob, bones)
    if not switches:
        yield []
        return
    limbs = [(RIGIFY_LIMB_CONTROLS[sw[:-2]]["fk"], sw[-2:]) for sw in switches]  # (FK prefixes, side)
    fk = [b for b in bones if any(b.endswith(side) and b.startswith(p + "_fk") for parts, side in limbs for p in parts)]
    saved = {b: ob.pose.bones[b].matrix_basis.copy() for b in fk}
    try:
        snap_fk_to_pose(ob, fk)
        yield switches
    finally:
        for b, m in saved.items():
            ob.pose.bones[b].matrix_basis = m
        bpy.context.view_layer.update()


def ignored_keys(ob, bones) -> list[str]:
    """Bones among ``bones`` whose keyed rotation would be overridden by the rig: enabled
    constraints on the bone that replace its transform (Copy Rotation/Transforms, Track To,
    Child Of, Armature...), an IK constraint whose chain includes it, or a driver on its
    rotation. Rigify IK/FK switches are handled by ``use_fk``. Returns ``"bone (why)"``."""
    names = set(bones)
    out = {}
    pbs = ob.pose.bones
    for pb in pbs:
        for c in pb.constraints:
            if c.mute or not getattr(c, "enabled", True) or c.influence <= 0.0:
                continue
            if c.type in _OVERRIDING and pb.name in names:
                out.setdefault(pb.name, f"{pb.name} ({c.type.replace('_', ' ').title()} constraint '{c.name}')")
            elif c.type == "IK":
                chain, p, n = [], pb if c.use_tail else pb.parent, c.chain_count
                while p is not None and (n == 0 or len(chain) < n):
                    chain.append(p.name)
                    p = p.parent
                for b in chain:
                    if b in names:
                        out.setdefault(b, f"{b} (IK constraint '{c.name}' on {pb.name})")
    ad = ob.animation_data
    for d in (ad.drivers if ad else []):
        if d.data_path.startswith('pose.bones["') and ".rotation" in d.data_path and not d.mute:
            b = d.data_path.split('"')[1]
            if b in names:
                out.setdefault(b, f"{b} (driver on {d.data_path.split('.')[-1]})")
    return [out[b] for b in sorted(out)]


def non_uniform_scale(ob, tolerance: float = 0.01) -> str:
    """A warning (``""`` if none) when the armature's world scale differs between axes: its
    bones' rotations then shear the pose, so keyed limbs point off the estimated directions."""
    sc = ob.matrix_world.to_scale()
    lo, hi = min(abs(x) for x in sc), max(abs(x) for x in sc)
    if hi <= 0 or (hi - lo) / hi <= tolerance:
        return ""
    return (f"warning: '{ob.name}' is scaled unevenly ({', '.join(f'{x:g}' for x in sc)}), which distorts the keyed pose; "
            "apply the scale (Object > Apply > Scale) for an exact fit")


def keying_notes(ob, switched: list[str], keyed: list[str]) -> list[str]:
    """The message's notes after keying ``keyed`` bones: the Rigify switches :func:`use_fk` turned
    (``switched``) and the keyed bones the rig overrides (:func:`ignored_keys`)."""
    notes = []
    if switched:
        notes.append(f"switched {', '.join(switched)} from IK to FK (IK_FK = 1, keyed) so the rig follows the keys")
    ignored = ignored_keys(ob, keyed)
    if ignored:
        notes.append("warning: the rig overrides the keys of " + ", ".join(ignored[:6])
                     + (f" and {len(ignored) - 6} more" if len(ignored) > 6 else ""))
    return notes
