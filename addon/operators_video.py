# SPDX-License-Identifier: GPL-3.0-or-later
"""Estimate from a video or an image sequence: the track keyed on the rig, frame by frame.

The backend streams the file (sent as its bytes when it fits in one request, else as a path),
estimates every kept
frame and solves one temporally coherent track (``frames[i].track``); this module keys the track
at the matching scene frames, sets the clip as the camera background so the rig can be scrubbed
over the footage (with *Use my camera as it is*, the camera's rotation keyed with the clip's turn,
``sequence.camera_motion``, so that the footage stays lined up), and lets the animator override one frame's hypothesis (the backend's
``track`` task re-solves the path through that choice, no sampling; the request carries only what
the solver reads, :mod:`.track_data`, and is gzip-compressed when it would pass the body limit, so
long clips can be overridden too).

Timing (:func:`scene_frames`): ``CLIP`` keys source frame ``i`` at scene frame
``start + i - first`` (one scene frame per video frame: the movie-clip background lines up);
``SCENE_FPS`` resamples to the scene's frame rate (``start + round((i - first) / video_fps *
scene_fps)``). A video's frames are placed by their time (``sequence.source_times``, the
decoder's timestamps) where the backend gives it: Blender's movie clip shows a video by time at
its own rate (``MovieClip.fps``), so a variable-frame-rate video (phones in low light, screen
recordings), keyed by frame count, would drift off its background. The response and the
settings are kept in the text block ``PoseDiff sequence``.

A video file that fits under the backend's body limit is sent as its bytes (``video.data``,
``photos.inline_video``), and an image sequence of up to 64 kept frames that fits as frames of
image bytes (``photos.inline_image_sequence``), so a backend on another machine works for short
clips. Larger ones are sent as a path: the backend must then see this machine's files (the usual
local ``posediff serve``; no size limit, streamed); otherwise it answers ``video.path: file not
found``, shown to the user with the reason.
"""

from __future__ import annotations

import math
import os

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty
from bpy_extras.io_utils import ImportHelper
from mathutils import Matrix

from . import (
    blender_rig,
    camera_math,
    image_sequence,
    keys_backup,
    operators_estimate,
    photos,
    placement,
    results,
    rig_checks,
    rigify_ik,
    track_data,
)
from . import linalg as la
from . import skeleton as sk
from .blender_rig import RigError
from .client import BackendError
from .operators_common import _TaskOperator, lens_camera
from .preferences import make_client

TEXT_NAME = "PoseDiff sequence"
VIDEO_EXT = operators_estimate.VIDEO_EXT
IMAGE_EXT = photos.SEQUENCE_IMAGE_EXT
TIMING = [("CLIP", "One key per video frame", "Source frame i is keyed at scene frame start + i (matches the clip background)"),
          ("SCENE_FPS", "Resample to scene fps", "Key at the scene frame of each video frame's time (scene fps respected)")]


def scene_frames(source_frames: list[int], source_fps: float, scene_fps: float, start: int, timing: str,
                 times: list[float] | None = None, clip_fps: float | None = None) -> list[int]:
    """Scene frame of each estimated source frame (see the module docstring). Pure math.

    Args:
        source_frames: ``[T]`` source indices; source_fps, scene_fps: frames per second.
        times: ``[T]`` the frames' times in the source (seconds) or None (``index / source_fps``).
        clip_fps: the rate Blender's movie clip of the video plays at (``CLIP`` timing with times;
            default ``source_fps``).
    """
    if not source_frames:
        return []
    if times is not None and len(times) == len(source_frames):
        t0 = times[0]
        if timing == "SCENE_FPS":
            return [start + round((t - t0) * scene_fps) for t in times]
        rate = clip_fps or source_fps
        return [start + round(t * rate) - round(t0 * rate) for t in times]  # the clip frame that shows it
    first = source_frames[0]
    if timing == "SCENE_FPS":
        return [start + round((i - first) / source_fps * scene_fps) for i in source_frames]
    return [start + (i - first) for i in source_frames]


def max_turn_deg(motion: list) -> float:
    """The largest angle (degrees) of a clip's camera turns (``sequence.camera_motion``: 3x3 rotations). Pure math."""
    import math

    return max(math.degrees(math.acos(max(-1.0, min(1.0, (m[0][0] + m[1][1] + m[2][2] - 1.0) / 2.0)))) for m in motion)


def _scene_fps(scene) -> float:
    return scene.render.fps / (scene.render.fps_base or 1.0)


def fps_base_pair(fps: float) -> tuple[int, float]:
    """``(render.fps, render.fps_base)`` for a frame rate: NTSC rates (29.97 = 30000/1001, 59.94,
    23.976) as Blender's own presets write them, others rounded to a whole number. Pure math."""
    whole = round(fps)
    if whole and abs(fps - whole / 1.001) < 0.005:
        return whole, 1.001
    return max(1, whole), 1.0


