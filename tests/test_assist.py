"""Pose assist (``PoseService.assist``, :mod:`backend.assist`) with the shipped prior: pins kept
exactly, continuity under small pin moves, no drift at rest, bad input refused naming the field."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from backend.assist import rebuild_bones
from backend.http import schemas
from backend.skeleton import BONE_LENGTHS, JOINT_INDEX, JOINT_NAMES, NUM_JOINTS, PARENTS

PINS = ["left_wrist", "right_wrist", "left_ankle", "right_ankle"]


def _bone_errors(p: np.ndarray) -> np.ndarray:
    return np.abs(np.linalg.norm(p[1:] - p[list(PARENTS[1:])], axis=-1) - BONE_LENGTHS[1:])


@pytest.fixture(scope="module")
def start(h36m_train_poses):
    """A real (training) pose placed in the world, and its pins."""
    pose = h36m_train_poses[7] + np.array([0.4, -0.3, 1.0])
    return pose, {n: pose[JOINT_INDEX[n]].tolist() for n in PINS}


def test_drag_keeps_pins_is_continuous_and_does_not_drift(pose_service, start):
    pose, known = start
    first = pose_service.assist(schemas.AssistRequest(known=known, seed=0))
    assert first.joint_names == list(JOINT_NAMES) and not first.warm_start
    prev = np.asarray(first.joints)
    for n in PINS:
        assert np.linalg.norm(prev[JOINT_INDEX[n]] - known[n]) < 1e-4, n
    step = np.array([0.006, 0.003, 0.002])  # 7 mm per update of the left wrist
    ratios = []
    for _ in range(6):
        known = {**known, "left_wrist": (np.asarray(known["left_wrist"]) + step).tolist()}
        res = pose_service.assist(schemas.AssistRequest(known=known, previous=prev.tolist(), seed=0))
        assert res.warm_start
        cur = np.asarray(res.joints)
        for n in PINS:  # pins reproduced exactly
            assert np.linalg.norm(cur[JOINT_INDEX[n]] - known[n]) < 1e-4, n
        ratios.append(np.linalg.norm(cur - prev, axis=-1).max() / np.linalg.norm(step))
        free = [j for j in range(NUM_JOINTS) if JOINT_NAMES[j] not in PINS and PARENTS[j] >= 0
                and JOINT_NAMES[PARENTS[j]] not in PINS]
        # bones between free joints keep canonical lengths (an out-of-reach pin stretches the two above it a little)
        assert _bone_errors(cur)[[j - 1 for j in free]].max() < 5e-3
        prev = cur
    assert max(ratios) <= 3.0, ratios  # no jumps: joints move at most 3x the pin motion
    # pins at rest: the pose stays exactly where it is
    again = np.asarray(pose_service.assist(schemas.AssistRequest(known=known, previous=prev.tolist())).joints)
    assert np.abs(again - prev).max() < 1e-4


def test_known_directions_only_keep_the_pelvis(pose_service, start):
    pose, _ = start
    d = pose[JOINT_INDEX["left_elbow"]] - pose[JOINT_INDEX["left_shoulder"]]
    req = schemas.AssistRequest(known_directions={"left_elbow": (d / np.linalg.norm(d)).tolist()},
                                previous=pose.tolist())
    out = np.asarray(pose_service.assist(req).joints)
    assert np.isfinite(out).all()
    assert np.linalg.norm(out[0] - pose[0]) < 1e-6  # nothing moved: the pose stays put


def test_rebuild_bones_two_bone_ik_keeps_pinned_child():
    from backend.skeleton import canonical_rest_pose

    p = canonical_rest_pose().astype(np.float64)
    fixed = np.zeros(NUM_JOINTS)
    fixed[JOINT_INDEX["left_ankle"]] = 1
    X = p.copy()
    X[JOINT_INDEX["left_ankle"]] += [0.05, 0.1, 0.15]  # ankle pinned closer to the hip: the knee must bend
    out = rebuild_bones(X, fixed)
    assert np.allclose(out[JOINT_INDEX["left_ankle"]], X[JOINT_INDEX["left_ankle"]])
    assert _bone_errors(out).max() < 1e-6


@pytest.mark.parametrize("data,field,words", [
    ({}, "", "no pins"),
    ({"known": {}}, "", "no pins"),
    ({"known": {"left_wrist": [math.nan, 0.0, 1.0]}}, "known.left_wrist.0", "finite"),
    ({"known": {"left_wirst": [0.0, 0.0, 1.0]}}, "known", "unknown joint"),
    ({"known": {"left_wrist": [0.0, 0.0, 1.0]}, "previous": [[0.0, 0.0, 0.0]] * 3}, "previous", "21 rows"),
    ({"known_directions": {"left_elbow": [0.0, 0.0, 0.0]}}, "", "zero vector"),
    ({"known": {"left_wrist": [0.0, 0.0, 1.0]}, "steps": 500}, "steps", "less than"),
])
def test_bad_requests_name_the_field(data, field, words):
    with pytest.raises(ValidationError) as e:
        schemas.AssistRequest.model_validate(data)
    err = e.value.errors()[0]
    assert ".".join(str(p) for p in err["loc"]) == field
    assert words in err["msg"]


def test_previous_that_is_not_a_body_is_an_input_error(pose_service):
    from backend.errors import InputError

    with pytest.raises(InputError) as e:
        pose_service.assist(schemas.AssistRequest(known={"left_wrist": [0.0, 0.0, 1.0]},
                                                  previous=[[0.0, 0.0, 1.0]] * NUM_JOINTS))
    assert e.value.field == "previous"
