# SPDX-License-Identifier: GPL-3.0-or-later
"""3D View sidebar (N panel), tab "PoseDiff": backend, tasks, hypotheses, bone mapping."""

from __future__ import annotations

import bpy

from . import jobs, results, status


class POSEDIFF_UL_hypotheses(bpy.types.UIList):
    """Hypotheses with thumbnails (when the backend sent previews) and scores."""

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index):
        ic = results.icon_id(item)
        row = layout.row(align=True)
        if ic:
            row.label(text="", icon_value=ic)
        row.label(text=item.label)
        if item.task in ("estimate", "complete"):
            row.label(text=f"{item.score:.1f}")


class _Panel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "PoseDiff"


class POSEDIFF_PT_main(_Panel, bpy.types.Panel):
    bl_label = "PoseDiff"

    def draw(self, context):
        layout = self.layout
        s = context.scene.posediff
        box = layout.box()
        row = box.row(align=True)
        row.operator("posediff.check_backend", text="Check", icon="FILE_REFRESH")
        row.operator("posediff.start_backend", text="Start", icon="PLAY")
        status.draw_status(box)
        job = jobs.current()
        if jobs.busy():
            row = layout.row(align=True)
            what = f"{job.label}: keying" if job.phase == "applying" else job.label
            row.progress(factor=job.progress, type="BAR", text=f"{what} {job.progress * 100:.0f}%")
            row.operator("posediff.cancel", text="", icon="CANCEL")
        if s.last_error:
            status.draw_wrapped(layout, s.last_error, 40, "ERROR")
        elif s.last_message:
            status.draw_wrapped(layout, s.last_message, 40, "INFO")
        ob = context.active_object
        if ob is None or ob.type != "ARMATURE":
            layout.label(text="Select an armature to pose", icon="ARMATURE_DATA")


class POSEDIFF_PT_tasks(_Panel, bpy.types.Panel):
    bl_label = "Pose"
    bl_parent_id = "POSEDIFF_PT_main"

    def draw(self, context):
        layout = self.layout
        s = context.scene.posediff
        col = layout.column(align=True)
        col.prop(s, "num_hypotheses")
        col.prop(s, "seed")
        col.prop(s, "previews")
        col = layout.column(align=True)
        col.prop(s, "use_camera")
        sub = col.row(align=True)
        sub.active = not s.use_camera  # the scene camera's lens is sent instead
        sub.prop(s, "lens")
        col.prop(s, "mirrored")
        col.prop(s, "set_background")
        col.prop(s, "set_resolution")
        col.prop(s, "keep_height")
        ob = context.active_object
        if ob is not None and ob.type == "ARMATURE" and "rig_id" in ob.data:  # a Rigify-generated rig
            col.prop(s, "rigify_limbs")
        row = col.row(align=True)
        row.operator("posediff.find_people", icon="COMMUNITY")
        row.label(text="largest person" if s.person < 0 else f"person #{s.person}")
        if len(s.people) > 1:
            col.template_list("UI_UL_list", "posediff_people", s, "people", s, "people_index", rows=2)
        col.operator("posediff.estimate", icon="IMAGE_DATA")
        layout.operator("posediff.complete", icon="MOD_ARMATURE")
        layout.operator("posediff.pose_assist", icon="CON_KINEMATIC")
        col = layout.column(align=True)
        col.prop(s, "num_generate")
        col.operator("posediff.generate", icon="OUTLINER_OB_ARMATURE")
        col.prop(s, "strength", slider=True)
        col.operator("posediff.variations", icon="MOD_NOISE")


class POSEDIFF_PT_hypotheses(_Panel, bpy.types.Panel):
    bl_label = "Hypotheses"
    bl_parent_id = "POSEDIFF_PT_main"

    def draw(self, context):
        layout = self.layout
        s = context.scene.posediff
        layout.template_list("POSEDIFF_UL_hypotheses", "", s, "hypotheses", s, "hypothesis_index", rows=4)
        row = layout.row(align=True)
        row.operator("posediff.apply_hypothesis", icon="KEYFRAME")
        row.operator("posediff.apply_all", icon="KEYFRAME_HLT")
        if s.hypotheses and 0 <= s.hypothesis_index < len(s.hypotheses):
            ic = results.icon_id(s.hypotheses[s.hypothesis_index])
            if ic:
                layout.template_icon(icon_value=ic, scale=6.0)


class POSEDIFF_PT_mapping(_Panel, bpy.types.Panel):
    bl_label = "Bone mapping"
    bl_parent_id = "POSEDIFF_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    @classmethod
    def poll(cls, context):
        return context.active_object is not None and context.active_object.type == "ARMATURE"

    def draw(self, context):
        layout = self.layout
        ob = context.active_object
        row = layout.row(align=True)
        row.operator_menu_enum("posediff.detect_mapping", "preset", text="Detect / preset", icon="BONE_DATA")
        if not ob.posediff_roles:
            layout.label(text="Press Detect to edit the mapping")
            return
        col = layout.column(align=True)
        for item in ob.posediff_roles:
            r = col.row(align=True)
            r.label(text=item.role)
            r.prop_search(item, "bone", ob.data, "bones", text="")
            if item.extra:
                r.prop(item, "extra", text="")


CLASSES = (POSEDIFF_UL_hypotheses, POSEDIFF_PT_main, POSEDIFF_PT_tasks, POSEDIFF_PT_hypotheses, POSEDIFF_PT_mapping)