def set_scene_fps(scene, fps: float) -> str:
    """Set the scene's frame rate to ``fps`` (see :func:`fps_base_pair`); returns the note for the message."""
    was = _scene_fps(scene)
    new = fps_base_pair(fps)
    if abs(new[0] / new[1] - was) < 1e-3:
        return ""
    scene.render.fps, scene.render.fps_base = new
    return f"; the scene's frame rate set to the clip's {new[0] / new[1]:.4g} fps (was {was:.4g})"


def timing_note(clip_fps: float | None, scene_fps: float, timing: str, background: bool) -> str:
    """What the animator should know when the clip's and the scene's frame rates differ ("" when
    they agree within 1 %). Pure text."""
    if not clip_fps or abs(clip_fps / scene_fps - 1.0) < 0.01:
        return ""
    if timing == "CLIP":
        speed = scene_fps / clip_fps
        big = max(speed, 1 / speed) >= 1.5
        if speed < 1:
            how = f"{1 / speed:.2g}x slower" if big else f"{(1 - speed) * 100:.0f} % slower"
        else:
            how = f"{speed:.2g}x faster" if big else f"{(speed - 1) * 100:.0f} % faster"
        return (f"; the clip is {clip_fps:.4g} fps and the scene {scene_fps:.4g} fps: one key per video frame plays "
                f"{how} than filmed (the background keeps in step); for real time, tick \"Scene frame rate = "
                "clip's\" or key with \"Resample to scene fps\"")
    return (f"; keys resampled from the clip's {clip_fps:.4g} fps to the scene's {scene_fps:.4g} fps" +
            ("; the clip background shows one video frame per scene frame, so it runs out of step with them" if background else ""))


def _source_size(path: str, is_video: bool) -> tuple[int, int]:
    if not is_video:  # a HEIC frame's size from the backend's upright JPEG of it (Blender reads no HEIC)
        return results.image_size(operators_estimate.converted_photo(path) if photos.is_heif(path) else path)
    clip = bpy.data.movieclips.load(path, check_existing=True)
    w, h = clip.size
    if w <= 0 or h <= 0:
        raise ValueError(f"Blender cannot read the size of the video {path}")
    return int(w), int(h)


def movie_clip_fps(path: str, keep: bool) -> float:
    """The frame rate Blender plays the video at (its movie clip's ``fps``: what the background
    shows at each scene frame). ``keep`` False: a movie clip loaded only for this is removed again."""
    had = {c.name for c in bpy.data.movieclips}
    clip = bpy.data.movieclips.load(path, check_existing=True)
    fps = float(clip.fps)
    if not keep and clip.name not in had:
        bpy.data.movieclips.remove(clip)
    return fps


def set_clip_background(scene, path: str, is_video: bool, first_image: str | None, start: int, first: int, count: int,
                        mirrored: bool = False) -> None:
    """The scene camera shows the clip from scene frame ``start``: a movie clip (video: ``first`` is
    the movie clip's frame shown there, its first frame 0) or an image sequence loaded from
    ``first_image`` (``first`` is its ``frame_offset``: Blender shows the file numbered
    ``scene frame - start + 1 + first``, see :mod:`.image_sequence`; ``count`` files); flipped
    left-right where the clip is a mirror image (``mirrored``: the track is of the flipped frames)."""
    cam = scene.camera
    if cam is None or cam.type != "CAMERA":
        return
    d = cam.data
    d.show_background_images = True
    if is_video:
        clip = bpy.data.movieclips.load(path, check_existing=True)
        clip.frame_start = start - first
        bg = next((b for b in d.background_images if b.source == "MOVIE_CLIP" and b.clip == clip), None) or d.background_images.new()
        bg.source = "MOVIE_CLIP"
        bg.clip = clip
        bg.use_camera_clip = False
        w, h = clip.size
    else:
        img = bpy.data.images.load(first_image, check_existing=True)
        w, h = img.size  # before it is a sequence: its size is then that of the file numbered as its last frame
        img.source = "SEQUENCE"
        bg = next((b for b in d.background_images if b.image == img), None) or d.background_images.new()
        bg.source = "IMAGE"
        bg.image = img
        bg.image_user.frame_start = start
        bg.image_user.frame_duration = count
        bg.image_user.frame_offset = first
        bg.image_user.use_auto_refresh = True
    for other in d.background_images:  # an earlier clip or photo behind this camera would show around this one
        other.show_background_image = other == bg
    bg.alpha = 1.0
    bg.use_flip_x = bool(mirrored)
    if w and h:
        scene.render.resolution_x, scene.render.resolution_y = int(w), int(h)
        scene.render.resolution_percentage = 100


