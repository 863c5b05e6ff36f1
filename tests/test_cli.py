"""``posediff`` as a subprocess (the real entry point in the virtual environment): JSON in,
JSON out, seeded output, the contract's shapes, and bad input -> exit status 2 with one line on
stderr naming the field and no output file. Each call loads torch, so the calls are few and the
bad-input runs are started together."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from backend.camera import Intrinsics, project, tilt_rotation
from backend.skeleton import JOINT_NAMES, NUM_JOINTS, PARENTS, canonical_rest_pose

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
_BIN = Path(sys.executable).parent / "posediff"
POSEDIFF = [str(_BIN)] if _BIN.exists() else [sys.executable, "-m", "backend"]
K = Intrinsics(1145.0, 1145.0, 512.0, 515.0, 1000, 1002)


def run(*args, cwd=None, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([*POSEDIFF, *map(str, args)], capture_output=True, text=True, cwd=cwd or ROOT, timeout=timeout)


def _keypoints(pose: np.ndarray) -> dict:
    """The 17 H3.6M joints of a world pose seen 4.5 m away by a slightly tilted camera (pixels)."""
    cam = pose @ tilt_rotation(0.1).T + np.array([0.0, 0.1, 4.5])
    uv = project(cam, K)
    return {n: [round(float(uv[j, 0]), 2), round(float(uv[j, 1]), 2), 1.0] for j, n in enumerate(JOINT_NAMES[:17])}


def test_skeleton_lists_21_joints():
    p = run("skeleton")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["joint_names"] == list(JOINT_NAMES) and len(out["joint_names"]) == 21
    assert [r["parent"] for r in out["joints"]] == [JOINT_NAMES[q] if q >= 0 else None for q in PARENTS]


def test_generate_is_seeded(tmp_path):
    outs = []
    for name in ("a.json", "b.json"):
        p = run("generate", "--num", 3, "--seed", 1, "--steps", 10, "--device", "cpu", "--output", tmp_path / name)
        assert p.returncode == 0, p.stderr
        outs.append(json.loads((tmp_path / name).read_text()))
    assert outs[0] == outs[1]
    poses = np.array(outs[0]["poses"])
    assert outs[0]["joint_names"] == list(JOINT_NAMES)
    assert poses.shape == (3, NUM_JOINTS, 3) and np.abs(poses[:, 0]).max() == 0.0


def test_estimate_keypoints_from_a_request_file(tmp_path, h36m_train_poses):
    req = {"frames": [{"keypoints": _keypoints(h36m_train_poses[40]), "camera": K.as_dict()}], "num_hypotheses": 4, "seed": 0, "steps": 10}
    (tmp_path / "req.json").write_text(json.dumps(req))
    p = run("estimate", "--input", tmp_path / "req.json", "--output", tmp_path / "res.json", "--device", "cpu")
    assert p.returncode == 0, p.stderr
    res = json.loads((tmp_path / "res.json").read_text())
    assert res["joint_names"] == list(JOINT_NAMES) and len(res["frames"]) == 1
    fr = res["frames"][0]
    assert len(fr["hypotheses"]) == 4
    scores = [h["score"] for h in fr["hypotheses"]]
    assert scores == sorted(scores, reverse=True)
    depth = []
    for h in fr["hypotheses"]:
        J = np.array(h["joints"])
        assert J.shape == (NUM_JOINTS, 3) and np.abs(J[0]).max() == 0.0
        T = np.array(h["root_translation"])
        assert T.shape == (3,) and T[2] > 0.5  # in front of the camera
        depth.append(T[2])
    assert 3.0 < np.median(depth) < 6.5  # the pelvis was 4.5 m away (one hypothesis may take another depth)
    assert np.array(fr["aggregate"]).shape == (NUM_JOINTS, 3)
    # stdin/stdout with '-' gives the same answer
    p = subprocess.run([*POSEDIFF, "estimate", "--input", "-", "--device", "cpu"], input=json.dumps(req),
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == res


def test_estimate_from_a_photo(tmp_path):
    p = run("estimate", SAMPLES / "image2.jpeg", "--num", 4, "--seed", 0, "--device", "cpu", "--output", tmp_path / "res.json")
    assert p.returncode == 0, p.stderr
    fr = json.loads((tmp_path / "res.json").read_text())["frames"][0]
    assert len(fr["hypotheses"]) == 4 and not fr["warnings"]
    assert {"left_wrist", "right_ankle", "left_hip"} <= set(fr["keypoints"])
    best = np.array(fr["hypotheses"][0]["joints"])
    W = np.array(fr["hypotheses"][0]["world_joints"])
    assert best.shape == (NUM_JOINTS, 3)
    # a standing man: head well above the ankles in the world frame (Z up)
    assert W[JOINT_NAMES.index("head"), 2] - W[JOINT_NAMES.index("left_ankle"), 2] > 1.2
    assert fr["camera"]["width"] > 0 and fr["hypotheses"][0]["reprojection_error_px"] < 30


def test_estimate_a_photo_through_a_lens_given_in_35mm_terms(tmp_path):
    """``--lens 77`` (a 3x telephoto the file does not say): the photo's camera is that lens; a value
    that is no focal length is refused before anything runs, as is --lens without images."""
    from PIL import Image

    from backend.camera import intrinsics_from_focal_35mm

    p = run("estimate", SAMPLES / "image2.jpeg", "--lens", 77, "--num", 2, "--steps", 6, "--device", "cpu",
            "--output", tmp_path / "res.json")
    assert p.returncode == 0, p.stderr
    fr = json.loads((tmp_path / "res.json").read_text())["frames"][0]
    w, h = Image.open(SAMPLES / "image2.jpeg").size
    assert fr["camera"]["fx"] == pytest.approx(intrinsics_from_focal_35mm(77.0, w, h).fx)
    p = run("estimate", SAMPLES / "image2.jpeg", "--lens", 0.5, "--output", tmp_path / "bad.json")
    assert p.returncode != 0 and "--lens: 0.5 mm is not a 35 mm-equivalent focal length" in p.stderr
    assert not (tmp_path / "bad.json").exists()


def test_estimate_a_mirror_image_photo_with_mirrored(tmp_path):
    """``--mirrored`` (a selfie saved as previewed, a photo taken in a mirror): the picture is flipped
    first, so the keypoints are those of the unmirrored photo (``posediff detect`` of it) and the
    overlay is drawn over the flipped picture; refused without images."""
    from PIL import Image, ImageOps

    ImageOps.mirror(Image.open(SAMPLES / "image1.png")).save(tmp_path / "selfie.png")
    p = run("estimate", tmp_path / "selfie.png", "--mirrored", "--num", 2, "--steps", 6, "--device", "cpu",
            "--overlay", tmp_path / "overlays", "--output", tmp_path / "res.json")
    assert p.returncode == 0, p.stderr
    fr = json.loads((tmp_path / "res.json").read_text())["frames"][0]
    d = run("detect", SAMPLES / "image1.png", tmp_path / "selfie.png", "--output", tmp_path / "det.json")
    assert d.returncode == 0, d.stderr
    own, as_is = json.loads((tmp_path / "det.json").read_text())["frames"]
    assert fr["mirrored"] and fr["keypoints"] == own["keypoints"]
    d = run("detect", tmp_path / "selfie.png", "--mirrored", "--output", tmp_path / "det_m.json")
    assert d.returncode == 0, d.stderr
    assert json.loads((tmp_path / "det_m.json").read_text())["frames"][0]["keypoints"] == own["keypoints"] != as_is["keypoints"]
    assert (tmp_path / "overlays" / "overlay_000.png").exists()
    p = run("estimate", "--input", tmp_path / "req.json", "--mirrored")
    assert p.returncode != 0 and "--mirrored: goes with IMAGE files or a video" in p.stderr


def test_estimate_a_video_of_two_people_follows_the_person_asked_for(tmp_path):
    """``--person 1`` on a clip of two people: the smaller one on the first frame, followed through
    the frames where it has become the larger (``tests/synthetic_clips.py``)."""
    from synthetic_clips import two_people_frames, write_video

    clip = tmp_path / "two.mp4"
    write_video(clip, two_people_frames(6), 10.0)
    out = tmp_path / "res.json"
    p = run("estimate", clip, "--person", "1", "--num", "2", "--steps", "4", "--output", out)
    assert p.returncode == 0, p.stderr
    res = json.loads(out.read_text())
    xs = [fr["keypoints"]["left_hip"][0] for fr in res["frames"]]
    assert len(xs) == 6 and all(x > 320 for x in xs), xs  # the right half of the 640 px frame


def test_complete_reproduces_known_joints(tmp_path):
    rest = canonical_rest_pose() + np.array([1.0, -2.0, 0.95])
    known = {n: rest[j].tolist() for j, n in enumerate(JOINT_NAMES) if not n.startswith("left_")}
    req = {"frames": [{"known": known}], "num_hypotheses": 3, "seed": 0, "steps": 10}
    (tmp_path / "req.json").write_text(json.dumps(req))
    p = run("complete", "--input", tmp_path / "req.json", "--output", tmp_path / "res.json", "--device", "cpu")
    assert p.returncode == 0, p.stderr
    fr = json.loads((tmp_path / "res.json").read_text())["frames"][0]
    H = np.array([h["joints"] for h in fr["hypotheses"]])
    idx = [JOINT_NAMES.index(n) for n in known]
    assert H.shape == (3, NUM_JOINTS, 3)
    assert np.abs(H[:, idx] - rest[idx]).max() <= 0.01


def test_detect_gives_pixels_with_model_joint_names(tmp_path):
    p = run("detect", SAMPLES / "image2.jpeg", "--output", tmp_path / "det.json")
    assert p.returncode == 0, p.stderr
    fr = json.loads((tmp_path / "det.json").read_text())["frames"][0]
    w, h = fr["camera"]["width"], fr["camera"]["height"]
    assert set(fr["keypoints"]) <= set(JOINT_NAMES) and len(fr["keypoints"]) >= 12
    for name, (u, v, c) in fr["keypoints"].items():
        assert 0 <= u <= w and 0 <= v <= h and 0 <= c <= 1, name


# ------------------------------------------------------------------------------ bad input

BAD_CASES = {
    # name: (args builder, words the one-line error must contain)
    "unknown joint": (lambda d: ["estimate", "--input", d / "unknown.json"], ["left_wristt"]),
    "NaN literal": (lambda d: ["estimate", "--input", d / "nan.json"], ["--input", "NaN"]),
    "invalid JSON": (lambda d: ["complete", "--input", d / "broken.json"], ["--input", "invalid JSON", "line"]),
    "missing file": (lambda d: ["estimate", "--input", d / "missing.json"], ["--input", "missing.json"]),
    "corrupt image": (lambda d: ["estimate", d / "corrupt.jpg", "--num", "2"], ["frames[0].image"]),
    "blank image": (lambda d: ["detect", d / "blank.png"], ["frames[0].image", "no person"]),
    "zero focal length": (lambda d: ["estimate", "--input", d / "focal.json"], ["frames[0].camera.fx"]),
    "mirror rotation": (lambda d: ["estimate", "--input", d / "mirror.json"], ["frames[0].camera.rotation", "mirror"]),
    "binary request file": (lambda d: ["complete", "--input", d / "corrupt.jpg"], ["--input", "not JSON text"]),
    "deeply nested JSON": (lambda d: ["assist", "--input", d / "deep.json"], ["--input", "too deeply"]),
    "tiny image": (lambda d: ["estimate", d / "tiny.png"], ["frames[0].image", "1x1 pixels", "at least 16"]),
    "request and images": (lambda d: ["estimate", d / "blank.png", "--input", d / "focal.json"], ["not both"]),
    "person with a request": (lambda d: ["estimate", "--input", d / "focal.json", "--person", "1"],
                              ["--person", "each frame's \"person\""]),
}


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    kp = {"pelvis": [500.0, 500.0, 1.0], "left_wrist": [600.0, 400.0, 1.0]}
    (d / "unknown.json").write_text(json.dumps({"frames": [{"keypoints": {**kp, "left_wristt": [1, 2, 1]}}]}))
    (d / "nan.json").write_text('{"frames": [{"keypoints": {"pelvis": [NaN, 500.0, 1.0]}}]}')
    (d / "broken.json").write_text('{"frames": [{"known": {"pelvis": [0, 0, 0]}}]')
    (d / "focal.json").write_text(json.dumps({"frames": [{"keypoints": kp, "camera": {**K.as_dict(), "fx": 0}}]}))
    (d / "mirror.json").write_text(json.dumps({"frames": [{"keypoints": kp, "camera": {
        **K.as_dict(), "rotation": [[1, 0, 0], [0, 1, 0], [0, 0, -1]]}}]}))
    (d / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4)
    cv2.imwrite(str(d / "blank.png"), np.full((480, 640, 3), 255, np.uint8))
    cv2.imwrite(str(d / "tiny.png"), np.zeros((1, 1, 3), np.uint8))
    (d / "deep.json").write_text("[" * 100_000)
    procs = {}
    for name, (build, _) in BAD_CASES.items():
        out = d / f"out_{name.replace(' ', '_')}.json"
        procs[name] = (subprocess.Popen([*POSEDIFF, *map(str, build(d)), "--output", str(out)], cwd=ROOT,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), out)
    results = {}
    for name, (proc, out) in procs.items():
        stdout, stderr = proc.communicate(timeout=300)
        results[name] = (proc.returncode, stdout, stderr, out)
    return d, results


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_input_exits_2_with_one_line_naming_the_field(bad_runs, case):
    d, results = bad_runs
    rc, stdout, stderr, out = results[case]
    assert rc == 2, (rc, stderr)
    lines = [ln for ln in stderr.splitlines() if ln.strip() and not ln.startswith("INFO:")]
    assert len(lines) == 1, stderr
    for w in BAD_CASES[case][1]:
        assert w in lines[0], (w, lines[0])
    assert not out.exists()
    assert not list(d.glob(f".{out.name}.*"))  # no temporary file left behind


def test_an_unwritable_output_is_refused_before_the_work(tmp_path):
    """``--output`` naming a folder or a path under a file: exit 2 at once (not after a long
    estimate), one line naming the path, nothing written."""
    (tmp_path / "a_file").write_text("x")
    for out, words in ((tmp_path, "is a folder"), (tmp_path / "a_file" / "res.json", "is a file, not a folder")):
        p = run("estimate", str(ROOT / "samples" / "image1.png"), "--output", str(out), timeout=60)
        assert p.returncode == 2 and words in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a_file"]
