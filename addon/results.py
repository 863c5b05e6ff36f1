# SPDX-License-Identifier: GPL-3.0-or-later
"""Turning backend answers into hypotheses on the scene and poses on the rig (main thread only),
and building requests from the scene (camera, posed rig)."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import tempfile

import bpy

from . import blender_rig, camera_math
from . import retarget as rt

_previews = None  # bpy.utils.previews collection of thumbnails
#: A Blender camera at the origin looking along +Y (world_joints' convention).
LOOK_ALONG_Y = [[1, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 0], [0, 0, 0, 1]]


def previews():
    global _previews
    if _previews is None:
        import bpy.utils.previews

        _previews = bpy.utils.previews.new()
    return _previews


def free_previews() -> None:
    global _previews
    if _previews is not None:
        import bpy.utils.previews

        bpy.utils.previews.remove(_previews)
        _previews = None


def settings(context):
    return context.scene.posediff


def target_armature(context):
    """The active object, which must be a usable armature (else ``RigError``)."""
    ob = context.active_object if hasattr(context, "active_object") else context.view_layer.objects.active
    blender_rig.check_armature(ob)
    return ob


# ----------------------------------------------------------------------------- requests
def camera_request(scene, width: int, height: int) -> dict | None:
    """Backend ``camera`` (intrinsics + world->camera rotation) of the scene camera for a
    photo of ``width x height`` pixels; None if the scene has no perspective camera."""
    cam = scene.camera
    if cam is None or cam.type != "CAMERA" or cam.data.type != "PERSP":
        return None
    d = cam.data
    k = camera_math.intrinsics(d.lens, d.sensor_width, d.sensor_height, d.sensor_fit, width, height, d.shift_x, d.shift_y)
    k["rotation"] = camera_math.world_to_opencv_rotation([list(r) for r in cam.matrix_world])
    return k


def image_size(path: str) -> tuple[int, int]:
    """Pixel size of an image file (loaded through Blender, then released)."""
    img = bpy.data.images.load(path, check_existing=True)
    try:
        w, h = img.size
    finally:
        if img.users == 0:
            bpy.data.images.remove(img)
    if w <= 0 or h <= 0:
        raise ValueError(f"cannot read the image size of {path}: is it a PNG or JPEG photo?")
    return int(w), int(h)


def set_camera_background(scene, path: str, width: int, height: int) -> None:
    cam = scene.camera
    if cam is None:
        return
    img = bpy.data.images.load(path, check_existing=True)
    d = cam.data
    d.show_background_images = True
    bg = next((b for b in d.background_images if b.image == img), None) or d.background_images.new()
    bg.image = img
    bg.alpha = 1.0
    scene.render.resolution_x, scene.render.resolution_y = width, height
    scene.render.resolution_percentage = 100


def rig_state(ob, bones) -> tuple[dict, dict]:
    """Known joints (model scale, world) and bone directions located by ``bones``."""
    joints = blender_rig.to_model_scale(ob, blender_rig.posed_joints_world(ob))
    names = blender_rig.bones_to_joints(ob, bones)
    known = {j: [round(c, 5) for c in joints[j]] for j in names if j in joints}
    dirs = {j: [round(c, 6) for c in d] for j, d in rt.bone_directions(joints).items() if j in names}
    return known, dirs


# ----------------------------------------------------------------------------- responses
def _store(s, task: str, label: str, joints: dict, score: float = 0.0, photo_frame: int = 0,
           anchor=None, skip=(), placement="GROUND", preview_png: str | None = None) -> None:
    it = s.hypotheses.add()
    it.task, it.label, it.score, it.photo_frame = task, label, float(score), photo_frame
    it.joints_json = json.dumps(joints, separators=(",", ":"))
    it.placement = placement
    if anchor is not None:
        it.has_anchor, it.anchor = True, anchor
    it.skip_json = json.dumps(sorted(skip))
    if preview_png:
        key = f"{task}-{len(s.hypotheses)}-{id(it)}"
        fd, path = tempfile.mkstemp(suffix=".png", prefix="posediff-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(base64.b64decode(preview_png))
            pv = previews().load(key, path, "IMAGE")
            _ = tuple(pv.image_size), tuple(pv.icon_size)  # reading the sizes loads both images now: the file can go
            it.preview_key = key
        except (ValueError, OSError, KeyError):
            pass
        finally:
            with contextlib.suppress(OSError):
                os.remove(path)


def icon_id(item) -> int:
    if item.preview_key and _previews is not None and item.preview_key in _previews:
        return _previews[item.preview_key].icon_id
    return 0


def clear_hypotheses(s) -> None:
    s.hypotheses.clear()
    s["hypothesis_index"] = 0


def store_estimate(context, ob, response: dict, used_camera) -> None:
    """Hypotheses of an estimate response -> scene list (world joints, camera anchor)."""
    s = settings(context)
    names = response["joint_names"]
    cam_mw = [list(r) for r in context.scene.camera.matrix_world] if used_camera else None
    s_rig = blender_rig.rig_leg_world(ob) / rt.MODEL_LEG_LENGTH
    clear_hypotheses(s)
    for fi, fr in enumerate(response["frames"]):
        for k, h in enumerate(fr["hypotheses"]):
            if cam_mw is not None:
                world = camera_math.camera_directions_to_world(h["joints"], cam_mw)
                anchor = camera_math.camera_points_to_world([rt.scale(h["root_translation"], s_rig)], cam_mw)[0]
                placement = "ANCHOR"
            else:
                world = h.get("world_joints") or camera_math.camera_directions_to_world(h["joints"], LOOK_ALONG_Y)
                anchor, placement = None, "GROUND"
            _store(s, "estimate", f"photo {fi + 1} · #{k + 1}", dict(zip(names, world)), h.get("score", 0.0), fi,
                   anchor, (), placement, h.get("preview_png"))


def store_complete(context, response: dict, skip) -> None:
    s = settings(context)
    names = response["joint_names"]
    clear_hypotheses(s)
    for k, h in enumerate(response["frames"][0]["hypotheses"]):
        _store(s, "complete", f"completion #{k + 1}", dict(zip(names, h["joints"])), h.get("score", 0.0), 0,
               None, skip, "KEEP", h.get("preview_png"))


def store_poses(context, response: dict, task: str) -> None:
    s = settings(context)
    names = response["joint_names"]
    pv = response.get("previews") or []
    clear_hypotheses(s)
    for k, p in enumerate(response["poses"]):
        _store(s, task, f"{task} #{k + 1}", dict(zip(names, p)), 0.0, 0, None, (), "GROUND",
               pv[k] if k < len(pv) else None)


# ----------------------------------------------------------------------------- applying
def apply_hypothesis(context, index: int, keyframe: bool, frame: int | None = None, ob=None) -> list[str]:
    """Pose the active armature with hypothesis ``index`` (optionally keyed at ``frame``)."""
    s = settings(context)
    if not 0 <= index < len(s.hypotheses):
        raise IndexError(f"no hypothesis {index + 1} (the list has {len(s.hypotheses)})")
    it = s.hypotheses[index]
    ob = ob or target_armature(context)
    return blender_rig.apply_pose(
        ob, json.loads(it.joints_json), placement=it.placement,
        anchor_world=list(it.anchor) if it.has_anchor else None,
        skip=set(json.loads(it.skip_json or "[]")), keyframe=keyframe, frame=frame)


def apply_best_per_photo(context, ob, start_frame: int) -> int:
    """Key the best hypothesis of each photo at consecutive frames; returns bones keyed."""
    s = settings(context)
    firsts = {}
    for i, it in enumerate(s.hypotheses):
        firsts.setdefault(it.photo_frame, i)
    n = 0
    for pf, i in sorted(firsts.items()):
        n = len(apply_hypothesis(context, i, keyframe=True, frame=start_frame + pf, ob=ob))
    context.scene.frame_set(start_frame)
    return n