def image_sequence_background(scene, folder: str, src: list[int], start: int, mirrored: bool = False):
    """The image sequence's frames ``src[0]..src[-1]`` (indices in ``folder``'s natural order, as the
    backend read them) as the scene camera's background from scene frame ``start``: the files
    themselves where Blender finds them by number, else a numbered upright copy
    (:func:`.image_sequence.numbered_copy`: HEIC frames, EXIF-rotated ones, gaps in the numbering).

    A generator (yields the fraction copied, so a long sequence is copied between Blender's
    events); returns a note for the message ("" when the files are shown as they are). A copy that
    fails (the backend gone, a full disk) leaves the keys and says why: no background.
    """
    shown = photos.sequence_images(folder)[src[0]:src[-1] + 1]
    n0 = image_sequence.numbered_run(shown)
    upright = any(image_sequence.needs_upright_copy(p) for p in shown)  # each file's EXIF read once
    if n0 is not None and not upright:
        set_clip_background(scene, folder, False, shown[0], start, n0 - 1, len(shown), mirrored)
        return ""
    client = make_client()
    try:
        first = yield from image_sequence.numbered_copy(shown, operators_estimate.converted_folder(),
                                                         lambda p: photos.upright_jpeg(client, p), upright)
    except (BackendError, OSError) as e:
        return f"; no camera background: the frames need a numbered upright copy for Blender, which failed: {e}"
    set_clip_background(scene, folder, False, first, start, 0, len(shown), mirrored)
    why = "HEIC or EXIF-rotated frames, shown as the backend's upright JPEGs" if upright else \
        "frames not numbered one by one, renumbered"
    return f"; the camera background is a numbered copy of the {len(shown)} frames ({why}) in {os.path.dirname(first)}"


def _reader() -> track_data.StoredEstimate:
    txt = bpy.data.texts.get(TEXT_NAME)
    if txt is None:
        raise ValueError("no video estimate in this file yet: run Estimate from video / image sequence first")
    lines = txt.as_string().split("\n")  # one copy (indexing txt.lines walks the list: quadratic)
    try:
        return track_data.StoredEstimate(lines)
    except ValueError as e:
        raise ValueError(f"{TEXT_NAME}: {e}") from None


def _stored() -> dict:
    """The video estimate kept in the text block :data:`TEXT_NAME`: ``{"response", "meta"}``.

    Raises:
        ValueError: there is none, or it is damaged.
    """
    reader = _reader()
    try:
        return reader.data()
    except ValueError as e:
        raise ValueError(f"{TEXT_NAME}: {e}") from None


def _store(data: dict) -> None:
    """Keep the response and the settings in the text block :data:`TEXT_NAME` (saved with the .blend),
    compressed frame by frame (:func:`.track_data.encode`: base64 lines of 76 characters; Blender's
    text block edits a line in time growing with its length, so one long line would be quadratic)."""
    txt = bpy.data.texts.get(TEXT_NAME) or bpy.data.texts.new(TEXT_NAME)
    txt.from_string(track_data.encode(data))


ROTATION_PATH = {"QUATERNION": "rotation_quaternion", "AXIS_ANGLE": "rotation_axis_angle"}


def travel_m(translation: list) -> float:
    """How far a travelling camera went (metres, model scale): the distance from its first position to
    its last (``sequence.camera_translation``). Pure math."""
    return math.dist(translation[0], translation[-1]) if translation else 0.0


def key_camera_motion(cam, camera_matrix_world, motion: list | None, frames: list[int], translation: list | None = None,
                      scale: float = 1.0, zoom: list | None = None, lens: float | None = None,
                      cuts: list | None = None) -> bool:
    """Key the scene camera on ``frames`` as the filming camera moved: its rotation with the clip's turn
    (``sequence.camera_motion``) and, for a camera that travelled (``sequence.camera_translation``,
    model metres, times ``scale`` for the rig's size), its location. At frame ``t`` it looks from where
    the filming camera did (``camera_math.moved_camera_matrix`` of the first frame's
    ``camera_matrix_world``), so the footage behind it lines up with the rig, which is keyed in the
    world of the first frame's camera. Without a travel its position is not keyed (a turn about its centre).
    A lens that zoomed (``sequence.camera_zoom``: each frame's focal length over the first's) keys the
    camera's focal length, ``lens`` (mm, the first frame's) times it. At ``cuts`` (indices of
    ``frames`` where a new shot begins) the keys hold until the jump (constant interpolation: no
    sub-frame sweep from one shot's camera to the next, e.g. in motion blur).

    Returns False, keying nothing, for a camera with constraints (a Track To would override the keys).
    """
    if cam.constraints:
        return False
    path = ROTATION_PATH.get(cam.rotation_mode, "rotation_euler")
    for i, f in enumerate(frames):
        prev = cam.rotation_euler.copy()
        cam.matrix_world = Matrix(camera_math.moved_camera_matrix(camera_matrix_world, motion[i] if motion else None,
                                                                  translation[i] if translation else None, scale))
        if motion:
            if path == "rotation_euler":  # the euler nearest the previous one (no 360-degree flips between keys)
                cam.rotation_euler = cam.rotation_euler.to_matrix().to_euler(cam.rotation_mode, prev)
            cam.keyframe_insert(data_path=path, frame=f)
        if translation:
            cam.keyframe_insert(data_path="location", frame=f)
        if zoom and lens:
            cam.data.lens = lens * zoom[i]
            cam.data.keyframe_insert(data_path="lens", frame=f)
    held = {frames[c - 1] for c in cuts or () if 0 < c < len(frames)}
    for bag in (blender_rig.channelbag(cam), blender_rig.channelbag(cam.data)) if held else ():
        for fc in bag.fcurves if bag else ():
            for k in fc.keyframe_points:
                if round(k.co.x) in held:
                    k.interpolation = "CONSTANT"
    return True


