# SPDX-License-Identifier: GPL-3.0-or-later
"""Hypothesis list operators (apply one, apply all as frames) and the bone-mapping operator."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty

from . import blender_rig, results
from . import skeleton as sk
from .blender_rig import RigError
from .rig_presets import MIN_COVERAGE, PRESET_LABELS, PRESETS


class POSEDIFF_OT_apply_hypothesis(bpy.types.Operator):
    """Key the selected hypothesis on the current frame"""

    bl_idname = "posediff.apply_hypothesis"
    bl_label = "Apply"
    bl_options = {"REGISTER", "UNDO"}
    index: IntProperty(default=-1, options={"SKIP_SAVE"}, description="-1 = the selected one")

    def execute(self, context):
        s = context.scene.posediff
        i = s.hypothesis_index if self.index < 0 else self.index
        try:
            ob = results.target_armature(context)
            if not 0 <= i < len(s.hypotheses):
                raise IndexError(f"no hypothesis {i + 1} (the list has {len(s.hypotheses)})")
            keyed, moved, notes = results.key_hypothesis(context, ob, i, context.scene.frame_current)
        except (RigError, IndexError, ValueError) as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        self.report({"INFO"}, f"frame {context.scene.frame_current}: " + results.counts(keyed, moved, notes))
        return {"FINISHED"}


class POSEDIFF_OT_apply_all(bpy.types.Operator):
    """Key every hypothesis on consecutive frames from the current one"""

    bl_idname = "posediff.apply_all"
    bl_label = "Apply all as frames"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        s = context.scene.posediff
        start = context.scene.frame_current
        try:
            ob = results.target_armature(context)
            if not s.hypotheses:
                raise ValueError("no hypotheses yet: estimate, complete, generate or vary first")
            for i in range(len(s.hypotheses)):
                context.scene.frame_set(start + i)
                results.key_hypothesis(context, ob, i, start + i)
        except (RigError, IndexError, ValueError) as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        context.scene.frame_set(start)
        self.report({"INFO"}, f"keyed {len(s.hypotheses)} poses on frames {start}-{start + len(s.hypotheses) - 1}")
        return {"FINISHED"}


class POSEDIFF_OT_detect_mapping(bpy.types.Operator):
    """Guess the bone mapping from bone names (or load a preset) and save it on the armature"""

    bl_idname = "posediff.detect_mapping"
    bl_label = "Detect bone mapping"
    bl_options = {"REGISTER", "UNDO"}
    preset: EnumProperty(name="Preset", items=[("AUTO", "Auto-detect", "From bone-name synonyms (an exact preset wins)")]
                         + [(k, v, "") for k, v in PRESET_LABELS.items()], default="AUTO")
    force: BoolProperty(name="Save anyway", default=False, options={"SKIP_SAVE"},
                        description="Save a mapping that covers fewer than 80 % of the roles")

    def execute(self, context):
        from . import properties
        from .rig_presets import coverage, detect_mapping

        ob = context.active_object
        if ob is None or ob.type != "ARMATURE":
            self.report({"ERROR"}, "select an armature first")
            return {"CANCELLED"}
        names = [b.name for b in ob.data.bones]
        mapping = detect_mapping(names) if self.preset == "AUTO" else PRESETS[self.preset]
        frac, missing = coverage(mapping, names)
        label = "auto-detect" if self.preset == "AUTO" else PRESET_LABELS[self.preset]
        if frac < MIN_COVERAGE and not self.force:
            self.report({"WARNING"}, f"{label} maps only {round(frac * len(sk.ROLES))} of {len(sk.ROLES)} roles on "
                        f"'{ob.name}' (missing: {', '.join(missing[:8])}{'...' if len(missing) > 8 else ''}): "
                        "not saved; choose another preset, or run again with 'Save anyway' and fill the roles in")
            return {"CANCELLED"}
        mapping = {k: [b for b in v if b in set(names)] for k, v in mapping.items()}
        blender_rig.set_mapping(ob, mapping)
        properties.fill_role_items(ob)
        probs = blender_rig.mapping_problems(mapping, names)
        if probs:
            self.report({"WARNING"}, "; ".join(probs))
        else:
            self.report({"INFO"}, f"{label}: mapped {len(sk.ROLES) - len(missing)} of {len(sk.ROLES)} roles "
                        f"({sum(len(v) for v in mapping.values())} bones)")
        return {"FINISHED"}


CLASSES = (POSEDIFF_OT_apply_hypothesis, POSEDIFF_OT_apply_all, POSEDIFF_OT_detect_mapping)
