# SPDX-License-Identifier: GPL-3.0-or-later
"""Complete, generate and variations operators (poses from keyed/selected bones or from the prior).

Which bones are known/fixed (``chosen_bones``): the mapped bones keyed on the current frame,
else those explicitly selected in Pose Mode; a selection of every mapped bone (a freshly added
rig selects all its bones) is refused with a message, as is an empty one for Complete. Known
and fixed bones stay where they are in the world: the result is placed (root, limb chains) so
they are reproduced (``blender_rig.apply_pose(pins=...)``). On a Rigify rig whose limbs are in IK
the pose is read as it shows (the FK controls snapped onto it for the reading,
``rig_checks.fk_view``), and a keyed or selected IK control (``hand_ik.L``...) stands for its
limb's FK controls.
"""

from __future__ import annotations

import bpy

from . import blender_rig, results, rig_checks
from . import skeleton as sk
from .blender_rig import RigError
from .operators_common import _TaskOperator


def selected_bones(ob) -> set[str]:
    """Mapped bones explicitly selected in Pose Mode (a Rigify limb's selected IK controls, limb
    in IK, count as its FK controls: ``rig_checks.ik_controls_as_fk``).

    Raises:
        ValueError: every mapped bone is selected (not a choice: a fresh rig selects all).
    """
    mapped = set(blender_rig.mapped_bones(ob))
    everything = blender_rig.selected_bones(ob)
    sel = rig_checks.ik_controls_as_fk(ob, everything, mapped)
    if sel and sel == mapped:
        n_all = len(everything)
        raise ValueError(f"all {len(mapped)} mapped bones are selected ({n_all} bones in all; a freshly added rig "
                         "selects every bone): in Pose Mode select only the bones to keep (Alt+A deselects all), "
                         "or key them on this frame")
    return sel


def chosen_bones(ob, frame: int, keyed_first: bool = True) -> tuple[set[str], str]:
    """Known/fixed bones and how they were chosen (``"keyed"``/``"selected"``/``""``); a Rigify
    limb's IK controls (limb in IK) count as its FK controls."""
    if keyed_first:
        mapped = set(blender_rig.mapped_bones(ob))
        keyed = rig_checks.ik_controls_as_fk(ob, blender_rig.keyed_bones(ob, frame), mapped)
        if keyed:
            return keyed, "keyed"
    sel = selected_bones(ob)
    return sel, "selected" if sel else ""


def _placement(s) -> str:
    return "HOLD" if s.keep_height else "GROUND"


class POSEDIFF_OT_complete(_TaskOperator, bpy.types.Operator):
    """Fill in the rest of the pose from the bones keyed on this frame (else the selected bones);
    those stay where they are in the world, the root and the other bones move"""

    bl_idname = "posediff.complete"
    bl_label = "Complete pose"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        s = context.scene.posediff
        try:
            ob = results.target_armature(context)
            known_bones, how = chosen_bones(ob, context.scene.frame_current)
            if not known_bones:
                raise ValueError("no known bones: key some bones on this frame or select them in Pose Mode")
            with rig_checks.fk_view(ob, blender_rig.mapped_bones(ob)):  # a Rigify rig's limbs in IK: as they show
                known, dirs = results.rig_state(ob, known_bones, chain_roots=True)
                if not known and not dirs:
                    raise ValueError("the keyed/selected bones are not in the bone mapping")
                centre = blender_rig.posed_joints_world(ob)["pelvis"]
                model_scale = sk.MODEL_LEG_LENGTH / blender_rig.rig_leg_world(ob)
                pins = blender_rig.pose_matrices(ob, known_bones)
        except (RigError, ValueError, KeyError) as e:
            return self.refuse(context, str(e))
        payload = {"frames": [{"known": known, "known_directions": dirs}], "num_hypotheses": s.num_hypotheses,
                   "seed": s.seed, "previews": s.previews}
        frame = context.scene.frame_current

        def apply(ctx, res):
            hyps = res["frames"][0]["hypotheses"]
            results.store_pinned(ctx, "complete", [h["joints"] for h in hyps], res["joint_names"], centre, model_scale,
                                 pins, [h.get("score", 0.0) for h in hyps], [h.get("preview_png") for h in hyps])
            keyed, moved, notes = results.key_hypothesis(ctx, ob, 0, frame)
            return (f"completed from {len(known_bones)} {how} bones (kept in place); "
                    + results.counts(keyed, moved, notes))

        return self.run_task(context, "complete", payload, "complete pose", apply)


class POSEDIFF_OT_generate(_TaskOperator, bpy.types.Operator):
    """Sample random plausible poses; the first one is keyed on the current frame, standing on the floor"""

    bl_idname = "posediff.generate"
    bl_label = "Generate poses"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        s = context.scene.posediff
        try:
            ob = results.target_armature(context)
        except RigError as e:
            return self.refuse(context, str(e))
        payload = {"num": s.num_generate, "seed": s.seed, "previews": s.previews}
        frame = context.scene.frame_current
        placement = _placement(s)

        def apply(ctx, res):
            results.store_poses(ctx, res, "generate", placement)
            keyed, moved, notes = results.key_hypothesis(ctx, ob, 0, frame)
            return f"generated {len(res['poses'])} poses; the first: " + results.counts(keyed, moved, notes)

        return self.run_task(context, "generate", payload, f"generate {s.num_generate} poses", apply)


class POSEDIFF_OT_variations(_TaskOperator, bpy.types.Operator):
    """Poses near the current one; bones selected in Pose Mode stay fixed where they are in the world
    (none selected: everything may vary). The first variation is keyed on this frame"""

    bl_idname = "posediff.variations"
    bl_label = "Variations"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        s = context.scene.posediff
        try:
            ob = results.target_armature(context)
            with rig_checks.fk_view(ob, blender_rig.mapped_bones(ob)):  # a Rigify rig's limbs in IK: as they show
                world = blender_rig.posed_joints_world(ob)
                joints = blender_rig.to_model_scale(ob, world)
                selected = selected_bones(ob)
                fixed = sorted(blender_rig.bones_to_joints(ob, selected) & set(joints))
                centre = world["pelvis"]
                model_scale = sk.MODEL_LEG_LENGTH / blender_rig.rig_leg_world(ob)
                pins = blender_rig.pose_matrices(ob, selected)
        except (RigError, ValueError, KeyError) as e:
            return self.refuse(context, str(e))
        payload = {"pose": {k: [round(c, 5) for c in v] for k, v in joints.items()}, "strength": s.strength,
                   "num": s.num_generate, "seed": s.seed, "fixed": fixed, "previews": s.previews}
        frame = context.scene.frame_current
        placement = _placement(s)

        def apply(ctx, res):
            if pins:
                results.store_pinned(ctx, "variations", res["poses"], res["joint_names"], centre, model_scale, pins,
                                     previews=res.get("previews"))
            else:
                results.store_poses(ctx, res, "variations", placement)
            keyed, moved, notes = results.key_hypothesis(ctx, ob, 0, frame)
            fixed_note = f"{len(pins)} selected bones kept in place" if pins else "no bones selected: all may vary"
            return f"{len(res['poses'])} variations ({fixed_note}); the first: " + results.counts(keyed, moved, notes)

        return self.run_task(context, "variations", payload, "variations", apply)


CLASSES = (POSEDIFF_OT_complete, POSEDIFF_OT_generate, POSEDIFF_OT_variations)