#: The camera fitted to a clip estimated without *Use my camera as it is* (as photos get the Photo camera).
VIDEO_CAMERA = "Video camera"


def place_video_camera(context, ob, response: dict, meta: dict, set_resolution: bool = True) -> str:
    """The **Video camera**: the camera that filmed the clip, where the track puts it, made the scene
    camera, so the footage behind it lines up with the rig keyed without a camera of the user's
    (:func:`_key_frames`: the track's world, the camera at its origin, moved so that the pelvis
    starts above the armature's origin and scaled by the rig's size). It is that world's camera
    scaled about its centre with everything else, which leaves every frame's picture as the
    backend saw it: rotation from the clip's tilt (``sequence.camera_pitch_deg`` / ``camera_roll_deg``),
    intrinsics from the first frame's camera (fitted for the render, :func:`placement.photo_in_render`),
    and its turn, travel and zoom (and an edited clip's shot cameras) keyed as on the user's camera
    (:func:`key_camera_motion`). Keys left on it by an earlier clip are cleared first (it is the
    add-on's camera, as the Photo camera is). Run after the track is keyed (``meta["scene_frames"]``).

    Returns a note for the message ("; ..."), with the median distance (pixels) between the rig's
    limb joints seen through it and the keypoints on the first frame where the person is seen.
    """
    seq = response.get("sequence") or {}
    frames, scene, fr_all = meta["scene_frames"], context.scene, response["frames"]
    seen = [t for t, fr in enumerate(fr_all) if fr.get("keypoints") and fr.get("camera")]
    if not seen:
        return "; no video camera: nobody seen on any frame"
    t0 = seen[0]
    zoom = seq.get("camera_zoom")
    K = dict(fr_all[t0]["camera"])
    if zoom:  # the first frame's focal length: the keyed zoom is relative to it
        K["fx"], K["fy"] = K["fx"] / zoom[t0], K["fy"] / zoom[t0]
    r = scene.render
    if set_resolution:
        r.resolution_x, r.resolution_y, r.resolution_percentage = int(K["width"]), int(K["height"]), 100
    s_rig = blender_rig.rig_leg_world(ob) / sk.MODEL_LEG_LENGTH
    base = list(ob.matrix_world.translation)
    root0, floor = fr_all[0]["track"]["world_root"], seq.get("floor_z") or 0.0
    centre = [base[0] - s_rig * root0[0], base[1] - s_rig * root0[1], base[2] - s_rig * floor]  # the world's origin
    R = placement.tilt_rotation(math.radians(seq.get("camera_pitch_deg") or 0.0), math.radians(seq.get("camera_roll_deg") or 0.0))
    bc = placement.blender_camera(R, centre, placement.photo_in_render(K, r.resolution_x, r.resolution_y))
    old = bpy.data.objects.get(VIDEO_CAMERA)
    if old is not None and old.type == "CAMERA":  # an earlier clip's keys would override the new placement
        old.animation_data_clear()
        old.data.animation_data_clear()
    cam = results.camera_object(scene, VIDEO_CAMERA, bc)
    d = cam.data
    was = scene.camera.name if scene.camera else "none"
    scene.camera = cam
    motion, travel = seq.get("camera_motion"), seq.get("camera_translation")
    if motion or travel or zoom:
        meta["camera_keyed"] = key_camera_motion(cam, [list(row) for row in cam.matrix_world], motion, frames, travel,
                                                 s_rig, zoom, d.lens, seq.get("cuts"))
    meta["camera"] = cam.name
    scene.frame_set(frames[t0])
    px = results.lineup_px(ob, cam, fr_all[t0])
    scene.frame_set(frames[0])
    made = "the scene camera" if was == cam.name else f"made the scene camera (was {was})"
    lined = "" if math.isnan(px) else f"; the rig lines up with it within {px:.0f} px (median)"
    return (f"; '{VIDEO_CAMERA}' placed where the footage was filmed from, {centre[2]:.2f} m high, pitched "
            f"{seq.get('camera_pitch_deg') or 0.0:.0f} deg, focal {bc['lens']:.0f} mm (36 mm sensor), {made}{lined}")


