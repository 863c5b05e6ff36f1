# SPDX-License-Identifier: GPL-3.0-or-later
"""The installed add-on's operators end to end against a live ``posediff serve`` subprocess.

Real Blender (bpy), the real backend on a free loopback port with ``POSEDIFF_TOKEN``, the real
2D detector on ``samples/image2.jpeg``. Operators run with ``blocking=True`` (no event loop
for timers in background mode).
"""

from __future__ import annotations

import math
import time

import pytest

bpy = pytest.importorskip("bpy")

from addon_helpers import ROOT, addon_against, free_port, metarig_scene, serve_for_tests  # noqa: E402

POSEDIFF = ROOT / ".venv" / "bin" / "posediff"
PHOTO = ROOT / "samples" / "image2.jpeg"
_installed: dict = {}


def addon_module(name: str):
    """A submodule of the installed add-on (``bl_ext.posediff_test.posediff.<name>``)."""
    from importlib import import_module

    return import_module(f"{_installed['module']}.{name}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``posediff serve --port 0`` through the add-on's launcher (port read from the ready line)."""
    if not POSEDIFF.exists():
        pytest.fail(f"{POSEDIFF} missing: run 'python3 build.py setup' first")
    yield from serve_for_tests([POSEDIFF], ROOT, tmp_path_factory.mktemp("server") / "serve.log")


@pytest.fixture(scope="module")
def addon(tmp_path_factory, server):
    for module, prefs in addon_against(tmp_path_factory.mktemp("ext"), server):
        _installed["module"] = module
        yield prefs


@pytest.fixture()
def rig(addon):
    return metarig_scene(num_hypotheses=4, num_generate=3, seed=0, previews=True, use_camera=False)


def _keys(ob):
    from bpy_extras import anim_utils

    ad = ob.animation_data
    if ad is None or ad.action is None:
        return {}
    bag = anim_utils.action_get_channelbag_for_slot(ad.action, ad.action_slot)
    return {(fc.data_path, fc.array_index): [tuple(k.co) for k in fc.keyframe_points] for fc in bag.fcurves}


def _keyed_bones(ob, frame):
    return {p.split('"')[1] for (p, _), ks in _keys(ob).items() if any(abs(f - frame) < 1e-3 for f, _ in ks)}


def _pose(ob):
    return {pb.name: tuple(pb.matrix_basis.col[i][j] for i in range(4) for j in range(4)) for pb in ob.pose.bones}


def test_check_backend_status_line(addon):
    assert bpy.ops.posediff.check_backend(blocking=True) == {"FINISHED"}
    status = addon_module("status")
    ok, text = status.get_status()
    assert ok and "connected" in text and "device cpu" in text and "model" in text
    assert "prior default: research only" in text  # the licence of the loaded prior, in words


def test_estimate_from_photo_keys_bones_and_lines_up_with_camera(rig):
    scene = bpy.context.scene
    cam_data = bpy.data.cameras.new("Cam")
    cam = bpy.data.objects.new("Cam", cam_data)
    scene.collection.objects.link(cam)
    cam.location = (0.3, -6.0, 1.2)
    cam.rotation_euler = (math.radians(88), 0, math.radians(3))
    cam_data.lens = 40
    scene.camera = cam
    bpy.context.view_layer.objects.active = rig
    scene.frame_set(5)
    scene.posediff.use_camera = True  # "use my camera as it is": placed along the photo's rays
    assert bpy.ops.posediff.estimate(filepath=str(PHOTO), blocking=True) == {"FINISHED"}
    assert "may leave the ground" in scene.posediff.last_message
    s = scene.posediff
    assert s.last_error == "" and len(s.hypotheses) == 4
    assert len(_keyed_bones(rig, 5)) >= 10
    assert all(h.has_anchor for h in s.hypotheses)
    # the photo is the camera background and the render size matches it
    assert cam_data.background_images[0].image.filepath.endswith("image2.jpeg")
    w, h = cam_data.background_images[0].image.size
    assert (scene.render.resolution_x, scene.render.resolution_y) == (w, h)
    # Seen through the camera, the keyed rig lines up with the person in the photo: project the
    # rig's ankles, knees, hips, shoulders, wrists and compare with the detected 2D keypoints.
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector

    blender_rig, client = addon_module("blender_rig"), addon_module("client")
    prefs = bpy.context.preferences.addons[_installed["module"]].preferences
    det = client.Client(prefs.backend_url, prefs.token).request(
        "POST", "/v1/detect", {"frames": [{"image": str(PHOTO)}]})["frames"][0]["keypoints"]
    joints = blender_rig.posed_joints_world(rig)
    errs = []
    for name in ("left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
                 "left_shoulder", "right_shoulder", "left_elbow", "right_elbow"):
        if name in det and name in joints and det[name][2] > 0.5:
            p = world_to_camera_view(scene, cam, Vector(joints[name]))
            u, v = p.x * w, (1 - p.y) * h
            errs.append(math.hypot(u - det[name][0], v - det[name][1]))
    assert len(errs) >= 6
    errs.sort()
    assert errs[len(errs) // 2] < 0.08 * h, errs  # median within 8% of the image height


def test_estimate_without_camera_grounds_the_rig_and_preview_does_not_key(rig):
    scene = bpy.context.scene
    assert bpy.ops.posediff.estimate(filepath=str(PHOTO), blocking=True) == {"FINISHED"}
    keys_before = _keys(rig)
    assert len(_keyed_bones(rig, 1)) >= 10
    # clicking another hypothesis previews it without keyframing
    scene.posediff.hypothesis_index = 2
    assert _keys(rig) == keys_before
    scene.frame_set(3)
    bpy.ops.ed.undo_push(message="before apply")
    pose_before = _pose(rig)
    assert bpy.ops.posediff.apply_hypothesis("EXEC_DEFAULT", True) == {"FINISHED"}  # undo=True: one step
    assert _keyed_bones(rig, 3)
    bpy.ops.ed.undo()
    rig2 = bpy.data.objects["metarig"]
    assert _keys(rig2) == keys_before
    after = _pose(rig2)
    assert all(max(abs(a - b) for a, b in zip(pose_before[n], after[n])) < 1e-5 for n in pose_before)


def _world(ob, bones):
    bpy.context.view_layer.update()
    return {b: (ob.matrix_world @ ob.pose.bones[b].head, ob.matrix_world @ ob.pose.bones[b].tail) for b in bones}


def _moved(a, b):
    return max(max((p - q).length for p, q in zip(a[k], b[k])) for k in a)


def test_complete_keeps_known_bones_in_place_in_the_world(rig):
    scene = bpy.context.scene
    scene.frame_set(1)
    # Pose and key the left arm and the right leg by hand (known), on frame 1.
    known = ["upper_arm.L", "forearm.L", "thigh.R", "shin.R"]
    for name, ang in zip(known, (0.9, 0.5, -0.6, 0.8)):
        pb = rig.pose.bones[name]
        pb.rotation_mode = "XYZ"
        pb.rotation_euler = (ang, 0.1, 0.0)
        pb.keyframe_insert("rotation_euler", frame=1, group=name)
    before = _world(rig, known)
    assert bpy.ops.posediff.complete(blocking=True) == {"FINISHED"}
    keyed = _keyed_bones(rig, 1)
    assert len(keyed - set(known)) >= 10
    # the keyed bones stay where they were in the world (their channels may change for that)
    assert _moved(before, _world(rig, known)) < 0.01
    assert "4 keyed bones (kept in place)" in scene.posediff.last_message


def test_generate_and_apply_all_as_frames(rig):
    scene = bpy.context.scene
    scene.frame_set(10)
    assert bpy.ops.posediff.generate(blocking=True) == {"FINISHED"}
    assert len(scene.posediff.hypotheses) == 3
    assert len(_keyed_bones(rig, 10)) >= 10
    assert bpy.ops.posediff.apply_all() == {"FINISHED"}
    for f in (10, 11, 12):
        assert len(_keyed_bones(rig, f)) >= 10
    for pb in rig.pose.bones:
        (pb if hasattr(pb, "select") else pb.bone).select = pb.name == "upper_arm.L"  # 5.0 / 4.4
    scene.frame_set(10)
    fixed_before = _world(rig, ["upper_arm.L"])
    pose_before = _pose(rig)
    assert bpy.ops.posediff.variations(blocking=True) == {"FINISHED"}
    assert len(scene.posediff.hypotheses) == 3
    assert _moved(fixed_before, _world(rig, ["upper_arm.L"])) < 0.01  # selected bone kept in the world
    assert _pose(rig) != pose_before


def test_backend_down_reports_and_changes_nothing(rig, addon):
    url = addon.backend_url
    addon.backend_url = f"http://127.0.0.1:{free_port()}"
    try:
        pose = _pose(rig)
        with pytest.raises(RuntimeError, match="posediff serve"):
            bpy.ops.posediff.estimate(filepath=str(PHOTO), blocking=True)
        with pytest.raises(RuntimeError, match="not reachable"):
            bpy.ops.posediff.generate(blocking=True)
        assert _keys(rig) == {} and _pose(rig) == pose
        assert len(bpy.context.scene.posediff.hypotheses) == 0
        assert rig.animation_data is None or rig.animation_data.action is None
    finally:
        addon.backend_url = url


def test_unusable_rig_states_are_refused_before_anything_is_sent(rig, addon):
    """A NaN pose bone, a zero object scale and Edit Mode are refused with a message naming the
    problem and the fix, before a request is sent: keys, pose and the hypothesis list stay as
    they were, and the panel's error line shows this refusal (not an earlier job's error)."""
    s = bpy.context.scene.posediff
    assert "FINISHED" in bpy.ops.posediff.generate(blocking=True)
    keys, n_hyp = _keys(rig), len(s.hypotheses)
    spine = rig.pose.bones["spine"]
    spine.location = (math.nan, 0.0, 0.0)
    pose = _pose(rig)
    for op in (bpy.ops.posediff.generate, bpy.ops.posediff.complete, bpy.ops.posediff.variations):
        with pytest.raises(RuntimeError, match="spine .*NaN.*Alt\\+G"):
            op(blocking=True)
        assert s.last_error.startswith("pose bone(s) spine")
    assert {k: v for k, v in _pose(rig).items() if k != "spine"} == {k: v for k, v in pose.items() if k != "spine"}
    assert _keys(rig) == keys and len(s.hypotheses) == n_hyp
    spine.location = (0.0, 0.0, 0.0)
    rig.scale = (1.0, 0.0, 1.0)
    with pytest.raises(RuntimeError, match="scaled to zero"):
        bpy.ops.posediff.generate(blocking=True)
    rig.scale = (1.0, 1.0, 1.0)
    assert _keys(rig) == keys and len(s.hypotheses) == n_hyp
    rig.scale = (1.0, 2.0, 0.5)  # keyed, but with a warning
    assert "FINISHED" in bpy.ops.posediff.generate(blocking=True)
    assert "scaled unevenly (1, 2, 0.5)" in s.last_message
    rig.scale = (1.0, 1.0, 1.0)
    assert "FINISHED" in bpy.ops.posediff.generate(blocking=True)
    assert "scaled unevenly" not in s.last_message
    keys, n_hyp = _keys(rig), len(s.hypotheses)
    mode = rig.mode
    bpy.ops.object.mode_set(mode="EDIT")
    try:
        with pytest.raises(RuntimeError, match="Edit Mode"):
            bpy.ops.posediff.estimate(filepath=str(PHOTO), blocking=True)
    finally:
        bpy.ops.object.mode_set(mode=mode)
    assert _keys(rig) == keys and len(s.hypotheses) == n_hyp
    assert "Photo camera" not in bpy.data.objects


def test_wrong_token_is_explained(rig, addon):
    tok = addon.token
    addon.token = "wrong"
    try:
        with pytest.raises(RuntimeError, match="token"):
            bpy.ops.posediff.generate(blocking=True)
        assert _keys(rig) == {}
    finally:
        addon.token = tok


def test_background_job_progress_and_cancel(addon):
    """The worker-thread side of a background job: progress is read from the server's job, and
    cancelling deletes the server job (the timer side needs Blender's event loop)."""
    import threading

    jobs, client = addon_module("jobs"), addon_module("client")
    c = client.Client(addon.backend_url, addon.token)
    seen = []
    job = jobs.Job(c, "generate", {"num": 2, "seed": 1}, "generate", on_done=seen.append)
    t = threading.Thread(target=job._work)
    t.start()
    t.join(120)
    assert job.state == "done" and job.progress == 1.0 and len(job.result["poses"]) == 2
    big = {"frames": [{"image": str(PHOTO)}] * 8, "num_hypotheses": 200, "steps": 1000}
    job = jobs.Job(c, "estimate", big, "estimate")
    job.cancel()  # cancelled before the first poll: the server job is deleted
    t = threading.Thread(target=job._work)
    t.start()
    t.join(120)
    assert job.state == "cancelled"
    last = c.request("GET", "/v1/jobs")["jobs"][-1]
    assert last["task"] == "estimate"
    assert last["state"] == "cancelled" or last["cancel_requested"] is True


def test_mapping_editor_saves_on_the_armature(rig):
    """Detect fills the editable role list; editing a role rewrites the saved mapping."""
    blender_rig = addon_module("blender_rig")
    assert bpy.ops.posediff.detect_mapping(preset="AUTO") == {"FINISHED"}
    items = {it.role: it for it in rig.posediff_roles}
    assert items["thigh.L"].bone == "thigh.L" and items["chest"].extra == "spine.003"
    items["hand.L"].bone = ""
    items["head"].bone = "face"
    m = blender_rig.get_mapping(rig)
    assert "hand.L" not in m and m["head"] == ["face"] and m["chest"] == ["spine.002", "spine.003"]
    assert bpy.ops.posediff.detect_mapping(preset="RIGIFY_METARIG") == {"FINISHED"}
    assert blender_rig.get_mapping(rig)["head"] == ["spine.006"]


def test_start_backend_button_and_stop_on_unregister(addon, server):
    """The Start backend operator launches '<venv>/bin/posediff serve' as a child process;
    disabling the add-on stops it. (Runs last: it re-enables the add-on afterwards.)"""
    module = _installed["module"]
    bp = addon_module("backend_process")
    url, token = addon.backend_url, addon.token
    addon.backend_command = str(ROOT / ".venv")
    addon.backend_url = f"http://127.0.0.1:{free_port()}"
    # a missing prior file is refused before anything starts
    addon.prior, addon.prior_file = "file", str(ROOT / "out" / "no_such_prior.safetensors")
    with pytest.raises(RuntimeError, match="prior file .*no_such_prior.safetensors.* not found"):
        bpy.ops.posediff.start_backend()
    assert not bp.is_running()
    # the preference's prior reaches the started backend: its /v1/info names it and its licence
    addon.prior = "cmu"
    assert bpy.ops.posediff.start_backend() == {"FINISHED"}
    proc = bp.current().proc
    assert proc is not None and proc.poll() is None
    deadline = time.monotonic() + 120
    while True:
        try:
            bpy.ops.posediff.check_backend(blocking=True)
            break
        except RuntimeError as e:
            assert "not reachable" in str(e)
            assert proc.poll() is None, "the backend exited early"
            assert time.monotonic() < deadline, "backend did not come up in 120 s"
            time.sleep(0.5)
    ok, text = addon_module("status").get_status()
    assert ok is True and "prior cmu: commercial use OK" in text, text
    assert "--prior" in proc.args and "cmu" in proc.args
    with pytest.raises(RuntimeError, match="already running"):
        bpy.ops.posediff.start_backend()
    bpy.ops.preferences.addon_disable(module=module)
    assert proc.poll() is not None  # stopped with the add-on
    bpy.ops.preferences.addon_enable(module=module)
    prefs = bpy.context.preferences.addons[module].preferences
    prefs.backend_url, prefs.token = url, token


def _phone_photo(path):
    """The sample photo as a phone stores a portrait shot: landscape pixels and EXIF orientation 6
    ("rotate 90 degrees clockwise to show"). Returns the upright image (PIL)."""
    from PIL import Image

    upright = Image.open(PHOTO).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6
    upright.transpose(Image.Transpose.ROTATE_90).save(path, quality=95, exif=exif.tobytes())
    return upright


def _lineup_in_photo_px(scene, cam, rig, photo) -> float:
    """Median distance (pixels of ``photo``) between the rig's limb joints seen through ``cam`` in the
    scene's render and the photo's detected keypoints, the photo shown fitted inside the render
    (its background's 'FIT': scaled by min(W / w, H / h), centred)."""
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector
    from PIL import Image

    blender_rig, client = addon_module("blender_rig"), addon_module("client")
    prefs = bpy.context.preferences.addons[_installed["module"]].preferences
    det = client.Client(prefs.backend_url, prefs.token).request(
        "POST", "/v1/detect", {"frames": [{"image": str(photo)}]})["frames"][0]["keypoints"]
    W, H = scene.render.resolution_x, scene.render.resolution_y
    w, h = Image.open(photo).size
    s = min(W / w, H / h)
    joints = blender_rig.posed_joints_world(rig)
    errs = []
    for name in addon_module("results").LINEUP_JOINTS:
        if name in det and name in joints and det[name][2] > 0.5:
            p = world_to_camera_view(scene, cam, Vector(joints[name]))
            u, v = (p.x * W - W / 2) / s + w / 2, ((1 - p.y) * H - H / 2) / s + h / 2
            errs.append(math.hypot(u - det[name][0], v - det[name][1]))
    assert len(errs) >= 6, errs
    return sorted(errs)[len(errs) // 2]


def test_several_photos_each_get_their_own_camera_switched_to_at_their_frame(rig, tmp_path):
    """Two reference photos keyed on consecutive frames: each has its own Photo camera, placed from
    the rig as keyed on its frame, with its own photo behind it, and a timeline marker binding it
    to that frame, so scrubbing to frame 2 shows the second photo lined up with its pose (one camera
    showed the first photo behind both). The second is a landscape shot in the first's portrait
    render: its camera shows it whole inside the frame, still lined up (it was fitted as if it
    filled the render)."""
    from PIL import Image

    wide = Image.new("RGB", (1000, 640), (255, 255, 255))
    wide.paste(Image.open(PHOTO).convert("RGB"), (150, 0))  # the person off centre, as people frame
    wide.save(tmp_path / "landscape.png")
    photos = [ROOT / "samples" / "image1.png", tmp_path / "landscape.png"]
    scene = bpy.context.scene
    bpy.context.view_layer.objects.active = rig
    scene.frame_set(1)
    r = bpy.ops.posediff.estimate(directory="", files=[{"name": str(p)} for p in photos], blocking=True)
    assert r == {"FINISHED"}, scene.posediff.last_error
    msg = scene.posediff.last_message
    assert "each photo has its own camera" in msg, msg
    assert "photo 2 (1000x640) is not the render size's shape: its camera shows it whole inside the frame" in msg, msg
    worst = float(msg.split("the rig lines up within ")[1].split(" px")[0])
    assert worst < 25, msg
    cams = [bpy.data.objects["Photo camera"], bpy.data.objects["Photo camera 2"]]
    for k, (cam, photo) in enumerate(zip(cams, photos)):
        marker = scene.timeline_markers[f"PoseDiff photo {k + 1}"]
        assert marker.frame == 1 + k and marker.camera == cam
        assert cam.data.background_images[0].image.filepath == str(photo)
        assert len(_keyed_bones(rig, 1 + k)) >= 10
    scene.frame_set(2)
    assert scene.camera == cams[1]  # the marker switches the scene camera
    assert cams[1].data.background_images[0].frame_method == "FIT"
    assert (scene.render.resolution_x, scene.render.resolution_y) == (384, 640)  # the first photo's
    assert _lineup_in_photo_px(scene, cams[1], rig, photos[1]) < 25
    scene.frame_set(1)
    assert scene.camera == cams[0]
    assert _lineup_in_photo_px(scene, cams[0], rig, photos[0]) < 25
    assert (cams[0].matrix_world.translation - cams[1].matrix_world.translation).length > 0.05  # two placements


def test_an_iphone_heic_photo_is_estimated_and_shown_through_the_backends_jpeg(rig, tmp_path):
    """iPhones store photos as HEIC, which Blender cannot read: the add-on has the backend decode it
    (``POST /v1/image``), keeps the upright JPEG (packed in the .blend, EXIF focal length kept) and
    estimates, places the photo camera and shows the background from it; Find people reads it too."""
    import numpy as np
    import pillow_heif
    from PIL import Image

    pillow_heif.register_heif_opener()
    upright = Image.open(PHOTO).convert("RGB")
    photo = tmp_path / "IMG_0042.HEIC"
    exif = Image.Exif()
    exif[0x0112] = 6
    exif.get_ifd(0x8769)[0xA405] = 26  # an iPhone's main camera, 26 mm equivalent
    upright.transpose(Image.Transpose.ROTATE_90).save(photo, "HEIF", quality=92, exif=exif.tobytes())
    assert bpy.data.images.load(str(photo)).size[0] == 0  # Blender: no HEIC decoder
    scene = bpy.context.scene
    bpy.context.view_layer.objects.active = rig
    scene.frame_set(1)
    assert bpy.ops.posediff.estimate(filepath=str(photo), blocking=True) == {"FINISHED"}, scene.posediff.last_error
    msg = scene.posediff.last_message
    assert "1 HEIC photo(s) shown as the backend's upright JPEG" in msg and "the rig lines up with the photo" in msg, msg
    assert len(_keyed_bones(rig, 1)) >= 10
    img = scene.camera.data.background_images[0].image
    assert img.packed_file is not None and tuple(img.size) == upright.size == (scene.render.resolution_x,
                                                                              scene.render.resolution_y)
    px = np.empty(img.size[0] * img.size[1] * 4, np.float32)
    img.pixels.foreach_get(px)
    shown = px.reshape(img.size[1], img.size[0], 4)[::-1, :, :3]
    assert np.abs(shown - np.asarray(upright, np.float32) / 255.0).mean() < 0.04  # upright (HEIC + JPEG noise aside)
    d = scene.camera.data  # the photo camera has the lens the backend took from the HEIC's EXIF
    fx = addon_module("camera_math").intrinsics(d.lens, d.sensor_width, d.sensor_height, d.sensor_fit, *upright.size)["fx"]
    assert fx == pytest.approx(26 / math.hypot(36, 24) * math.hypot(*upright.size), rel=0.02)
    assert bpy.ops.posediff.find_people(filepath=str(photo)) == {"FINISHED"}
    assert len(scene.posediff.people) == 1


def test_the_panels_lens_is_sent_and_becomes_the_photo_cameras(rig):
    """A photo whose file does not say its lens (no EXIF: a picture from the web, a messenger's copy)
    taken with a 3x telephoto: the panel's *Lens* (77 mm) is sent as ``camera.focal_35mm`` and the
    Photo camera gets that lens; a lens under 4 mm is refused before anything is sent or keyed."""
    from PIL import Image

    scene = bpy.context.scene
    size = Image.open(PHOTO).size
    bpy.context.view_layer.objects.active = rig
    scene.frame_set(5)
    s = scene.posediff
    try:
        s.lens = 2.0
        keys = _keys(rig)
        with pytest.raises(RuntimeError, match="Lens 2 mm: give a 35 mm-equivalent focal length"):
            bpy.ops.posediff.estimate(filepath=str(PHOTO), blocking=True)
        assert "Lens 2 mm" in s.last_error and _keys(rig) == keys, s.last_error
        s.lens = 77.0
        assert bpy.ops.posediff.estimate(filepath=str(PHOTO), blocking=True) == {"FINISHED"}, s.last_error
    finally:
        s.lens = 0.0
    d = scene.camera.data
    assert scene.camera.name == "Photo camera"
    fx = addon_module("camera_math").intrinsics(d.lens, d.sensor_width, d.sensor_height, d.sensor_fit, *size)["fx"]
    assert fx == pytest.approx(77 / math.hypot(36, 24) * math.hypot(*size), rel=0.02)
    assert len(_keyed_bones(rig, 5)) >= 10


def test_a_mirror_image_photo_keys_the_persons_own_pose_and_is_shown_flipped(rig, tmp_path):
    """A selfie saved as previewed (the mirror image of the person): with *Mirrored* the rig gets the
    keys that the unmirrored photo gives (the person's right arm is the rig's right arm, not their
    mirror image's), and the Photo camera shows the picture flipped, as it was estimated."""
    from PIL import Image, ImageOps

    selfie = tmp_path / "selfie.png"
    ImageOps.mirror(Image.open(PHOTO)).save(selfie)  # lossless: flipped back, the photo's own pixels
    scene = bpy.context.scene
    bpy.context.view_layer.objects.active = rig
    s = scene.posediff
    scene.frame_set(5)
    assert bpy.ops.posediff.estimate(filepath=str(PHOTO), blocking=True) == {"FINISHED"}, s.last_error
    own = _pose(rig)
    scene.frame_set(8)
    s.mirrored = True
    try:
        assert bpy.ops.posediff.estimate(filepath=str(selfie), blocking=True) == {"FINISHED"}, s.last_error
    finally:
        s.mirrored = False
    assert "mirror images: estimated and shown flipped left-right" in s.last_message
    flipped = _pose(rig)
    assert flipped.keys() == own.keys()
    assert all(flipped[b] == pytest.approx(own[b], abs=1e-4) for b in own)
    # the selfie alone behind the Photo camera, flipped; the photo before it kept, hidden (it would show around it)
    shown = {b.image.filepath: (b.use_flip_x, b.show_background_image) for b in scene.camera.data.background_images}
    assert shown == {str(PHOTO): (False, False), str(selfie): (True, True)}


def test_a_phone_photo_with_exif_rotation_is_shown_and_lined_up_upright(rig, tmp_path):
    """Blender loads a JPEG's pixels as stored, ignoring its EXIF orientation, while the backend (and
    every photo viewer) shows it upright: the camera background, the render size and the camera sent
    with 'Use my camera' must be the upright photo's."""
    import numpy as np

    photo = tmp_path / "portrait.jpg"
    upright = _phone_photo(photo)
    assert tuple(bpy.data.images.load(str(photo)).size) == (upright.height, upright.width)  # Blender: as stored
    scene = bpy.context.scene
    bpy.context.view_layer.objects.active = rig
    scene.frame_set(1)
    assert bpy.ops.posediff.estimate(filepath=str(photo), blocking=True) == {"FINISHED"}, scene.posediff.last_error
    cam = scene.camera
    assert cam.name == "Photo camera"
    img = cam.data.background_images[0].image
    assert tuple(img.size) == upright.size == (scene.render.resolution_x, scene.render.resolution_y)
    px = np.empty(img.size[0] * img.size[1] * 4, np.float32)
    img.pixels.foreach_get(px)
    shown = px.reshape(img.size[1], img.size[0], 4)[::-1, :, :3]  # Blender's rows start at the bottom
    want = np.asarray(upright, np.float32) / 255.0
    assert np.abs(shown - want).mean() < 0.03  # the upright photo (JPEG noise aside)
    assert "the rig lines up with the photo" in scene.posediff.last_message
    px_err = float(scene.posediff.last_message.split("within ")[1].split(" px")[0])
    assert px_err < 0.08 * upright.height, scene.posediff.last_message
    # 'Use my camera' sends the upright size (the backend refused the stored one's aspect ratio)
    user_cam = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
    scene.collection.objects.link(user_cam)
    user_cam.location, user_cam.rotation_euler = (0.0, -6.0, 1.0), (math.radians(88), 0, 0)
    scene.camera = user_cam
    scene.posediff.use_camera = True
    try:
        assert bpy.ops.posediff.estimate(filepath=str(photo), blocking=True) == {"FINISHED"}, scene.posediff.last_error
        assert tuple(user_cam.data.background_images[0].image.size) == upright.size
    finally:
        scene.posediff.use_camera = False
