# SPDX-License-Identifier: GPL-3.0-or-later
"""Turning backend answers into hypotheses on the scene and poses on the rig (main thread only),
and building requests from the scene (camera, posed rig)."""

from __future__ import annotations

import base64
import contextlib
import json
import math
import os
import tempfile

import bpy

from . import blender_rig, camera_math, exif, rig_checks, rigify_ik
from . import linalg as la
from . import placement as pl
from . import retarget as rt
from . import skeleton as sk
from .photos import CONVERTED_SUFFIX

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
def camera_request(scene, width: int, height: int, mirrored: bool = False) -> dict | None:
    """Backend ``camera`` (intrinsics + world->camera rotation) of the scene camera for a
    photo of ``width x height`` pixels; None if the scene has no perspective camera. ``mirrored``:
    the photo is a mirror image, shown flipped behind the camera, whose principal point is the
    flipped picture's (the backend takes ``cx`` as the picture's as given and flips it)."""
    cam = scene.camera
    if cam is None or cam.type != "CAMERA" or cam.data.type != "PERSP":
        return None
    d = cam.data
    k = camera_math.intrinsics(d.lens, d.sensor_width, d.sensor_height, d.sensor_fit, width, height, d.shift_x, d.shift_y)
    if mirrored:
        k["cx"] = width - k["cx"]
    k["rotation"] = camera_math.world_to_opencv_rotation([list(r) for r in cam.matrix_world])
    return k


def image_size(path: str) -> tuple[int, int]:
    """Pixel size of an image file as shown upright (its EXIF orientation applied, as the backend
    does; loaded through Blender, then released)."""
    img = bpy.data.images.load(path, check_existing=True)
    try:
        w, h = img.size
    finally:
        if img.users == 0:
            bpy.data.images.remove(img)
    if w <= 0 or h <= 0:
        raise ValueError(f"cannot read the image size of {path}: is it a PNG or JPEG photo?")
    return exif.upright_size(int(w), int(h), exif.orientation(path))


def movie_first_frame_png(path: str, out_png: str) -> tuple[int, int]:
    """Write a video's first frame to ``out_png`` as it is stored (no view transform), through
    Blender's own movie reader; returns its ``(width, height)``.

    Raises:
        ValueError: Blender cannot read the video.
    """
    from array import array

    try:
        mov = bpy.data.images.load(path, check_existing=False)
    except RuntimeError as e:
        raise ValueError(f"Blender cannot read the video {path}: {e}") from None
    try:
        w, h = mov.size
        if mov.source != "MOVIE" or w <= 0 or h <= 0:
            raise ValueError(f"Blender cannot read the video {path}")
        px = array("f", bytes(4 * w * h * 4))
        mov.pixels.foreach_get(px)
    finally:
        bpy.data.images.remove(mov)
    img = bpy.data.images.new("posediff first frame", w, h, alpha=False)
    try:
        img.pixels.foreach_set(px)
        img.filepath_raw, img.file_format = out_png, "PNG"
        img.save()
    finally:
        bpy.data.images.remove(img)
    return w, h


def upright_image(path: str):
    """The photo as a Blender image, upright: the file itself, or, where its EXIF orientation turns
    or mirrors it (a phone's portrait shot), a packed copy of its pixels turned upright (named
    ``"<file> (upright)"``, reused while it is of the same file). A HEIC photo's converted JPEG
    (``photos.converted_photo``) is packed too.

    Raises:
        ValueError: Blender cannot read the file.
    """
    from array import array

    value = exif.orientation(path)
    if value == 1:
        img = bpy.data.images.load(path, check_existing=True)
        if img.size[0] <= 0 or img.size[1] <= 0:
            if img.users == 0:
                bpy.data.images.remove(img)
            raise ValueError(f"Blender cannot read the image {path}: is it a PNG or JPEG photo?")
        if path.endswith(CONVERTED_SUFFIX) and not img.packed_file:
            img.pack()  # a HEIC photo's converted copy: kept in the .blend, as the upright copies are
        return img
    name = f"{os.path.basename(path)} (upright)"
    img = bpy.data.images.get(name)
    if img is not None and img.get("posediff_source") == os.path.abspath(path):
        return img
    src = bpy.data.images.load(path, check_existing=True)
    try:
        w, h = src.size
        if w <= 0 or h <= 0:
            raise ValueError(f"cannot read the image {path}: is it a PNG or JPEG photo?")
        px = array("f", bytes(4 * w * h * 4))
        src.pixels.foreach_get(px)
    finally:
        if src.users == 0:
            bpy.data.images.remove(src)
    up, uw, uh = exif.to_upright(exif.flip_rows(px, w, h), w, h, value)  # Blender's rows start at the bottom
    img = bpy.data.images.new(name, uw, uh, alpha=False)
    img.pixels.foreach_set(exif.flip_rows(up, uw, uh))
    img.pack()
    img["posediff_source"] = os.path.abspath(path)
    return img