def key_track_steps(context, ob, response: dict, meta: dict):
    """Key every frame's track pose at its scene frame, as the rig will use it: a Rigify rig's limbs
    are switched to FK (``IK_FK`` = 1, keyed on the clip's first and last frames; its limbs are in
    IK by default, which ignores the FK controls keyed here) or, with *Rigify limbs* = Keep in IK,
    those in IK stay in IK with their IK controls snapped to each frame's pose and keyed
    (``rigify_ik``, ~0.16 s more a frame); bones whose keys the rig would override are named.

    A generator: it yields the fraction keyed (0..1) after each frame, so the add-on keys a long
    clip in slices between Blender's events (``jobs``), and returns (frames keyed, notes for the
    message). Closed early, or failing, it puts the rig's action, pose and switches back as they
    were (``keys_backup``): a stopped clip leaves no half-keyed action.
    """
    seq = response.get("sequence") or {}
    frames = scene_frames(seq.get("source_frames") or list(range(len(response["frames"]))),
                          seq.get("source_fps") or seq.get("fps") or 25.0, meta["scene_fps"], meta["start"], meta["timing"],
                          seq.get("source_times"), meta.get("clip_fps"))
    backup = keys_backup.KeysBackup(ob)
    try:
        out = yield from _key_frames(context, ob, response, meta, frames)
    except BaseException:  # cancelled (closed / JobCancelled thrown in) or failed: as it was
        backup.restore()
        raise
    backup.discard()
    return out


def _key_frames(context, ob, response, meta, frames):
    """The body of :func:`key_track_steps` (its backup taken): yields the fraction keyed."""
    names = response["joint_names"]
    seq = response.get("sequence") or {}
    rig = blender_rig.rig_of(ob)
    s_rig = blender_rig.rig_leg_world(ob, rig) / sk.MODEL_LEG_LENGTH
    cam_mw = meta.get("camera_matrix_world")
    base = list(ob.matrix_world.translation)
    fr0 = response["frames"][0]["track"]
    floor = seq.get("floor_z") or 0.0
    motion = seq.get("camera_motion")  # the camera's turn the backend undid (x_t = M_t x_0), or None
    travel = seq.get("camera_translation")  # a travelling camera's centre, first frame's camera frame, or None
    mapped = blender_rig.mapped_bones(ob)
    keep, ik_note = rigify_ik.limbs_to_keep(context, ob, mapped)  # Rigify limbs kept in IK (scene setting)
    switched = rig_checks.use_fk(ob, mapped, keyframe=True, frame=frames[0])
    rig_checks.use_fk(ob, mapped, keyframe=True, frame=frames[-1])
    snaps = rigify_ik.limb_snaps(ob) if keep else {}
    if keep:  # the FK controls are posed (what the IK snap reads) whatever the switch; keyed back to IK
        rigify_ik.set_ik(ob, keep, True, (frames[0], frames[-1]))
    keyed: list[str] = []
    batch = None  # on a rig with constraints: one evaluation per bone level, if the first frame agrees
    for i, (fr, f) in enumerate(zip(response["frames"], frames)):
        tr = fr["track"]
        if cam_mw is not None:
            # the track is in each frame's own camera: back to the first frame's, which the scene camera is
            back = la.transpose(motion[i]) if motion else la.identity()
            world = camera_math.camera_directions_to_world([la.matvec(back, j) for j in tr["joints"]], cam_mw)
            root = la.matvec(back, tr["root_translation"])
            if travel:  # the camera had moved: the root seen from where it began
                root = la.add(root, travel[i])
            anchor = camera_math.camera_points_to_world([la.scale(root, s_rig)], cam_mw)[0]
        else:
            # no scene camera: the clip's trajectory from the armature's origin, feet on its floor
            world = tr["world_joints"]
            d = [tr["world_root"][0] - fr0["world_root"][0], tr["world_root"][1] - fr0["world_root"][1],
                 tr["world_root"][2] - floor]
            anchor = [b + s_rig * c for b, c in zip(base, d)]
        pose = dict(zip(names, world))
        if batch is None:
            batch = blender_rig.batched_updates_agree(ob, pose, anchor, rig)
        keyed = blender_rig.apply_pose(ob, pose, placement="ANCHOR", anchor_world=anchor, keyframe=True, frame=f, rig=rig,
                                       batch_updates=batch)
        if keep:
            rigify_ik.snap_ik(context, ob, keep, frame=f, keyframe=True, switch=False, snaps=snaps)
        yield (i + 1) / len(frames)
    meta["scene_frames"] = frames
    cam = bpy.data.objects.get(meta.get("camera") or "") or context.scene.camera
    zoom = seq.get("camera_zoom")  # a lens that zoomed: each frame's focal length over the first's, or None
    meta["camera_keyed"] = bool(cam_mw is not None and (motion or travel or zoom) and cam is not None and cam.type == "CAMERA"
                                and key_camera_motion(cam, cam_mw, motion, frames, travel, s_rig, zoom, meta.get("camera_lens"),
                                                      seq.get("cuts")))
    context.scene.frame_set(frames[0])
    notes = rig_checks.keying_notes(ob, [n for n in switched if n not in keep], keyed)
    notes += [n for n in (rigify_ik.note(keep), ik_note) if n]
    return len(frames), "".join("; " + n for n in notes)


