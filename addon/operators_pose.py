# SPDX-License-Identifier: GPL-3.0-or-later
"""Complete, generate and variations operators (poses from keyed/selected bones or from the prior)."""

from __future__ import annotations

import bpy

from . import blender_rig, results
from .blender_rig import RigError
from .operators_common import _TaskOperator


def _known_bones(ob, frame: int) -> set[str]:
    """Mapped bones keyed on ``frame``; if there are none, the selected mapped bones."""
    mapped = set(blender_rig.mapped_bones(ob))
    keyed = blender_rig.keyed_bones(ob, frame) & mapped
    if keyed:
        return keyed
    return {pb.name for pb in ob.pose.bones if getattr(pb, "select", False) and pb.name in mapped}


class POSEDIFF_OT_complete(_TaskOperator, bpy.types.Operator):
    """Fill in the rest of the pose from the bones keyed on this frame (else the selected bones); those stay untouched"""

    bl_idname = "posediff.complete"
    bl_label = "Complete pose"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        s = context.scene.posediff
        try:
            ob = results.target_armature(context)
            known_bones = _known_bones(ob, context.scene.frame_current)
            if not known_bones:
                raise ValueError("no known bones: key some bones on this frame or select them in Pose Mode")
            known, dirs = results.rig_state(ob, known_bones)
            if not known and not dirs:
                raise ValueError("the keyed/selected bones are not in the bone mapping")
        except (RigError, ValueError) as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        payload = {"frames": [{"known": known, "known_directions": dirs}], "num_hypotheses": s.num_hypotheses,
                   "seed": s.seed, "previews": s.previews}
        frame = context.scene.frame_current

        def apply(ctx, res):
            results.store_complete(ctx, res, known_bones)
            n = len(results.apply_hypothesis(ctx, 0, keyframe=True, frame=frame, ob=ob))
            return f"completed: keyed {n} bones ({len(known_bones)} known bones untouched)"

        return self.run_task(context, "complete", payload, "complete pose", apply)


class POSEDIFF_OT_generate(_TaskOperator, bpy.types.Operator):
    """Sample random plausible poses; the first one is keyed on the current frame"""

    bl_idname = "posediff.generate"
    bl_label = "Generate poses"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        s = context.scene.posediff
        try:
            ob = results.target_armature(context)
        except RigError as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        payload = {"num": s.num_generate, "seed": s.seed, "previews": s.previews}
        frame = context.scene.frame_current

        def apply(ctx, res):
            results.store_poses(ctx, res, "generate")
            n = len(results.apply_hypothesis(ctx, 0, keyframe=True, frame=frame, ob=ob))
            return f"generated {len(res['poses'])} poses; keyed the first ({n} bones)"

        return self.run_task(context, "generate", payload, f"generate {s.num_generate} poses", apply)


class POSEDIFF_OT_variations(_TaskOperator, bpy.types.Operator):
    """Poses near the current one (selected bones stay fixed); the first is keyed on this frame"""

    bl_idname = "posediff.variations"
    bl_label = "Variations"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        s = context.scene.posediff
        try:
            ob = results.target_armature(context)
            joints = blender_rig.to_model_scale(ob, blender_rig.posed_joints_world(ob))
            mapped = set(blender_rig.mapped_bones(ob))
            selected = {pb.name for pb in ob.pose.bones if getattr(pb, "select", False) and pb.name in mapped}
            fixed = sorted(blender_rig.bones_to_joints(ob, selected) & set(joints))
        except (RigError, ValueError) as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        payload = {"pose": {k: [round(c, 5) for c in v] for k, v in joints.items()}, "strength": s.strength,
                   "num": s.num_generate, "seed": s.seed, "fixed": fixed, "previews": s.previews}
        frame = context.scene.frame_current

        def apply(ctx, res):
            results.store_poses(ctx, res, "variations")
            for it in ctx.scene.posediff.hypotheses:
                it.placement = "KEEP"
                it.skip_json = results.json.dumps(sorted(selected))
            n = len(results.apply_hypothesis(ctx, 0, keyframe=True, frame=frame, ob=ob))
            return f"{len(res['poses'])} variations; keyed the first ({n} bones)"

        return self.run_task(context, "variations", payload, "variations", apply)


CLASSES = (POSEDIFF_OT_complete, POSEDIFF_OT_generate, POSEDIFF_OT_variations)
