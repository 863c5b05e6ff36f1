# SPDX-License-Identifier: GPL-3.0-or-later
"""Estimate operator (3D poses from photos, one or several consecutive frames) and the person
picker (which detected person to estimate)."""

from __future__ import annotations

import os

import bpy
from bpy.props import CollectionProperty, StringProperty
from bpy_extras.io_utils import ImportHelper

from . import photos, results
from .blender_rig import RigError
from .client import BackendError
from .operators_common import _TaskOperator, lens_camera
from .preferences import make_client

#: Most people the picker asks the detector for.
MAX_PEOPLE = 8


class POSEDIFF_OT_estimate(_TaskOperator, bpy.types.Operator, ImportHelper):
    """Estimate 3D poses from photos (several files = consecutive frames) and key the best one.
    The rig stays on the ground where it stands and a 'Photo camera' is fitted to the photo
    (or, with 'Use my camera as it is', the rig is placed along the photo's rays)"""

    bl_idname = "posediff.estimate"
    bl_label = "Estimate from photo(s)"
    bl_options = {"REGISTER", "UNDO"}

    filter_glob: StringProperty(default="*.jpg;*.jpeg;*.png;*.webp;*.bmp;*.heic;*.heif", options={"HIDDEN"})
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
            use_cam = s.use_camera
            if use_cam and (context.scene.camera is None or context.scene.camera.type != "CAMERA"):
                raise ValueError("'Use my camera as it is' is on but the scene has no camera: add one or turn it off")
            lens = None if use_cam else lens_camera(s)
            converted = 0
            for p in paths:
                if not os.path.isfile(p):
                    raise ValueError(f"photo not found: {p}")
                if photos.is_heif(p):  # Blender reads no HEIC: the backend's upright JPEG of it stands in
                    p = converted_photo(p)
                    converted += 1
                w, h = results.image_size(p)
                fr = {"image": os.path.abspath(p)}
                if use_cam:
                    cam = results.camera_request(context.scene, w, h, mirrored=s.mirrored)
                    if cam is None:
                        raise ValueError("'Use my camera as it is' needs a perspective scene camera")
                    fr["camera"] = cam
                elif lens:
                    fr["camera"] = lens
                if s.person >= 0:
                    fr["person"] = s.person
                if s.mirrored:
                    fr["mirrored"] = True
                frames.append(fr)
        except (RigError, ValueError) as e:
            return self.refuse(context, str(e))
        payload = {"frames": frames, "num_hypotheses": s.num_hypotheses, "seed": s.seed, "previews": s.previews}
        start = context.scene.frame_current
        first = frames[0]["image"]
        placement = "HOLD" if s.keep_height else "GROUND"

        def apply(ctx, res):
            st = ctx.scene.posediff
            results.store_estimate(ctx, ob, res, use_cam, placement)
            keyed, moved, notes = results.apply_best_per_photo(ctx, ob, start)
            if use_cam:
                notes.append(f"rig placed along the photo's rays through '{ctx.scene.camera.name}' (it may leave "
                             "the ground)")
                if st.set_background:
                    try:
                        w, h = results.image_size(first)
                        bg = results.set_camera_background(ctx.scene, first, w, h, set_resolution=st.set_resolution,
                                                           mirrored=res["frames"][0].get("mirrored", False))
                    except ValueError as e:
                        bg = f"no camera background: {e}"
                    if bg:
                        notes.append(bg)
            else:
                cam_notes, _ = results.photo_cameras(ctx, ob, res, [fr["image"] for fr in frames], start,
                                                     st.set_resolution, background=st.set_background)
                notes += cam_notes
            if converted:
                notes.append(f"{converted} HEIC photo(s) shown as the backend's upright JPEG (Blender reads no HEIC)")
            if any(fr.get("mirrored") for fr in res["frames"]):
                notes.append("the photos were taken as mirror images: estimated and shown flipped left-right")
            return f"estimated {len(res['frames'])} photo(s) from frame {start}; " + results.counts(keyed, moved, notes)

        return self.run_task(context, "estimate", payload, f"estimate {len(paths)} photo(s)", apply)


