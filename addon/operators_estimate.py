# SPDX-License-Identifier: GPL-3.0-or-later
"""Estimate operator: 3D poses from photos (one or several consecutive frames)."""

from __future__ import annotations

import os

import bpy
from bpy.props import CollectionProperty, StringProperty
from bpy_extras.io_utils import ImportHelper

from . import results
from .blender_rig import RigError
from .operators_common import _TaskOperator


class POSEDIFF_OT_estimate(_TaskOperator, bpy.types.Operator, ImportHelper):
    """Estimate 3D poses from photos (several files = consecutive frames) and key the best one"""

    bl_idname = "posediff.estimate"
    bl_label = "Estimate from photo(s)"
    bl_options = {"REGISTER", "UNDO"}

    filter_glob: StringProperty(default="*.jpg;*.jpeg;*.png;*.webp;*.bmp", options={"HIDDEN"})
    files: CollectionProperty(type=bpy.types.OperatorFileListElement, options={"HIDDEN", "SKIP_SAVE"})
    directory: StringProperty(subtype="DIR_PATH", options={"HIDDEN", "SKIP_SAVE"})

    def paths(self) -> list[str]:
        names = [f.name for f in self.files if f.name]
        if names:
            return [os.path.join(self.directory, n) for n in names]
        return [self.filepath] if self.filepath else []

    def execute(self, context):
        s = context.scene.posediff
        try:
            ob = results.target_armature(context)
            paths = self.paths()
            if not paths:
                raise ValueError("choose one or more photos (PNG or JPEG)")
            frames = []
            use_cam = s.use_camera and context.scene.camera is not None
            for p in paths:
                if not os.path.isfile(p):
                    raise ValueError(f"photo not found: {p}")
                w, h = results.image_size(p)
                fr = {"image": os.path.abspath(p)}
                cam = results.camera_request(context.scene, w, h) if use_cam else None
                if cam:
                    fr["camera"] = cam
                frames.append(fr)
            use_cam = use_cam and "camera" in frames[0]
        except (RigError, ValueError) as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        payload = {"frames": frames, "num_hypotheses": s.num_hypotheses, "seed": s.seed, "previews": s.previews}
        start = context.scene.frame_current
        first = paths[0]

        def apply(ctx, res):
            results.store_estimate(ctx, ob, res, use_cam)
            n = results.apply_best_per_photo(ctx, ob, start)
            if s.set_background and use_cam:
                w, h = results.image_size(first)
                results.set_camera_background(ctx.scene, first, w, h)
            return f"estimated {len(res['frames'])} photo(s); keyed {n} bones from frame {start}"

        return self.run_task(context, "estimate", payload, f"estimate {len(paths)} photo(s)", apply)


CLASSES = (POSEDIFF_OT_estimate,)