def key_track(context, ob, response: dict, meta: dict) -> tuple[int, str]:
    """:func:`key_track_steps` run to the end in one go, with Blender's progress (cursor /
    status bar) meanwhile (scripts, tests, blocking operators). Returns (frames keyed, notes)."""
    wm = context.window_manager
    wm.progress_begin(0, 1000)
    try:
        steps = key_track_steps(context, ob, response, meta)
        i = 0
        while True:
            try:
                p = next(steps)
            except StopIteration as done:
                return done.value
            i += 1
            if i % 25 == 0:
                wm.progress_update(int(p * 1000))
    finally:
        wm.progress_end()


class POSEDIFF_OT_estimate_video(_TaskOperator, bpy.types.Operator, ImportHelper):
    """Estimate a video or an image sequence (pick any image of the folder) and key the track on the rig"""

    bl_idname = "posediff.estimate_video"
    bl_label = "Estimate from video / image sequence"
    bl_options = {"REGISTER", "UNDO"}

    filter_glob: StringProperty(default=";".join("*" + e for e in VIDEO_EXT + IMAGE_EXT), options={"HIDDEN"})
    every: IntProperty(name="Every", default=1, min=1, description="Keep every N-th frame of the clip")
    start: StringProperty(name="Start", default="", description="First frame ('12') or time ('0.5s'); empty = the beginning")
    end: StringProperty(name="End", default="", description="End frame, exclusive ('120') or time ('4.8s'); empty = the end")
    person: IntProperty(name="Person", default=0, min=0, max=64,
                        description="Which person, by size on the first frame where anybody is seen (0 = the largest); "
                                    "the backend follows that person through the clip")
    timing: EnumProperty(name="Keys", items=TIMING, default="CLIP")
    match_fps: BoolProperty(name="Scene frame rate = clip's", default=False,
                            description="Set the scene's frame rate to the video's, so that one key per video frame "
                                        "plays in real time")
    background: BoolProperty(name="Clip as camera background", default=True)
    moving_camera: BoolProperty(name="Camera travels with the person", default=False,
                                description="A tracking shot (the camera carried alongside someone walking, a dolly, "
                                            "a car): the camera's path is recovered from the person's planted feet, "
                                            "so the rig walks through the scene instead of on the spot; off for a "
                                            "camera that stays in one place (a tripod, a phone held still or panned)")
    find_cuts: BoolProperty(name="Find cuts (edited clip)", default=True,
                            description="An edited clip changes from one camera to another: each shot gets its own "
                                        "camera, placed so that the rig's motion continues across the cut; off to take "
                                        "the clip as one shot")

    def invoke(self, context, event):
        self.person = max(context.scene.posediff.person, 0)  # the one picked with Find people, if any
        return ImportHelper.invoke(self, context, event)

    def execute(self, context):
        s = context.scene.posediff
        try:
            ob = results.target_armature(context)
            path = os.path.abspath(bpy.path.abspath(self.filepath))
            if not os.path.isfile(path):
                raise ValueError(f"file not found: {self.filepath}; choose a video or an image of a sequence")
            ext = os.path.splitext(path)[1].lower()
            is_video = ext not in IMAGE_EXT
            source = path if is_video else os.path.dirname(path)
            video = {"path": source, "every": int(self.every)}
            if self.person:
                video["person"] = int(self.person)
            if s.mirrored:
                video["mirrored"] = True
            for k in ("start", "end"):
                v = getattr(self, k).strip()
                if v and not photos.FRAME_TIME.match(v):
                    raise ValueError(f"{k.title()} '{v}' is neither a frame nor a time: give a frame number ('120', "
                                     "counted from 0) or seconds ('4.8s'); no minutes ('1:30' -> '90s')")
                if v:
                    video[k] = v
            use_cam = s.use_camera and context.scene.camera is not None
            cam_mw = cam_name = cam_lens = None
            if use_cam:
                w, h = _source_size(path, is_video)
                cam = results.camera_request(context.scene, w, h, mirrored=s.mirrored)
                if cam:
                    video["camera"] = cam
                    cam_mw = [list(r) for r in context.scene.camera.matrix_world]
                    cam_name = context.scene.camera.name
                    cam_lens = context.scene.camera.data.lens
            elif (lens := lens_camera(s)) is not None:
                video["camera"] = lens  # the panel's Lens, for footage that does not say its own
        except (RigError, ValueError) as e:
            return self.refuse(context, str(e))
        payload = {"video": video, "num_hypotheses": s.num_hypotheses, "seed": s.seed}
        if self.moving_camera or not self.find_cuts:
            payload["sequence"] = {**({"moving_camera": True} if self.moving_camera else {}),
                                   **({} if self.find_cuts else {"detect_cuts": False})}
        meta = {"start": context.scene.frame_current, "timing": self.timing, "scene_fps": _scene_fps(context.scene),
                "camera_matrix_world": cam_mw, "camera": cam_name, "camera_lens": cam_lens, "armature": ob.name, "fixed": {},
                "path": path, "is_video": is_video,
                "rotation": video.get("camera", {}).get("rotation")}
        background = self.background
        match_fps = self.match_fps

        def apply(ctx, res):
            seq = res.get("sequence") or {}
            clip_fps = seq.get("source_fps") or seq.get("fps")
            if is_video:  # the rate Blender shows the video at (a variable-frame-rate video's nominal one)
                meta["clip_fps"] = clip_fps = movie_clip_fps(path, keep=background) or clip_fps
            fps_note = ""
            fps_was = (ctx.scene.render.fps, ctx.scene.render.fps_base)
            if match_fps and clip_fps:
                fps_note = set_scene_fps(ctx.scene, clip_fps)
                meta["scene_fps"] = _scene_fps(ctx.scene)
            try:
                n, rig_notes = yield from key_track_steps(ctx, ob, res, meta)  # in slices between events
            except BaseException:
                if fps_note:  # the scene's frame rate as it was too
                    ctx.scene.render.fps, ctx.scene.render.fps_base = fps_was
                raise
            cam_note = ""
            if meta["camera_matrix_world"] is None:  # no camera of the user's: the one that filmed the clip
                cam_note = place_video_camera(ctx, ob, res, meta, ctx.scene.posediff.set_resolution or background)
            _store({"response": res, "meta": meta})
            src = seq.get("source_frames") or [0]
            times = seq.get("source_times")
            first = round(times[0] * clip_fps) if is_video and times and clip_fps else src[0]  # the clip's frame
            bg_note = ""
            mirrored = any(f.get("mirrored") for f in res.get("frames") or [])
            if background and is_video:
                set_clip_background(ctx.scene, path, True, None, meta["scene_frames"][0], first, src[-1] - src[0] + 1,
                                    mirrored)
            elif background and ctx.scene.camera is not None:
                bg_note = yield from image_sequence_background(ctx.scene, source, src, meta["scene_frames"][0], mirrored)
            if mirrored:
                bg_note += "; the clip is a mirror image: estimated" + (" and shown" if background else "") + \
                    " flipped left-right"
            gaps = seq.get("gaps") or []
            extra = f"; {len(gaps)} frame(s) without a person filled from neighbours" if gaps else ""
            extra += rig_notes + cam_note + bg_note
            cam_name = meta["camera"]

            def keyed(yes: str, what: str) -> str:  # the scene camera keyed, or why not
                if meta.get("camera_keyed"):
                    return yes
                if meta["camera_matrix_world"] is None:
                    return ""
                return f" ({what} not keyed on the camera {cam_name}: it has constraints, which would override the keys)"

            cuts = seq.get("cuts") or []
            if cuts:  # an edited clip: the backend's clip warning names the cuts
                extra += f"; {len(cuts) + 1} shots, the rig's motion continuous across the cuts" + keyed(
                    f"; the camera {cam_name} keyed jumping to each shot's camera (the footage lines up with the rig)",
                    "each shot's camera")
            elif seq.get("camera_motion"):
                extra += (f"; the camera's turn during the clip (up to {max_turn_deg(seq['camera_motion']):.1f} deg) was undone"
                          + keyed(f" and keyed on the camera {cam_name} (the footage lines up with the rig)", "the turn"))
            if seq.get("camera_zoom"):
                z = seq["camera_zoom"]
                extra += (f"; the lens zoomed ({min(z):.2f}-{max(z):.2f}x the first frame's focal length): each frame's "
                          "depth solved with its own")
                if meta.get("camera_keyed"):
                    extra += f", keyed on the camera {cam_name}'s focal length"
            if seq.get("camera_translation") and seq.get("moving_camera"):
                extra += f"; the camera's travel ({travel_m(seq['camera_translation']):.1f} m) was recovered from the feet"
                if meta.get("camera_keyed"):
                    extra += f" and keyed on the camera {cam_name}"
            extra += fps_note or timing_note(clip_fps, meta["scene_fps"], meta["timing"], background)
            extra += "".join(f"; {w}" for w in seq.get("warnings") or [])  # about the whole clip (the backend's)
            return f"keyed the track on {n} frames ({meta['scene_frames'][0]}-{meta['scene_frames'][-1]}){extra}"

        return self.run_task(context, "estimate", payload, f"estimate {os.path.basename(path)}", apply)