def converted_folder() -> str:
    """Where converted copies are kept: this extension's user folder (``converted/``), or the
    system's temporary folder where Blender gives none."""
    try:
        return bpy.utils.extension_path_user(__package__, path="converted", create=True)
    except (ValueError, RuntimeError, OSError):
        import tempfile

        return os.path.join(tempfile.gettempdir(), "posediff-converted")


def converted_photo(path: str) -> str:
    """``photos.converted_photo`` into :func:`converted_folder`.

    Raises:
        ValueError: the backend could not convert it (why, and what to do).
    """
    folder = converted_folder()
    try:
        return photos.converted_photo(make_client(), path, folder)
    except BackendError as e:
        raise ValueError(f"cannot read the HEIC photo {os.path.basename(path)} (Blender cannot, so the backend "
                         f"converts it): {e}") from None
    except OSError as e:
        raise ValueError(f"cannot keep the converted copy of {os.path.basename(path)} in {folder}: {e}") from None


def find_people(client, photo: str, limit: int = MAX_PEOPLE, mirrored: bool = False) -> list[dict]:
    """People the detector finds in ``photo``: ``[{"index", "box"}]`` ordered left to right
    (``index`` = the detector's, 0 = largest, to send as ``person``). Asks ``/v1/detect`` for
    person 0, 1, ... until it answers that there are no more. ``mirrored``: a mirror image, whose
    people are listed as in the flipped picture (as it is estimated and shown).

    Raises:
        BackendError: the backend failed for another reason (e.g. no person at all).
    """
    out = []
    for i in range(limit):
        try:
            fr = client.request("POST", "/v1/detect", {"frames": [{"image": photo, "person": i,
                                                                   **({"mirrored": True} if mirrored else {})}]})["frames"][0]
        except BackendError as e:
            if i > 0 and "requested but" in str(e):
                break
            raise
        box = fr.get("box") or [0.0, 0.0, 0.0, 0.0]
        out.append({"index": i, "box": box})
    return sorted(out, key=lambda p: p["box"][0] + p["box"][2])


#: Files *Find people* reads as videos (their first frame).
VIDEO_EXT = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


class POSEDIFF_OT_find_people(bpy.types.Operator, ImportHelper):
    """Detect the people in a photo (or a video's first frame) and list them left to right; pick one
    in the list to estimate that person (sent as 'person'; for a video, followed through the clip)"""

    bl_idname = "posediff.find_people"
    bl_label = "Find people"
    filter_glob: StringProperty(default="*.jpg;*.jpeg;*.png;*.webp;*.bmp;*.heic;*.heif;" + ";".join("*" + e for e in VIDEO_EXT),
                                options={"HIDDEN"})

    def execute(self, context):
        import tempfile

        s = context.scene.posediff
        if not self.filepath or not os.path.isfile(self.filepath):
            self.report({"ERROR"}, f"photo not found: {self.filepath!r}")
            return {"CANCELLED"}
        path = os.path.abspath(self.filepath)
        try:
            with tempfile.TemporaryDirectory(prefix="posediff-") as tmp:
                if path.lower().endswith(VIDEO_EXT):  # the people of its first frame, by size as the backend picks
                    frame = os.path.join(tmp, "first_frame.png")
                    results.movie_first_frame_png(path, frame)
                    path = frame
                elif photos.is_heif(path):
                    path = converted_photo(path)
                people = find_people(make_client(), path, mirrored=s.mirrored)
        except (BackendError, ValueError) as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        s.people.clear()
        for k, p in enumerate(people):
            it = s.people.add()
            it.index, it.box = p["index"], p["box"]
            x0, _y0, x1, _y1 = p["box"]
            it.label = f"{k + 1}. {'left' if k == 0 else 'right' if k == len(people) - 1 else 'middle'}" \
                       f" (x {x0:.0f}-{x1:.0f} px)" if len(people) > 1 else f"1. the only person (x {x0:.0f}-{x1:.0f} px)"
            it.name = it.label
        s["people_index"] = next((k for k, p in enumerate(people) if p["index"] == 0), 0)
        s.person = -1 if len(people) == 1 else 0
        self.report({"INFO"}, f"{len(people)} people found, listed left to right; the largest is picked")
        return {"FINISHED"}


CLASSES = (POSEDIFF_OT_estimate, POSEDIFF_OT_find_people)
