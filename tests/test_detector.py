"""backend.vision.detector (BlazePose on TFLite, real shipped weights) and backend.vision.overlay.

The detector is loaded once per module. Accuracy is checked against the hand labels of
``samples/pose_landmark_truth.csv`` (COCO-17 pixels; rows: image1, image2).
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from backend.errors import InputError, NoPersonError
from backend.skeleton import JOINT_NAMES, PARENTS, canonical_rest_pose
from backend.vision.detector import (
    HM_SIZE,
    LIMB_NAMES,
    MODEL_DIR,
    Detection2D,
    ModelFileError,
    PoseDetector,
    check_model_file,
    limb_error_against_truth,
)
from backend.vision.overlay import draw_overlay, encode_png, skeleton_preview
from backend.vision.photo import Photo, load_image

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
TRUTH = list(csv.DictReader(open(SAMPLES / "pose_landmark_truth.csv")))
LABELLED = {"image1.png": TRUTH[0], "image2.jpeg": TRUTH[1]}
#: Target of the task: mean limb-joint error of at most 12 px on each labelled sample.
MAX_LIMB_ERROR_PX = 12.0


@pytest.fixture(scope="module")
def detector() -> PoseDetector:
    return PoseDetector()


@pytest.fixture(scope="module")
def detections(detector) -> dict[str, Detection2D]:
    return {name: detector.detect(load_image(str(SAMPLES / name)).rgb) for name in ("image1.png", "image2.jpeg", "image3.jpeg")}


@pytest.mark.parametrize("name", list(LABELLED))
def test_limb_keypoints_match_hand_labels(detections, name):
    det = detections[name]
    err = limb_error_against_truth(det, LABELLED[name])
    assert err <= MAX_LIMB_ERROR_PX, f"{name}: mean limb error {err:.1f} px"
    # every limb joint is found, and most lie within 15 px of the label
    per_joint = [np.hypot(det.keypoints[n][0] - float(LABELLED[name][f"{n}_x"]),
                          det.keypoints[n][1] - float(LABELLED[name][f"{n}_y"])) for n in LIMB_NAMES]
    assert np.median(per_joint) <= 10.0
    assert all(0.0 <= c <= 1.0 for _, _, c in det.keypoints.values())


def test_detection_fields(detections):
    det = detections["image3.jpeg"]
    assert set(det.keypoints) <= set(JOINT_NAMES)
    assert {"neck", "right_toe", "left_toe", "left_hand", "right_hand", *LIMB_NAMES} <= set(det.keypoints)
    assert "pelvis" not in det.keypoints and "head" not in det.keypoints
    K = len(det.heatmap_joints)
    assert det.heatmaps.shape == (K, HM_SIZE, HM_SIZE) and det.heatmaps.dtype == np.float32
    assert set(det.heatmap_joints) <= set(det.keypoints)
    # log-probabilities: each map sums to 1 in probability
    np.testing.assert_allclose(np.exp(det.heatmaps.astype(np.float64)).sum((1, 2)), 1.0, atol=1e-4)
    assert det.image_to_heatmap.shape == (2, 3)
    assert det.image_size == (426, 640)
    x0, y0, x1, y1 = det.box
    assert 0 <= x0 < x1 <= 426 and 0 <= y0 < y1 <= 640
    for u, v, c in det.keypoints.values():
        if c > 0.5:
            assert x0 <= u <= x1 and y0 <= v <= y1
    assert 0.5 < det.score <= 1.0


@pytest.mark.parametrize("name", ["image1.png", "image2.jpeg", "image3.jpeg"])
def test_heatmap_peaks_agree_with_keypoints(detections, name):
    """The log-heatmaps, sampled through ``image_to_heatmap``, peak where the keypoints are."""
    det = detections[name]
    cell_px = det.roi.size / HM_SIZE  # one heatmap cell in image pixels (about 11-12 here)
    peaks = det.heatmap_peaks()
    d = {n: np.hypot(peaks[n][0] - det.keypoints[n][0], peaks[n][1] - det.keypoints[n][1]) for n in LIMB_NAMES}
    assert np.mean(list(d.values())) <= 0.5 * cell_px, d
    assert max(d.values()) <= 1.0 * cell_px, d
    # keypoints map into the heatmap grid, near its high-probability cells
    for n in LIMB_NAMES:
        x, y = det.image_to_heatmap @ np.array([det.keypoints[n][0], det.keypoints[n][1], 1.0])
        assert 0 <= x <= HM_SIZE - 1 and 0 <= y <= HM_SIZE - 1
        lh = det.heatmaps[det.heatmap_joints.index(n)]
        assert lh[int(round(y)), int(round(x))] >= lh.max() - 3.0  # within e^3 of the peak probability


def test_rotated_photo_is_detected_upright(detector):
    """A photo turned 90 degrees: the rotated ROI still finds the limbs where the labels went."""
    rgb = load_image(str(SAMPLES / "image1.png")).rgb
    h = rgb.shape[0]
    rot = np.ascontiguousarray(np.rot90(rgb, k=1))  # counter-clockwise: (u, v) -> (v, w - u)
    det = detector.detect(rot)
    row = {}
    for n in LIMB_NAMES:
        u, v = float(TRUTH[0][f"{n}_x"]), float(TRUTH[0][f"{n}_y"])
        w = rgb.shape[1]
        row[f"{n}_x"], row[f"{n}_y"] = v, w - u
    assert limb_error_against_truth(det, row) <= MAX_LIMB_ERROR_PX
    assert abs(abs(det.roi.rotation) - np.pi / 2) < 0.3
    assert det.image_size == (h, rgb.shape[1])


def test_downscaled_photo_reports_original_pixels(detector):
    """A Photo downscaled on load gives keypoints in the original image's pixels."""
    full = load_image(str(SAMPLES / "image2.jpeg"))
    half = cv2.resize(full.rgb, (full.rgb.shape[1] // 2, full.rgb.shape[0] // 2), interpolation=cv2.INTER_AREA)
    s = half.shape[1] / full.rgb.shape[1]
    photo = Photo(rgb=half, focal_35mm=None, original_size=full.original_size, scale=s, name="half")
    det = detector.detect(photo)
    assert limb_error_against_truth(det, TRUTH[1]) <= MAX_LIMB_ERROR_PX + 3
    assert det.image_size == full.original_size
    u, v = det.keypoints["left_knee"][:2]
    x, y = det.image_to_heatmap @ np.array([u, v, 1.0])
    assert 0 <= x < HM_SIZE and 0 <= y < HM_SIZE


def test_blank_image_has_no_person(detector):
    with pytest.raises(NoPersonError, match="no person found") as e:
        detector.detect(np.full((480, 640, 3), 200, np.uint8), field="frames[0].image")
    assert e.value.field == "frames[0].image"


def test_several_people_sorted_largest_first(detector):
    """image1 beside a 3/4-size image2: person 0 is the woman, person 1 the smaller man."""
    a = load_image(str(SAMPLES / "image1.png")).rgb
    b = load_image(str(SAMPLES / "image2.jpeg")).rgb
    bs = cv2.resize(b, (b.shape[1] * 3 // 4, b.shape[0] * 3 // 4), interpolation=cv2.INTER_AREA)
    canvas = np.full((640, a.shape[1] + bs.shape[1], 3), 255, np.uint8)
    canvas[:, : a.shape[1]] = a
    canvas[: bs.shape[0], a.shape[1]:] = bs
    people = detector.detect_people(canvas)
    assert len(people) == 2 and people[0].size > people[1].size
    assert limb_error_against_truth(detector.detect(canvas), TRUTH[0]) <= MAX_LIMB_ERROR_PX
    sx, sy = bs.shape[1] / b.shape[1], bs.shape[0] / b.shape[0]
    moved = {k: float(v) * (sx if k.endswith("_x") else sy) + (a.shape[1] if k.endswith("_x") else 0) for k, v in TRUTH[1].items()}
    assert limb_error_against_truth(detector.detect(canvas, person=1), moved) <= MAX_LIMB_ERROR_PX


def test_person_index_out_of_range(detector):
    rgb = load_image(str(SAMPLES / "image2.jpeg")).rgb
    assert detector.detect(rgb, person=0).keypoints  # index 0 = the largest person
    with pytest.raises(InputError, match="person 5 requested but 1 found") as e:
        detector.detect(rgb, person=5, field="frames[1].image")
    assert e.value.field == "frames[1].person"


def test_not_an_image_array(detector):
    with pytest.raises(InputError, match="RGB uint8"):
        detector.detect(np.zeros((10, 10), np.float32))


def test_model_hash_mismatch_is_refused(tmp_path):
    for f in MODEL_DIR.glob("*.tflite"):
        shutil.copy(f, tmp_path / f.name)
    bad = tmp_path / "pose_detection.tflite"
    data = bytearray(bad.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="pose_detection.tflite is corrupt or not the shipped version"):
        PoseDetector(model_dir=tmp_path)
    (tmp_path / "pose_landmark_full.tflite").unlink()
    with pytest.raises(ModelFileError, match="model file missing"):
        check_model_file(tmp_path / "pose_landmark_full.tflite")
    assert check_model_file(MODEL_DIR / "pose_landmark_full.tflite")


def test_limb_error_against_truth_is_euclidean():
    row = {f"{n}_{a}": str(10 * i + (a == "y")) for i, n in enumerate(LIMB_NAMES) for a in "xy"}
    kps = {n: (10 * i + 3.0, 10 * i + 1 + 4.0, 1.0) for i, n in enumerate(LIMB_NAMES)}
    det = Detection2D(kps, np.zeros((0, 64, 64), np.float32), [], np.zeros((2, 3)), np.zeros(4), (100, 100), 1.0)
    assert limb_error_against_truth(det, row) == pytest.approx(5.0)


# ---------------------------------------------------------------------------------- overlay


def test_overlay_draws_keypoints_and_hypotheses(detections):
    rgb = load_image(str(SAMPLES / "image2.jpeg")).rgb
    det = detections["image2.jpeg"]
    best = np.full((len(JOINT_NAMES), 2), np.nan)
    for n, (u, v, _) in det.keypoints.items():
        best[JOINT_NAMES.index(n)] = (u, v)
    best[0] = np.mean([best[JOINT_NAMES.index("left_hip")], best[JOINT_NAMES.index("right_hip")]], 0)
    other = best + 15.0
    out = draw_overlay(rgb, det.keypoints, [best, other], JOINT_NAMES, PARENTS)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert not np.shares_memory(out, rgb)
    changed = np.abs(out.astype(int) - rgb.astype(int)).sum(-1) > 30
    for n in ("left_knee", "right_wrist"):  # dots at keypoints
        u, v = det.keypoints[n][:2]
        assert changed[int(v), int(u)]
    mid = (best[JOINT_NAMES.index("left_knee")] + best[JOINT_NAMES.index("left_ankle")]) / 2  # a bone of the best
    assert changed[int(mid[1]), int(mid[0])]
    png = encode_png(out)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    np.testing.assert_array_equal(cv2.cvtColor(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB), out)
    with pytest.raises(ValueError, match="parents"):
        draw_overlay(rgb, {}, [best], JOINT_NAMES, None)


def test_skeleton_preview_front_view():
    pose = canonical_rest_pose()
    img = skeleton_preview(pose, PARENTS, size=128, views=("front",))
    assert img.shape == (128, 128, 3) and img.dtype == np.uint8
    lit = np.argwhere(img.max(-1) > 60)
    assert len(lit) > 200
    # T-pose: the arm span (1.8 m, wider than tall) fills the picture's width
    assert lit[:, 1].min() < 20 and lit[:, 1].max() > 108
    # the character's left (+X) is on the picture's right (front view), in the left-side hue (orange)
    lw = pose[JOINT_NAMES.index("left_elbow")]
    assert lw[0] > 0
    right_half = img[:, 64:][img[:, 64:].max(-1) > 60]
    assert (right_half[:, 0] > right_half[:, 2] + 50).mean() > 0.3
    with pytest.raises(ValueError):
        skeleton_preview(pose[:5], PARENTS)


def test_a_small_person_in_a_wide_frame_is_found_by_tiles(detector):
    """A full-body shot from afar in a landscape 1080p frame (``posediff eval detect``'s small-people rows):
    the detector's 224x224 view of the whole frame finds nobody under ~400 px; the tiles find the
    person, and the keypoints agree with the same person detected alone in a tight frame (within 2 %
    of their height)."""
    from backend.evaluate import small_person_rows

    rows = small_person_rows(detector, SAMPLES / "image2.jpeg", LIMB_NAMES, heights=(60, 120, 220, 300))
    for _height, alone, found, err, _ms in rows:
        assert alone == "no" and found == "yes" and float(err) < 2.0, rows


def test_the_finest_tiles_look_for_a_tiny_person_only_where_one_may_be(detector):
    """A 70 px person (a wide shot, 1080p) is found only by the finest tiles, which a photo and a clip
    that has found nobody yet search; a clip whose person was larger does not (its empty frames cost
    no more), one whose person was that small does."""
    from backend.vision.follow import PersonFollower

    im = load_image(str(SAMPLES / "image2.jpeg")).rgb
    im = cv2.resize(im, (round(im.shape[1] * 70 / im.shape[0]), 70), interpolation=cv2.INTER_AREA)
    frame = np.full((1080, 1920, 3), 235, np.uint8)
    frame[900:970, 640 : 640 + im.shape[1]] = im
    assert len(detector.detect_people(frame)) == 1 and detector.detect_people(frame, finest=False) == []
    follow = PersonFollower()
    assert follow.may_be_tiny(192)  # nobody found yet
    follow.found(np.array([[960.0, 600.0], [960.0, 400.0]]), 0.9)  # a person with a 500 px crop
    assert follow.size > 192 and not follow.may_be_tiny(192)
    follow.found(np.array([[960.0, 600.0], [960.0, 560.0]]), 0.9)
    assert follow.may_be_tiny(192)


def test_people_small_in_a_cluttered_1080p_frame_are_read_closely(detector):
    """Two people 300 and 240 px tall in a cluttered 1920x1080 frame (the whole frame's 224x224 view
    reads such crops coarsely: in one such frame, the 300 px person's as 678 px, where the landmark
    model saw nobody): both are found, each crop one the landmark model finds its person in, the
    larger first."""
    rng = np.random.default_rng(0)
    frame = np.full((1080, 1920, 3), 128, np.uint8)
    for _ in range(1000):
        x, y, w, h = (int(v) for v in rng.integers(0, [1920, 1080, 120, 120]))
        cv2.rectangle(frame, (x, y), (x + w + 10, y + h + 10), tuple(int(c) for c in rng.integers(0, 255, 3)), -1)
    for name, height, x in (("image2.jpeg", 300, 700), ("image1.png", 240, 1200)):
        im = load_image(str(SAMPLES / name)).rgb
        im = cv2.resize(im, (round(im.shape[1] * height / im.shape[0]), height), interpolation=cv2.INTER_AREA)
        frame[600 : 600 + height, x : x + im.shape[1]] = im
    people = detector.detect_people(frame)
    assert len(people) == 2 and people[0].centre[0] < 1000 < people[1].centre[0]
    assert all(detector.landmarks(frame, p)[1] >= 0.5 for p in people)
    assert 300 < people[0].size < 450 and people[1].size < people[0].size


def test_a_row_of_six_small_people_is_found_whole(detector):
    """Six copies of the sample photo's person, 250 px tall, side by side in a 1920x1080 frame: the
    coarse tiles hold several each and miss some; the finer tiles, searched because the people found
    are small, find all six."""
    im = load_image(str(SAMPLES / "image2.jpeg")).rgb
    im = cv2.resize(im, (round(im.shape[1] * 250 / im.shape[0]), 250), interpolation=cv2.INTER_AREA)
    frame = np.full((1080, 1920, 3), 230, np.uint8)
    xs = []
    for k in range(6):
        x, w = 20 + k * 1880 // 6, min(im.shape[1], 1880 // 6)
        frame[810:1060, x : x + w] = im[:, (im.shape[1] - w) // 2 : (im.shape[1] - w) // 2 + w]
        xs.append(x + w / 2)
    found = sorted(p.centre[0] for p in detector.detect_people(frame))
    assert len(found) == 6 and np.abs(np.array(found) - xs).max() < 20, found
