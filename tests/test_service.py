"""Request validation (backend.http.schemas) and PoseService input errors: every bad input is refused
with an error that names the field; a valid request gets the contract's response shapes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from backend.errors import InputError, field_path, input_error_from
from backend.http import schemas
from backend.ranking import aggregate, diversity
from backend.service import PoseService, keypoint_arrays
from backend.skeleton import JOINT_NAMES, NUM_JOINTS

CAM = {"fx": 1145.0, "fy": 1145.0, "cx": 512.0, "cy": 515.0, "width": 1000, "height": 1002}
KPS = {"pelvis": [500.0, 500.0, 1.0], "left_wrist": [620.0, 410.0, 0.9], "right_ankle": [470.0, 800.0]}


def _estimate(**frame_update) -> dict:
    return {"frames": [{"keypoints": dict(KPS), "camera": dict(CAM), **frame_update}], "num_hypotheses": 4}


def _locs(err: ValidationError) -> list[str]:
    return [field_path(e["loc"]) for e in err.errors()]


@pytest.mark.parametrize("case,data,field", [
    ("NaN keypoint", _estimate(keypoints={"left_wrist": [math.nan, 3.0, 1.0]}), "frames[0].keypoints.left_wrist"),
    ("infinite keypoint", _estimate(keypoints={"left_wrist": [1.0, math.inf]}), "frames[0].keypoints.left_wrist"),
    ("negative image size", _estimate(camera={**CAM, "width": -5}), "frames[0].camera.width"),
    ("zero focal length", _estimate(camera={**CAM, "fx": 0.0}), "frames[0].camera.fx"),
    ("NaN focal length", _estimate(camera={**CAM, "fy": math.nan}), "frames[0].camera.fy"),
    ("num_hypotheses too large", {**_estimate(), "num_hypotheses": schemas.MAX_HYPOTHESES + 1}, "num_hypotheses"),
    ("num_hypotheses zero", {**_estimate(), "num_hypotheses": 0}, "num_hypotheses"),
    ("keypoint too long", _estimate(keypoints={"left_wrist": [1.0, 2.0, 0.5, 4.0]}), "frames[0].keypoints.left_wrist"),
    ("rotation not 3x3", _estimate(camera={**CAM, "rotation": [[1, 0, 0], [0, 1, 0]]}), "frames[0].camera.rotation"),
    ("unknown field", _estimate(kepoints={}), "frames[0].kepoints"),
    ("no frames", {"frames": []}, "frames"),
])
def test_estimate_request_validation_names_the_field(case, data, field):
    with pytest.raises(ValidationError) as e:
        schemas.EstimateRequest.model_validate(data)
    assert any(loc == field or loc.startswith(field) for loc in _locs(e.value)), (case, _locs(e.value))


@pytest.mark.parametrize("data,words", [
    (_estimate(keypoints={"left_wristt": [1.0, 2.0]}), ["left_wristt", "valid names", "left_wrist"]),
    (_estimate(keypoints={"left_wrist": [1.0, 2.0, 1.5]}), ["left_wrist", "confidence", "0..1"]),
    (_estimate(keypoints={"left_wrist": [1.0, 2.0, -0.1]}), ["left_wrist", "confidence"]),
    ({"frames": [{"camera": CAM}]}, ["keypoints", "image"]),
    ({"frames": [{"keypoints": KPS, "image": "a.png"}]}, ["either"]),
    (_estimate(known={"left_knee": [0.0, 0.0, math.nan]}), ["known"]),
])
def test_estimate_request_errors_say_what_is_wrong(data, words):
    with pytest.raises(ValidationError) as e:
        schemas.EstimateRequest.model_validate(data)
    text = str(e.value)
    for w in words:
        assert w in text, (w, text)


@pytest.mark.parametrize("model,data,field", [
    (schemas.CompleteRequest, {"frames": [{"known": {"elbow": [0, 0, 0]}}]}, "frames[0].known"),
    (schemas.CompleteRequest, {"frames": [{"known": {"left_elbow": [0, 0]}}]}, "frames[0].known.left_elbow"),
    (schemas.CompleteRequest, {"frames": [{}]}, "frames[0]"),
    (schemas.CompleteRequest, {"frames": [{"known_directions": {"left_elbow": [0, 0, 0]}}]}, "frames[0]"),
    (schemas.CompleteRequest, {"frames": [{"known_directions": {"pelvis": [0, 0, 1]}}]}, "frames[0]"),
    (schemas.AssistRequest, {"known_directions": {"pelvis": [0, 0, 1]}}, ""),
    (schemas.GenerateRequest, {"num": 0}, "num"),
    (schemas.GenerateRequest, {"num": schemas.MAX_GENERATE + 1}, "num"),
    (schemas.GenerateRequest, {"seed": -1}, "seed"),
    (schemas.VariationsRequest, {"pose": {"pelvis": [0, 0, 0]}, "strength": 1.5}, "strength"),
    (schemas.VariationsRequest, {"pose": {"pelvis": [0, 0, 0]}, "fixed": ["nose"]}, "fixed"),
    (schemas.VariationsRequest, {"pose": {"pelvis": [0, 0, float("nan")]}}, "pose.pelvis"),
    (schemas.DetectRequest, {"frames": [{"image": "x.png", "person": -1}]}, "frames[0].person"),
])
def test_other_requests_name_the_field(model, data, field):
    with pytest.raises(ValidationError) as e:
        model.model_validate(data)
    assert any(loc == field or loc.startswith(field) for loc in _locs(e.value)), _locs(e.value)


def test_keypoint_arrays_unknown_joint_is_an_input_error_naming_it():
    with pytest.raises(InputError) as e:
        keypoint_arrays({"left_wristt": [1.0, 2.0]}, "frames[0].keypoints")
    assert e.value.field == "frames[0].keypoints.left_wristt"
    assert "left_wrist" in e.value.message
    uv, conf = keypoint_arrays({"left_wrist": [1.0, 2.0], "pelvis": [3.0, 4.0, 0.5]}, "f")
    assert uv.shape == (NUM_JOINTS, 2) and conf.shape == (NUM_JOINTS,)
    assert conf[JOINT_NAMES.index("left_wrist")] == 1.0 and conf[0] == 0.5
    assert np.isnan(uv[JOINT_NAMES.index("head")]).all()


@pytest.mark.parametrize("R", [
    [[2.0, 0, 0], [0, 1, 0], [0, 0, 1]],  # scaled
    [[-1.0, 0, 0], [0, 1, 0], [0, 0, 1]],  # a reflection (determinant -1)
    [[1.0, 0.2, 0], [0, 1, 0], [0, 0, 1]],  # sheared
])
def test_rotation_that_is_not_a_rotation_is_refused_by_the_schema(R):
    """One validation layer: the schema refuses it (422 over HTTP, exit 2 in the CLI), naming the field."""
    for model, data in ((schemas.EstimateRequest, _estimate(camera={**CAM, "rotation": R})),
                        (schemas.CompleteRequest, {"frames": [{"keypoints": KPS, "camera": {**CAM, "rotation": R}}]})):
        with pytest.raises(ValidationError) as e:
            model.model_validate(data)
        locs = _locs(e.value)
        assert any(loc.startswith("frames[0].camera.rotation") for loc in locs), locs
        if max(abs(x) for row in R for x in row) <= 1.001:  # else refused as an entry out of range
            assert "not a rotation matrix" in str(e.value)


def test_a_true_rotation_passes_the_schema():
    from backend.camera import tilt_rotation

    R = tilt_rotation(0.3, -0.1).tolist()
    req = schemas.EstimateRequest.model_validate(_estimate(camera={**CAM, "rotation": R}))
    assert np.allclose(req.frames[0].camera.rotation, R)


def test_a_non_finite_result_is_refused_by_the_response_model():
    with pytest.raises(ValidationError) as e:
        schemas.GenerateResponse(joint_names=["a"], poses=[[[0.0, float("nan"), 0.0]]])
    err = input_error_from(e.value)
    assert err.field == "body" and "poses[0][0][1]" in err.message and "not finite" in err.message


def test_unreadable_image_is_an_input_error_naming_the_field(pose_service, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    for image in (str(bad), str(tmp_path / "missing.jpg")):
        req = schemas.EstimateRequest(frames=[{"image": image}], num_hypotheses=2, steps=2)
        with pytest.raises(InputError) as e:
            pose_service.estimate(req)
        assert e.value.field.startswith("frames[0].image")


def test_missing_weights_and_cuda(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        PoseService(tmp_path / "nope.safetensors", device="cpu")
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="(?i)cuda"):
            PoseService(device="cuda")


def test_estimate_response_has_the_contract_shapes(pose_service):
    req = schemas.EstimateRequest.model_validate({**_estimate(camera={**CAM, "rotation": [[1, 0, 0], [0, 0, -1], [0, 1, 0]]}),
                                                  "steps": 8, "seed": 3})
    res = pose_service.estimate(req)
    assert res.joint_names == list(JOINT_NAMES)
    fr = res.frames[0]
    assert len(fr.hypotheses) == 4 and not fr.warnings
    scores = [h.score for h in fr.hypotheses]
    assert scores == sorted(scores, reverse=True)
    for h in fr.hypotheses:
        J = np.array(h.joints)
        assert J.shape == (NUM_JOINTS, 3) and np.abs(J[0]).max() == 0.0  # root-relative
        assert len(h.root_translation) == 3 and h.root_translation[2] > 0  # in front of the camera
        W = np.array(h.world_joints)
        # with the camera rotation given, world joints are the camera joints rotated back (Z up)
        np.testing.assert_allclose(W, J @ np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]]), atol=1e-4)
    assert np.array(fr.aggregate).shape == (NUM_JOINTS, 3)
    assert fr.camera == CAM and fr.diversity_mm > 0
    # same seed, same answer
    assert pose_service.estimate(req).model_dump() == res.model_dump()


def test_keypoints_all_on_one_spot_are_estimated_with_a_warning(pose_service):
    kp = {n: [500.0, 500.0, 0.9] for n in JOINT_NAMES[:17]}
    req = schemas.EstimateRequest(frames=[{"keypoints": kp, "camera": CAM}], num_hypotheses=2, steps=4)
    fr = pose_service.estimate(req).frames[0]
    assert len(fr.hypotheses) == 2 and any("span only 0.0 px" in w for w in fr.warnings), fr.warnings


def test_aggregate_and_diversity():
    rng = np.random.default_rng(0)
    hyps = rng.normal(0, 1, (6, NUM_JOINTS, 3))
    # one dominant score: the aggregate is that hypothesis
    np.testing.assert_allclose(aggregate(hyps, np.array([100.0, 0, 0, 0, 0, 0])), hyps[0], atol=1e-12)
    # equal scores: the mean of the top ``top``
    np.testing.assert_allclose(aggregate(hyps, np.zeros(6), top=5), hyps[:5].mean(0), atol=1e-12)
    np.testing.assert_allclose(aggregate(hyps, np.zeros(6), top=10), hyps.mean(0), atol=1e-12)
    same = np.repeat(hyps[:1], 4, axis=0)
    assert diversity(same) == 0.0 and diversity(hyps[:1]) == 0.0
    two = np.stack([np.zeros((NUM_JOINTS, 3)), np.zeros((NUM_JOINTS, 3))])
    two[1, 1:, 0] = 0.1
    assert diversity(two) == pytest.approx(0.1 * (NUM_JOINTS - 1) / NUM_JOINTS)


def test_single_photos_draw_more_candidates_than_completion():
    """A single frame from 2D alone draws ``PHOTO_OVERSAMPLE`` times the kept hypotheses; with known
    joints (completion, or an estimate that pins some) ``OVERSAMPLE``; without guidance, no more."""
    from backend.camera import Intrinsics
    from backend.prior.evidence import KeypointEvidence
    from backend.prior.sampler import Conditions
    from backend.service import OVERSAMPLE, PHOTO_OVERSAMPLE, _oversampled

    ev = KeypointEvidence(np.full((NUM_JOINTS, 2), 500.0), np.ones(NUM_JOINTS), Intrinsics(1000, 1000, 500, 500, 1000, 1000))
    photo = Conditions(evidence=ev)
    assert _oversampled(20, photo, photo=True) == 20 * PHOTO_OVERSAMPLE
    assert _oversampled(20, photo) == 20 * OVERSAMPLE  # completion from keypoints
    known = Conditions(evidence=ev, known=np.zeros((NUM_JOINTS, 3)), known_w=np.ones(NUM_JOINTS))
    assert _oversampled(20, known, photo=True) == 20 * OVERSAMPLE
    assert _oversampled(20, Conditions(), photo=True) == 20