def set_camera_background(scene, path: str, width: int, height: int, cam=None, set_resolution: bool = True,
                          mirrored: bool = False) -> str:
    """Show the photo behind ``cam`` (default: the scene camera), alone (the camera's other
    backgrounds, earlier photos, are hidden, not removed), flipped left-right where it is a mirror
    image (``mirrored``: the estimate is of the flipped picture); with ``set_resolution`` the
    render size becomes the photo's (needed for the line-up). Returns what changed, for the
    operator's message ("" if nothing)."""
    cam = cam or scene.camera
    if cam is None:
        return ""
    img = upright_image(path)
    d = cam.data
    d.show_background_images = True
    bg = next((b for b in d.background_images if b.image == img), None) or d.background_images.new()
    for other in d.background_images:  # an earlier photo behind this camera would show around this one
        other.show_background_image = other == bg
    bg.image = img
    bg.alpha = 1.0
    bg.frame_method = "FIT"  # a photo of another shape than the render: whole, centred (placement.photo_in_render)
    bg.use_flip_x = bool(mirrored)
    r = scene.render
    if not set_resolution or (r.resolution_x, r.resolution_y, r.resolution_percentage) == (width, height, 100):
        return ""
    was = f"{r.resolution_x}x{r.resolution_y} at {r.resolution_percentage}%"
    r.resolution_x, r.resolution_y = width, height
    r.resolution_percentage = 100
    return f"render size set to the photo's {width}x{height} (was {was})"


#: Joints used to line the photo camera up with the detected keypoints (limb joints: the
#: detector's head/neck points are not the model's).
LINEUP_JOINTS = ("left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
                 "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist")
PHOTO_CAMERA = "Photo camera"


def photo_cameras(context, ob, response: dict, photos: list[str], start_frame: int, set_resolution: bool = True,
                  background: bool = True) -> tuple[list[str], list[float]]:
    """A Photo camera for each photo of an estimate keyed on consecutive frames (photo ``k`` at
    ``start_frame + k``): each placed from the rig as keyed on its frame, with its own photo as
    the background, and, for several photos, a timeline marker on each frame bound to its camera
    (``PoseDiff photo k``), so scrubbing switches to the camera that took the photo shown (one
    camera would line up the first photo only). The first camera is made the scene camera.

    Returns:
        (notes for the message, median line-up error per placed photo, pixels).
    """
    scene = context.scene
    frames = response["frames"]
    several = len(frames) > 1
    notes, errors = [], []
    size0 = None
    for k, fr in enumerate(frames):
        if not fr.get("hypotheses"):
            continue
        scene.frame_set(start_frame + k)
        name = PHOTO_CAMERA if k == 0 else f"{PHOTO_CAMERA} {k + 1}"
        try:
            cam, px, note = place_photo_camera(context, ob, fr, fr["hypotheses"][0], photos[k],
                                               set_resolution and k == 0, make_active=k == 0, background=background,
                                               name=name)
        except ValueError as e:
            notes.append(f"no photo camera for photo {k + 1}: {e}")
            continue
        errors.append(px)
        if k == 0:
            notes.append(f"{note}; the rig lines up with the photo within {px:.0f} px (median)")
        size = image_size(photos[k]) if background else None
        size0 = size0 or size
        if several:
            marker = scene.timeline_markers.get(f"PoseDiff photo {k + 1}") or \
                scene.timeline_markers.new(f"PoseDiff photo {k + 1}", frame=start_frame + k)
            marker.frame, marker.camera = start_frame + k, cam
            if size and size0 and abs(size[0] * size0[1] - size[1] * size0[0]) > 0.01 * size[0] * size0[1]:
                notes.append(f"photo {k + 1} ({size[0]}x{size[1]}) is not the render size's shape: its camera shows it "
                             "whole inside the frame, lined up")
    scene.frame_set(start_frame)
    if several and errors:
        notes.append(f"each photo has its own camera ('{PHOTO_CAMERA}', '{PHOTO_CAMERA} 2', ...), switched to at its "
                     f"frame by timeline markers; the rig lines up within {max(errors):.0f} px (median, worst photo)")
    return notes, errors