def _frame_index(meta: dict, scene_frame: int) -> int:
    frames = meta.get("scene_frames") or []
    if not frames:
        raise ValueError("the stored video estimate has no keyed frames")
    return min(range(len(frames)), key=lambda i: abs(frames[i] - scene_frame))


class POSEDIFF_OT_track_hypotheses(bpy.types.Operator):
    """List the hypotheses of the video frame at the current scene frame (click one to preview it)"""

    bl_idname = "posediff.track_hypotheses"
    bl_label = "Frame hypotheses"

    def execute(self, context):
        try:
            stored = _reader()  # only this frame is decoded
            t = _frame_index(stored.meta, context.scene.frame_current)
            sub = {"joint_names": stored.response["joint_names"], "frames": [stored.frame(t)]}
            if not sub["frames"][0]["hypotheses"]:
                raise ValueError(f"video frame {t} had no person: its pose is filled from the neighbours")
            ob = results.target_armature(context)
            results.store_estimate(context, ob, sub, stored.meta.get("camera_matrix_world") is not None)
        except (RigError, ValueError, KeyError) as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        context.scene.posediff["video_frame"] = t
        self.report({"INFO"}, f"video frame {t}: {len(sub['frames'][0]['hypotheses'])} hypotheses; pick one, then Use in track")
        return {"FINISHED"}


