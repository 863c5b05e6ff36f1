# SPDX-License-Identifier: GPL-3.0-or-later
"""The installed add-on against a backend that cannot see the add-on's files.

The real ``posediff serve`` runs in a private mount namespace (``unshare --mount``) in which the
folder holding the photos is covered by an empty tmpfs, and in another working directory: the
server cannot open the photo's path, as a backend on another machine could not. The real
estimate operator in real Blender must still work (the add-on sends the photo's bytes), and a
photo over the server's body limit (``--max-body-mb 1`` here) must give a message naming the
photo and the limit, with the scene left as it was. A short video file is sent as its bytes too
(``video.data``), so Estimate from video works against that server.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

bpy = pytest.importorskip("bpy")

from addon_helpers import ROOT, addon_against, metarig_scene, serve_for_tests  # noqa: E402

POSEDIFF = ROOT / ".venv" / "bin" / "posediff"
PHOTO = ROOT / "samples" / "image2.jpeg"
#: ``sh -c`` script run inside the new mount namespace: hide folder $0, then run the server.
HIDE_AND_RUN = 'mount -t tmpfs posediff-hidden "$0" && exec "$@"'
_module: dict = {}


def _namespaces_work() -> bool:
    if shutil.which("unshare") is None:
        return False
    p = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"], capture_output=True)
    return p.returncode == 0


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A folder with the sample photo and a 12 MP phone-like JPEG (4000x3000, about 3 MB)."""
    from tools.photo_upload_cost import phone_photo

    d = tmp_path_factory.mktemp("blender_side_photos")
    shutil.copy(PHOTO, d / "person.jpeg")
    phone_photo(d / "phone_12mp.jpg")
    return d


@pytest.fixture(scope="module")
def hidden_server(photos, tmp_path_factory):
    """``posediff serve --max-body-mb 1`` that cannot see ``photos`` (private mount namespace)."""
    if not _namespaces_work():
        pytest.skip("needs 'unshare --mount' (root, or user namespaces) to hide the photos from the server")
    cwd = tmp_path_factory.mktemp("server_cwd")
    cmd = ["unshare", "--mount", "--propagation", "private", "sh", "-c", HIDE_AND_RUN, str(photos), str(POSEDIFF)]
    yield from serve_for_tests(cmd, cwd, cwd / "serve.log", args=["--max-body-mb", "1", "--device", "cpu"])


@pytest.fixture(scope="module")
def addon(tmp_path_factory, hidden_server):
    for module, _prefs in addon_against(tmp_path_factory.mktemp("ext"), hidden_server):
        _module["name"] = module
        yield module


@pytest.fixture()
def rig(addon):
    return metarig_scene(num_hypotheses=4, seed=0, previews=False)


def test_the_server_really_cannot_open_the_photo_path(hidden_server, photos):
    from addon.client import BackendError, Client

    client = Client(*hidden_server)
    assert (photos / "person.jpeg").is_file()  # here, on the Blender side
    with pytest.raises(BackendError, match="file not found") as e:
        client.request("POST", "/v1/detect", {"frames": [{"image": str(photos / "person.jpeg")}]})
    assert e.value.status == 400
    assert client.info()["max_body_bytes"] == 2**20


def test_estimate_operator_sends_the_photo_bytes(rig, photos):
    assert bpy.ops.posediff.estimate(filepath=str(photos / "person.jpeg"), blocking=True) == {"FINISHED"}
    s = bpy.context.scene.posediff
    assert s.last_error == "" and len(s.hypotheses) == 4
    assert s.last_message.startswith("estimated 1 photo(s)")
    assert rig.animation_data is not None and rig.animation_data.action is not None


def test_photo_over_the_body_limit_names_the_photo_and_the_limit(rig, photos):
    big = photos / "phone_12mp.jpg"
    assert big.stat().st_size > 2**20
    with pytest.raises(RuntimeError, match=r"phone_12mp\.jpg is too large to send.*up to 1\.0 MB.*--max-body-mb"):
        bpy.ops.posediff.estimate(filepath=str(big), blocking=True)
    s = bpy.context.scene.posediff
    assert "phone_12mp.jpg" in s.last_error and "1.0 MB" in s.last_error  # what the panel shows
    assert len(s.hypotheses) == 0
    assert rig.animation_data is None or rig.animation_data.action is None


def test_thumbnails_leave_no_temporary_files(rig, photos):
    """Each hypothesis' thumbnail is loaded from a temporary PNG that is deleted at once."""
    import tempfile
    from importlib import import_module

    s = bpy.context.scene.posediff
    s.previews = True
    before = set(Path(tempfile.gettempdir()).glob("posediff-*.png"))
    assert bpy.ops.posediff.estimate(filepath=str(photos / "person.jpeg"), blocking=True) == {"FINISHED"}
    assert set(Path(tempfile.gettempdir()).glob("posediff-*.png")) == before
    results = import_module(f"{_module['name']}.results")
    keys = [h.preview_key for h in s.hypotheses]
    assert len(keys) == 4 and all(keys)
    assert all(results.previews()[k].image_size[0] > 0 for k in keys)  # the pixels stayed in memory


