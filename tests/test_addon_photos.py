# SPDX-License-Identifier: GPL-3.0-or-later
"""The add-on's photo upload (``addon/photos.py``) and its backend launcher
(``addon/backend_process.py``) without Blender: real files, the real ``posediff serve``."""

from __future__ import annotations

import base64
import copy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from addon import photos  # noqa: E402
from addon.backend_process import BackendStartError, launch  # noqa: E402

PHOTO = ROOT / "samples" / "image2.jpeg"
POSEDIFF = ROOT / ".venv" / "bin" / "posediff"


def test_paths_become_the_files_bytes_and_the_rest_is_kept():
    kp = {"keypoints": {"left_wrist": [1.0, 2.0, 0.9]}}
    inline = "data:image/png;base64,iVBORw0KGgo="
    payload = {"frames": [{"image": str(PHOTO), "camera": {"fx": 900.0}}, kp, {"image": inline}], "seed": 3}
    before = copy.deepcopy(payload)
    out = photos.inline_images(payload, max_body_bytes=2**20)
    assert payload == before  # the caller's payload is not changed
    assert base64.b64decode(out["frames"][0]["image"]) == PHOTO.read_bytes()
    assert out["frames"][0]["camera"] == {"fx": 900.0} and out["frames"][1:] == [kp, {"image": inline}]
    assert out["seed"] == 3
    assert len(out["frames"][0]["image"]) == photos.base64_size(PHOTO.stat().st_size)


def test_a_backend_message_about_an_inlined_photo_names_the_file(tmp_path):
    """Photos travel as bytes, so the backend calls a damaged one ``<base64>``; the add-on puts
    the file's name back (frames not sent from files keep the backend's words)."""
    a, b = tmp_path / "f000.png", tmp_path / "f001.png"
    a.write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 16)
    b.write_bytes(b"\x89PNG\r\n\x1a\n" + b"1" * 16)
    names = photos.image_names({"frames": [{"image": str(a)}, {"image": str(b)}, {"image": "iVBORw0KGgo="}]})
    assert names == {0: "f000.png", 1: "f001.png"}
    msg = "estimate failed: frames[1].image: <base64> is not a recognised image; give a PNG or JPEG file"
    assert photos.name_inlined(msg, names) == msg.replace("<base64>", "f001.png")
    assert photos.name_inlined(msg.replace("[1]", "[2]"), names) == msg.replace("[1]", "[2]")


def test_photos_over_the_limit_name_the_photo_and_the_limit(tmp_path):
    one = tmp_path / "one.jpeg"
    one.write_bytes(PHOTO.read_bytes())
    size = photos.base64_size(one.stat().st_size)
    limit = photos.JSON_OVERHEAD + int(2.5 * size)  # two photos fit, the third does not
    payload = {"frames": [{"image": str(one)}] * 3}
    with pytest.raises(photos.PhotoTooLarge, match=r"photo one\.jpeg \(photo 3 of 3\) does not fit.*fewer") as e:
        photos.inline_images(payload, limit, "http://gpu-box:8765")
    assert f"{limit / 2**20:.1f} MB" in str(e.value) and "http://gpu-box:8765" in str(e.value)
    with pytest.raises(photos.PhotoTooLarge, match=r"one\.jpeg is too large to send.*--max-body-mb"):
        photos.inline_images({"frames": [{"image": str(one)}]}, size // 2)
    assert len(photos.inline_images(payload, None)["frames"]) == 3  # no limit known: not checked here


def test_launcher_reports_a_server_that_exits_before_it_is_ready(tmp_path):
    log = tmp_path / "serve.log"
    srv = launch([POSEDIFF], port=0, args=["--max-body-mb", "-1"], log_path=log)
    with pytest.raises(BackendStartError, match=r"exited with status 2: .*--max-body-mb -1(\.0)?: must be a positive"):
        srv.wait_ready(60)
    srv.stop()
    assert "must be a positive number" in log.read_text()  # the log got the output and was closed


def test_launcher_names_a_command_that_cannot_run(tmp_path):
    with pytest.raises(BackendStartError, match="cannot run .*no-such-posediff"):
        launch([tmp_path / "no-such-posediff"])


def test_short_videos_and_image_sequences_become_uploads_long_ones_stay_paths(tmp_path):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\x00" * 1000)  # the bytes are the backend's to judge
    out = photos.inline_video({"video": {"path": str(clip), "every": 2}, "seed": 1}, max_body_bytes=2**20)
    assert base64.b64decode(out["video"]["data"]) == clip.read_bytes() and out["video"]["every"] == 2
    assert "path" not in out["video"] and out["seed"] == 1
    assert photos.inline_video({"video": {"path": str(clip)}}, max_body_bytes=1000)["video"] == {"path": str(clip)}
    seq = tmp_path / "seq"
    seq.mkdir()
    for i in range(7):
        (seq / f"f_{i:02d}.png").write_bytes(b"\x89PNG" + bytes(10))
    (seq / "notes.txt").write_text("x")
    payload = {"video": {"path": str(seq), "every": 2, "start": "1", "end": "0.24s", "person": 1}, "num_hypotheses": 4}
    out, kept = photos.inline_image_sequence(payload, max_body_bytes=2**20)
    assert kept == [1, 3, 5]  # 0.24 s at 25 fps = frame 6, exclusive
    assert [Path(f["image"]).name for f in out["frames"]] == ["f_01.png", "f_03.png", "f_05.png"]
    # the person is picked on the first frame; the backend follows it through the others
    assert out["frames"][0]["person"] == 1 and all("person" not in f for f in out["frames"][1:])
    assert out["sequence"] == {"fps": 12.5}
    assert "video" not in out and out["num_hypotheses"] == 4
    # over the body limit, a bad setting or a video: unchanged, for the backend to stream or judge
    for p, limit in ((payload, 100), ({"video": {"path": str(seq), "start": "x"}}, None), ({"video": {"path": str(clip)}}, None)):
        assert photos.inline_image_sequence(p, max_body_bytes=limit) == (p, None)
    # numbered without zeros (frame9 before frame10), in the order the backend and Blender take them
    plain = tmp_path / "plain"
    plain.mkdir()
    for i in (1, 2, 9, 10, 11):
        (plain / f"frame{i}.png").write_bytes(b"\x89PNG" + bytes(10))
    out, _ = photos.inline_image_sequence({"video": {"path": str(plain)}}, max_body_bytes=2**20)
    assert [Path(f["image"]).name for f in out["frames"]] == ["frame1.png", "frame2.png", "frame9.png", "frame10.png", "frame11.png"]