class POSEDIFF_OT_track_override(_TaskOperator, bpy.types.Operator):
    """Make the track pass through the selected hypothesis on this frame; the other frames are re-solved around it"""

    bl_idname = "posediff.track_override"
    bl_label = "Use in track"
    bl_options = {"REGISTER", "UNDO"}
    hypothesis: IntProperty(default=-1, options={"SKIP_SAVE"}, description="-1 = the selected one in the list")

    def execute(self, context):
        s = context.scene.posediff
        try:
            data = _stored()
            meta, res = data["meta"], data["response"]
            ob = bpy.data.objects.get(meta["armature"]) or results.target_armature(context)
            t = _frame_index(meta, context.scene.frame_current)
            k = s.hypothesis_index if self.hypothesis < 0 else self.hypothesis
            if not 0 <= k < len(res["frames"][t]["hypotheses"]):
                raise ValueError(f"video frame {t} has no hypothesis {k + 1}")
            meta["fixed"][str(t)] = int(k)
        except (RigError, ValueError, KeyError) as e:
            return self.refuse(context, str(e))
        seq = res.get("sequence") or {}
        payload = {"frames": track_data.track_request_frames(res["frames"]), "sequence": {"fps": seq.get("fps", 25.0), "fixed": meta["fixed"]},
                   "source_frames": seq.get("source_frames"), "source_fps": seq.get("source_fps"),
                   "source_times": seq.get("source_times")}
        if seq.get("camera_motion"):
            payload["sequence"]["camera_motion"] = seq["camera_motion"]  # the turn the estimate undid
        if seq.get("moving_camera"):
            payload["sequence"]["moving_camera"] = True  # the camera's travel re-solved with the track
        if seq.get("cuts"):
            payload["sequence"]["cuts"] = seq["cuts"]  # an edited clip's shots, solved apart and joined again
        if meta.get("rotation"):
            payload["camera"] = {"rotation": meta["rotation"]}

        def apply(ctx, resolved):
            new = track_data.merge_tracks(res, resolved)
            n, rig_notes = yield from key_track_steps(ctx, ob, new, meta)  # in slices between events
            if meta["camera_matrix_world"] is None and meta.get("camera") == VIDEO_CAMERA:  # where the new track puts it
                place_video_camera(ctx, ob, new, meta, set_resolution=False)
            _store({"response": new, "meta": meta})
            ctx.scene.frame_set(meta["scene_frames"][t])
            return f"track re-solved through hypothesis {k + 1} on video frame {t}; re-keyed {n} frames{rig_notes}"

        return self.run_task(context, "track", payload, "re-solve track", apply)


class POSEDIFF_PT_video(bpy.types.Panel):
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "PoseDiff"
    bl_label = "Video"
    bl_parent_id = "POSEDIFF_PT_main"

    def draw(self, context):
        col = self.layout.column(align=True)
        col.operator("posediff.estimate_video", icon="FILE_MOVIE")
        if bpy.data.texts.get(TEXT_NAME) is not None:
            row = col.row(align=True)
            row.operator("posediff.track_hypotheses", icon="PRESET")
            row.operator("posediff.track_override", icon="CON_FOLLOWTRACK")


CLASSES = (POSEDIFF_OT_estimate_video, POSEDIFF_OT_track_hypotheses, POSEDIFF_OT_track_override, POSEDIFF_PT_video)