def test_video_operator_uploads_a_short_clip(rig, photos):
    """The server cannot see the clip's folder: the add-on sends the file's bytes and the track is keyed."""
    from synthetic_clips import moving_person_frames, write_video

    clip = photos / "walk.mp4"
    write_video(clip, moving_person_frames(3, 240, 4), 10.0)
    assert clip.stat().st_size < 2**20 // 2
    scene = bpy.context.scene
    scene.frame_set(1)
    r = bpy.ops.posediff.estimate_video(filepath=str(clip), timing="CLIP", background=False, blocking=True)
    assert r == {"FINISHED"}, scene.posediff.last_error
    assert scene.posediff.last_error == "" and "keyed the track on 3 frames" in scene.posediff.last_message
    assert rig.animation_data is not None and rig.animation_data.action is not None


def test_video_over_the_upload_limit_says_why_the_backend_cannot_find_it(rig, photos, tmp_path):
    """A clip over the 1 MB body limit goes as a path, which this server cannot see: the message says so."""
    import cv2
    import numpy as np

    clip = photos / "noise.mp4"
    rng = np.random.default_rng(0)
    vw = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (640, 480))
    for _ in range(40):
        vw.write(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8))  # noise does not compress
    vw.release()
    assert clip.stat().st_size > 2**20
    with pytest.raises(RuntimeError, match=r"not found.*over the backend's upload limit of 1\.0 MB.*--max-body-mb"):
        bpy.ops.posediff.estimate_video(filepath=str(clip), background=False, blocking=True)
    assert rig.animation_data is None or rig.animation_data.action is None


def test_image_sequence_is_sent_as_images_and_keyed_at_its_frames(rig, photos):
    """A short image sequence the server cannot see goes as frames of image bytes; the keys land at the
    scene frames of the kept images (every 2nd of 5: images 0, 2, 4 -> scene frames 1, 3, 5)."""
    import cv2
    from synthetic_clips import moving_person_frames

    seq = photos / "seq"
    seq.mkdir(exist_ok=True)
    for i, f in enumerate(moving_person_frames(5, 240, 4)):
        cv2.imwrite(str(seq / f"frame_{i:03d}.png"), f[..., ::-1])
    scene = bpy.context.scene
    scene.frame_set(1)
    r = bpy.ops.posediff.estimate_video(filepath=str(seq / "frame_000.png"), every=2, timing="CLIP",
                                        background=False, blocking=True)
    assert r == {"FINISHED"}, scene.posediff.last_error
    assert "keyed the track on 3 frames (1-5)" in scene.posediff.last_message, scene.posediff.last_message
    from bpy_extras import anim_utils

    ad = rig.animation_data
    bag = anim_utils.action_get_channelbag_for_slot(ad.action, ad.action_slot)
    keyed = {round(k.co[0]) for fc in bag.fcurves for k in fc.keyframe_points}
    assert keyed == {1, 3, 5}, keyed


def test_use_in_track_on_a_clip_whose_response_is_many_times_the_body_limit(rig, photos):
    """*Use in track* sends the clip's frames back for the re-solve: for a long clip they pass the body
    limit (34 KB a frame in the response: a 32 MB limit is ~40 s of video). The add-on sends only what
    the solver reads and gzip-compresses a request that would still not fit. Here a 150-frame stored
    response (4 MB as the response, under this server's 1 MB limit only compressed, as 130 s of video
    is under the default 32 MB) is re-solved through one frame's hypothesis and keyed on every frame."""
    import json
    from importlib import import_module

    from synthetic_clips import moving_person_frames, write_video

    ov = import_module(f"{_module['name']}.operators_video")
    track_data = import_module(f"{_module['name']}.track_data")
    clip = photos / "walk3.mp4"
    write_video(clip, moving_person_frames(3, 240, 4), 10.0)
    scene = bpy.context.scene
    scene.frame_set(1)
    scene.posediff.num_hypotheses = 20  # the default, as users estimate
    assert bpy.ops.posediff.estimate_video(filepath=str(clip), background=False, blocking=True) == {"FINISHED"}
    data = ov._stored()
    res, meta, n = data["response"], data["meta"], 150
    res["frames"] = [json.loads(json.dumps(res["frames"][i % 3])) for i in range(n)]  # a long clip, as stored
    res["sequence"].update(frames=n, source_frames=list(range(n)), source_times=[i / 10 for i in range(n)])
    meta["scene_frames"] = list(range(1, n + 1))
    ov._store({"response": res, "meta": meta})
    plain = len(json.dumps({"frames": res["frames"]}, separators=(",", ":")))
    slim = len(json.dumps({"frames": track_data.track_request_frames(res["frames"])}, separators=(",", ":")))
    assert plain > 4 * 2**20 and slim > 2**20  # neither the stored frames nor the slim ones fit plain

    scene.frame_set(100)
    r = bpy.ops.posediff.track_override(hypothesis=2, blocking=True)
    assert r == {"FINISHED"}, scene.posediff.last_error
    assert "re-keyed 150 frames" in scene.posediff.last_message, scene.posediff.last_message
    after = ov._stored()["response"]
    assert len(after["frames"]) == n and after["frames"][99]["track"]["hypothesis"] == 2
    # the stored frames keep what the request left out (world joints of every hypothesis)
    assert all(h.get("world_joints") for fr in after["frames"] for h in fr["hypotheses"])
    from bpy_extras import anim_utils

    ad = rig.animation_data
    bag = anim_utils.action_get_channelbag_for_slot(ad.action, ad.action_slot)
    assert {round(k.co[0]) for fc in bag.fcurves for k in fc.keyframe_points} >= set(range(1, n + 1))