def camera_object(scene, name: str, settings: dict):
    """The camera object ``name`` (created and linked to ``scene`` where there is none) set to
    ``settings`` (``placement.blender_camera``: matrix_world, perspective lens, sensor, shift)."""
    from mathutils import Matrix

    cam = bpy.data.objects.get(name)
    if cam is None or cam.type != "CAMERA":
        cam = bpy.data.objects.new(name, bpy.data.cameras.new(name))
        scene.collection.objects.link(cam)
    cam.matrix_world = Matrix(settings["matrix_world"])
    d = cam.data
    d.type, d.sensor_fit, d.sensor_width = "PERSP", settings["sensor_fit"], settings["sensor_width"]
    d.lens, d.shift_x, d.shift_y = settings["lens"], settings["shift_x"], settings["shift_y"]
    return cam


def lineup_px(ob, cam, frame_result: dict) -> float:
    """Median distance (pixels of the frame's picture) between the rig's limb joints as posed now seen
    through ``cam`` (its place and rotation now, the frame's intrinsics ``frame_result["camera"]``)
    and the frame's confident keypoints (:data:`LINEUP_JOINTS`); NaN with fewer than 3 of them."""
    K, kps = frame_result.get("camera"), frame_result.get("keypoints") or {}
    joints = blender_rig.posed_joints_world(ob)
    use = [j for j in LINEUP_JOINTS if j in joints and j in kps and kps[j][2] >= 0.5]
    if not K or len(use) < 3:
        return float("nan")
    mw = [list(r) for r in cam.matrix_world]
    R = camera_math.world_to_opencv_rotation(mw)
    centre = [mw[0][3], mw[1][3], mw[2][3]]
    errs = sorted(math.dist(pl.project(R, centre, K, joints[j]), kps[j][:2]) for j in use)
    return errs[len(errs) // 2]


def place_photo_camera(context, ob, frame_result: dict, hypothesis: dict, photo: str,
                       set_resolution: bool = True, make_active: bool = True,
                       background: bool = True, name: str = PHOTO_CAMERA) -> tuple[object, float, str]:
    """Create or move the "Photo camera" (or the camera ``name``): the camera that took the photo,
    seen from the rig where it stands (as posed now). Rotation = the estimate's camera pitch/roll (the world frame of its
    ``world_joints``), intrinsics = the estimate's camera (EXIF focal length or the default
    field of view), centre = least-squares fit of the posed rig's limb joints to the detected
    keypoints (``placement.solve_camera_position``). A mirror image's estimate (``mirrored``) is of
    the flipped picture, so its background is shown flipped.

    Returns:
        (camera object, median line-up error in pixels, note for the message).
    Raises:
        ValueError: the response has no camera or too few confident keypoints.
    """
    K = frame_result.get("camera")
    kps = frame_result.get("keypoints") or {}
    if not K:
        raise ValueError("the estimate has no camera intrinsics")
    pitch = math.radians(hypothesis.get("camera_pitch_deg") or 0.0)
    roll = math.radians(hypothesis.get("camera_roll_deg") or 0.0)
    R = pl.tilt_rotation(pitch, roll)
    joints = blender_rig.posed_joints_world(ob)
    use = [j for j in LINEUP_JOINTS if j in joints and j in kps and kps[j][2] >= 0.5]
    if len(use) < 3:
        raise ValueError(f"only {len(use)} confident keypoints to line the photo camera up with")
    centre = pl.solve_camera_position(R, [joints[j] for j in use], [kps[j][:2] for j in use], K)
    errs = sorted(math.dist(pl.project(R, centre, K, joints[j]), kps[j][:2]) for j in use)
    scene = context.scene
    r = scene.render
    # the render the photo is seen in: its own size (set below), else the render size as it is, the photo
    # fitted inside it (the background's 'FIT'): another photo's shape, 'Render size = photo size' off
    size = (int(K["width"]), int(K["height"])) if set_resolution else (r.resolution_x, r.resolution_y)
    bc = pl.blender_camera(R, centre, pl.photo_in_render(K, *size))
    cam = camera_object(scene, name, bc)
    notes = [f"'{name}' placed {centre[2]:.2f} m high, pitched {math.degrees(pitch):.0f} deg, "
             f"focal {bc['lens']:.0f} mm (36 mm sensor)"]
    if make_active and scene.camera != cam:
        notes.append(f"it is now the scene camera (was {scene.camera.name if scene.camera else 'none'})")
        scene.camera = cam
    bg = set_camera_background(scene, photo, int(K["width"]), int(K["height"]), cam, set_resolution,
                               mirrored=frame_result.get("mirrored", False)) if background else ""
    if bg:
        notes.append(bg)
    return cam, errs[len(errs) // 2], "; ".join(notes)


def rig_state(ob, bones, chain_roots: bool = False) -> tuple[dict, dict]:
    """Known joints (model scale, world) and bone directions located by ``bones``.

    ``chain_roots``: keep the position only of known joints whose parent joint is not known (the
    roots of the known chains, e.g. the pelvis); the rest of a chain is given by its bone
    directions alone (:func:`retarget.chain_root_positions`).
    """
    joints = blender_rig.to_model_scale(ob, blender_rig.posed_joints_world(ob))
    names = blender_rig.bones_to_joints(ob, bones)
    known = {j: [round(c, 5) for c in joints[j]] for j in names if j in joints}
    dirs = {j: [round(c, 6) for c in d] for j, d in rt.bone_directions(joints).items() if j in names}
    if chain_roots:
        known = rt.chain_root_positions(known, dirs)
    return known, dirs


# ----------------------------------------------------------------------------- responses
def _store(s, task: str, label: str, joints: dict, score: float = 0.0, photo_frame: int = 0,
           anchor=None, skip=(), placement="GROUND", preview_png: str | None = None, pins=None) -> None:
    it = s.hypotheses.add()
    it.task, it.label, it.score, it.photo_frame = task, label, float(score), photo_frame
    it.joints_json = json.dumps(joints, separators=(",", ":"))
    it.placement = placement
    if anchor is not None:
        it.has_anchor, it.anchor = True, anchor
    it.skip_json = json.dumps(sorted(skip))
    it.pins_json = json.dumps(pins or {}, separators=(",", ":"))
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


def store_estimate(context, ob, response: dict, used_camera, placement: str = "GROUND") -> None:
    """Hypotheses of an estimate response -> scene list.

    With ``used_camera`` (the scene camera was sent): world joints through that camera and the
    pelvis anchored along the photo's rays (``ANCHOR``: the rig may leave the ground). Without:
    the estimate's own upright ``world_joints`` and ``placement`` (``GROUND``/``HOLD``), the
    camera being fitted afterwards (``place_photo_camera``).
    """
    s = settings(context)
    names = response["joint_names"]
    cam_mw = [list(r) for r in context.scene.camera.matrix_world] if used_camera else None
    s_rig = blender_rig.rig_leg_world(ob) / sk.MODEL_LEG_LENGTH
    clear_hypotheses(s)
    for fi, fr in enumerate(response["frames"]):
        for k, h in enumerate(fr["hypotheses"]):
            if cam_mw is not None:
                world = camera_math.camera_directions_to_world(h["joints"], cam_mw)
                anchor = camera_math.camera_points_to_world([la.scale(h["root_translation"], s_rig)], cam_mw)[0]
                where = "ANCHOR"
            else:
                world = h.get("world_joints") or camera_math.camera_directions_to_world(h["joints"], LOOK_ALONG_Y)
                anchor, where = None, placement
            _store(s, "estimate", f"photo {fi + 1} · #{k + 1}", dict(zip(names, world)), h.get("score", 0.0), fi,
                   anchor, (), where, h.get("preview_png"))


def store_pinned(context, task: str, poses: list, names: list, centre: list, model_scale: float, pins: dict,
                 scores=None, previews=None) -> None:
    """Completion/variation poses (world, model scale about the rig's pelvis ``centre``) ->
    hypotheses placed so that the ``pins`` (bone -> armature-space matrix) stay in the world:
    pelvis anchored at the pose's pelvis scaled back to the rig (``placement.unscale_about``),
    unpinned feet reaching down to the floor (``ANCHOR_GROUND``)."""
    s = settings(context)
    clear_hypotheses(s)
    pi = names.index("pelvis")
    for k, p in enumerate(poses):
        anchor = pl.unscale_about(p[pi], centre, model_scale)
        _store(s, task, f"{'completion' if task == 'complete' else task} #{k + 1}", dict(zip(names, p)),
               (scores or [0.0] * len(poses))[k], 0, anchor, (), "ANCHOR_GROUND",
               (previews or [None] * len(poses))[k] if previews else None, pins)


def store_poses(context, response: dict, task: str, placement: str = "GROUND") -> None:
    """Generated poses -> hypotheses standing on the floor (``GROUND``) or at the current root (``HOLD``)."""
    s = settings(context)
    names = response["joint_names"]
    pv = response.get("previews") or []
    clear_hypotheses(s)
    for k, p in enumerate(response["poses"]):
        _store(s, task, f"{task} #{k + 1}", dict(zip(names, p)), 0.0, 0, None, (), placement,
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
        skip=set(json.loads(it.skip_json or "[]")), keyframe=keyframe, frame=frame,
        pins=json.loads(it.pins_json or "{}"))


def preview_hypothesis(context, index: int) -> list[str]:
    """Pose the active armature with hypothesis ``index`` without keys (a Rigify rig's limbs
    are switched to FK, unkeyed, so the preview shows; with *Rigify limbs* = Keep in IK, limbs in
    IK get their IK controls snapped to the pose instead, unkeyed)."""
    ob = target_armature(context)
    mapped = blender_rig.mapped_bones(ob)
    keep, _ = rigify_ik.limbs_to_keep(context, ob, mapped)
    rig_checks.use_fk(ob, mapped, keyframe=False)
    out = apply_hypothesis(context, index, keyframe=False, ob=ob)
    if keep:
        rigify_ik.snap_ik(context, ob, keep, keyframe=False)
    return out


def key_hypothesis(context, ob, index: int, frame: int) -> tuple[int, int, list[str]]:
    """Key hypothesis ``index`` on ``frame`` as the rig will use it: Rigify limbs whose FK
    controls get keys are switched to FK (``IK_FK`` = 1, keyed in the same change) or, with
    *Rigify limbs* = Keep in IK, those in IK keep IK with their IK controls snapped to the pose
    and keyed (``rigify_ik``); bones whose keys the rig would override (constraints, drivers)
    are named.

    Returns:
        (bones keyed, bones moved (armature-space matrix changed), notes for the message).
    """
    names = [pb.name for pb in ob.pose.bones]
    before = blender_rig.pose_matrices(ob, names)
    mapped = blender_rig.mapped_bones(ob)
    keep, ik_note = rigify_ik.limbs_to_keep(context, ob, mapped)
    switched = rig_checks.use_fk(ob, mapped, keyframe=True, frame=frame)
    keyed = apply_hypothesis(context, index, keyframe=True, frame=frame, ob=ob)
    if keep:
        rigify_ik.snap_ik(context, ob, keep, frame=frame, keyframe=True)
    after = blender_rig.pose_matrices(ob, names)
    moved = sum(1 for n in names if max(abs(a - b) for ra, rb in zip(before[n], after[n]) for a, b in zip(ra, rb)) > 1e-4)
    notes = rig_checks.keying_notes(ob, [n for n in switched if n not in keep], keyed)
    notes += [n for n in (rigify_ik.note(keep), ik_note) if n]
    note = rig_checks.non_uniform_scale(ob)
    if note:
        notes.append(note)
    return len(keyed), moved, notes


def apply_best_per_photo(context, ob, start_frame: int) -> tuple[int, int, list[str]]:
    """Key the best hypothesis of each photo at consecutive frames; returns
    (bones keyed on the first frame, bones moved there, notes)."""
    s = settings(context)
    firsts = {}
    for i, it in enumerate(s.hypotheses):
        firsts.setdefault(it.photo_frame, i)
    out = (0, 0, [])
    for pf, i in sorted(firsts.items()):
        context.scene.frame_set(start_frame + pf)
        r = key_hypothesis(context, ob, i, start_frame + pf)
        if pf == 0:
            out = r
    context.scene.frame_set(start_frame)
    return out


def counts(keyed: int, moved: int, notes: list[str]) -> str:
    """``"keyed K bones, moved M; note; note"`` for operator messages."""
    return "; ".join([f"keyed {keyed} bones, moved {moved}"] + list(notes))
