"""Mirror-image pictures (a selfie saved as previewed, a webcam's recording, a photo taken in a
mirror): with ``mirrored`` the backend flips them left-right, so the pose is the person's own, not
their mirror image's (``backend/vision/mirror.py``). Real photos, the real detector and prior."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from synthetic_clips import moving_person_frames

from backend.errors import InputError
from backend.http import schemas
from backend.vision.mirror import mirror_keypoints

PHOTO = Path(__file__).resolve().parents[1] / "samples" / "image1.png"


def _mirror_image(src: Path, dst: Path) -> str:
    from PIL import Image, ImageOps

    ImageOps.mirror(Image.open(src)).save(dst)  # as a phone saves a selfie as previewed
    return str(dst)


def _estimate(service, frame: dict, num: int = 5) -> schemas.FrameResult:
    return service.estimate(schemas.EstimateRequest.model_validate({"frames": [frame], "num_hypotheses": num})).frames[0]


def test_a_mirror_image_photo_gives_the_persons_own_pose(pose_service, tmp_path):
    mirror = _mirror_image(PHOTO, tmp_path / "selfie.png")
    own = _estimate(pose_service, {"image": str(PHOTO)})
    flipped = _estimate(pose_service, {"image": mirror, "mirrored": True})
    as_is = _estimate(pose_service, {"image": mirror})
    assert flipped.mirrored and not own.mirrored and not as_is.mirrored
    for a, b in zip(own.hypotheses, flipped.hypotheses, strict=True):  # flipped back: the same pixels, the same poses
        np.testing.assert_allclose(b.joints, a.joints, atol=1e-6)
        np.testing.assert_allclose(b.root_translation, a.root_translation, atol=1e-6)
    assert flipped.keypoints == own.keypoints and flipped.camera == own.camera  # of the flipped picture
    # estimated as it is, the mirror image's joints are the other side's: the person's left wrist is the rig's right
    w = own.camera["width"]
    assert as_is.keypoints["right_wrist"][0] == pytest.approx(w - own.keypoints["left_wrist"][0], abs=4.0)
    assert as_is.keypoints["left_ankle"][0] == pytest.approx(w - own.keypoints["right_ankle"][0], abs=4.0)


def test_the_people_of_a_mirror_image_are_detected_in_the_flipped_picture(pose_service, tmp_path):
    mirror = _mirror_image(PHOTO, tmp_path / "selfie.png")
    res = pose_service.detect(schemas.DetectRequest.model_validate(
        {"frames": [{"image": str(PHOTO)}, {"image": mirror, "mirrored": True}]}))
    own, flipped = res.frames
    assert flipped.mirrored and not own.mirrored
    assert flipped.keypoints == own.keypoints and flipped.box == own.box and flipped.camera == own.camera


def test_mirrored_keypoints_move_to_the_other_side_and_take_its_names():
    got = mirror_keypoints({"left_wrist": [10.0, 20.0, 0.9], "pelvis": [50.0, 60.0], "right_knee": [99.5, 5.0]}, 100)
    assert got == {"right_wrist": [90.0, 20.0, 0.9], "pelvis": [50.0, 60.0], "left_knee": [0.5, 5.0]}
    with pytest.raises(InputError) as e:
        mirror_keypoints({"left_paw": [1.0, 2.0]}, 100, "frames[0].keypoints")
    assert e.value.field == "frames[0].keypoints.left_paw"


def test_keypoints_of_a_mirror_image_are_estimated_as_the_flipped_pictures(pose_service):
    """A client's detector ran on the mirror image: its keypoints with ``mirrored`` give the pose that
    the same keypoints flipped by hand give, and the principal point is flipped with them."""
    own = _estimate(pose_service, {"image": str(PHOTO)}, num=1)
    W, H = own.camera["width"], own.camera["height"]
    camera = {"width": W, "height": H, "fx": own.camera["fx"], "fy": own.camera["fy"], "cx": 150.0}
    flipped_by_hand = {"keypoints": own.keypoints, "camera": {**camera, "cx": W - 150.0}}
    mirror_detector = mirror_keypoints(own.keypoints, W)  # what a detector labels on the mirror image
    a = _estimate(pose_service, flipped_by_hand)
    b = _estimate(pose_service, {"keypoints": mirror_detector, "camera": camera, "mirrored": True})
    assert b.mirrored and b.camera["cx"] == pytest.approx(W - 150.0)
    assert b.keypoints.keys() == a.keypoints.keys()
    assert all(b.keypoints[k] == pytest.approx(a.keypoints[k]) for k in a.keypoints)
    for ha, hb in zip(a.hypotheses, b.hypotheses, strict=True):
        np.testing.assert_allclose(hb.joints, ha.joints, atol=1e-4)
    with pytest.raises(InputError) as e:  # no width: nothing to flip about
        _estimate(pose_service, {"keypoints": mirror_detector, "mirrored": True})
    assert e.value.field == "frames[0].camera.width" and "camera.width" in e.value.message


def test_a_mirrored_webcam_image_sequence_gives_the_persons_own_track(pose_service, tmp_path):
    """Frames flipped before the camera turn, the cut search and the detector: the track of the
    mirror-image frames with ``video.mirrored`` is the original frames' track."""
    own, mirror = tmp_path / "own", tmp_path / "webcam"
    own.mkdir()
    mirror.mkdir()
    for i, f in enumerate(moving_person_frames(3, 300, 6)):
        cv2.imwrite(str(own / f"f{i:03d}.png"), f[:, :, ::-1])
        cv2.imwrite(str(mirror / f"f{i:03d}.png"), f[:, ::-1, ::-1])

    def track(folder: Path, mirrored: bool):
        req = schemas.EstimateRequest.model_validate({"video": {"path": str(folder), "mirrored": mirrored},
                                                      "num_hypotheses": 4, "steps": 8})
        return pose_service.estimate(req)

    a, b = track(own, False), track(mirror, True)
    assert all(f.mirrored for f in b.frames) and len(b.frames) == 3
    for fa, fb in zip(a.frames, b.frames, strict=True):
        np.testing.assert_allclose(fb.track.joints, fa.track.joints, atol=1e-6)
        assert fb.keypoints == fa.keypoints


def test_a_mirrored_keypoint_sequence_takes_the_first_frames_width(pose_service):
    """A keypoint sequence shares its first frame's camera: later frames without one are flipped
    about its width, and the track is the one of the keypoints flipped by hand."""
    own = _estimate(pose_service, {"image": str(PHOTO)}, num=1)
    W, H = own.camera["width"], own.camera["height"]
    camera = {"width": W, "height": H}

    def track(frames):
        req = schemas.EstimateRequest.model_validate({"frames": frames, "sequence": {"fps": 25},
                                                      "num_hypotheses": 4, "steps": 8})
        return pose_service.estimate(req)

    by_hand = track([{"keypoints": own.keypoints, **({"camera": camera} if t == 0 else {})} for t in range(3)])
    mirror = mirror_keypoints(own.keypoints, W)
    got = track([{"keypoints": mirror, "mirrored": True, **({"camera": camera} if t == 0 else {})} for t in range(3)])
    assert all(f.mirrored for f in got.frames) and not any(f.mirrored for f in by_hand.frames)
    for fa, fb in zip(by_hand.frames, got.frames, strict=True):
        np.testing.assert_allclose(fb.track.joints, fa.track.joints, atol=1e-4)
