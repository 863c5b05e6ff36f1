"""Completion from known bone directions sent for a rig of other proportions (what the add-on
sends): the completed pose keeps those directions, with and without the known positions."""

from __future__ import annotations

import numpy as np
import pytest

from backend.eval_complete import _bone_angles_deg, complete_request
from backend.http import schemas
from backend.skeleton import JOINT_INDEX, JOINT_NAMES, NUM_JOINTS

KNOWN = ["pelvis", "spine", "thorax", "neck", "head", "left_shoulder", "left_elbow", "left_wrist",
         "right_shoulder", "right_elbow", "right_wrist", "left_hip", "left_knee", "left_ankle"]


@pytest.mark.parametrize("with_positions", [True, False])
def test_directions_from_a_rig_of_other_proportions_are_kept(pose_service, h36m_train_poses, with_positions):
    world = h36m_train_poses[11] + np.array([1.0, -0.5, 1.0])
    kn = [JOINT_INDEX[n] for n in KNOWN]
    rig_scale = np.random.default_rng(3).uniform(0.8, 1.25, NUM_JOINTS)  # long arms here, short shins there
    frame = complete_request(world, kn, rig_scale)
    if not with_positions:
        frame = {"known_directions": frame["known_directions"]}
    req = schemas.CompleteRequest(frames=[frame], num_hypotheses=4, seed=0, steps=20)
    H = np.array([h.joints for h in pose_service.complete(req).frames[0].hypotheses])
    with_dir = [JOINT_INDEX[n] for n in frame["known_directions"]]
    assert len(with_dir) >= 10
    tol = 1.0 if with_positions else 6.0  # degrees: positions are reproduced exactly, directions are guided
    assert _bone_angles_deg(H, world, with_dir).max() <= tol
    # the unknown right leg stays a leg: within 45 degrees of the truth on average per bone
    unk = [JOINT_INDEX[n] for n in ("right_hip", "right_knee", "right_ankle")]
    assert _bone_angles_deg(H, world, unk).min() < 45, JOINT_NAMES


def test_directions_hanging_from_a_known_position_complete_as_positions_do(pose_service, h36m_train_poses):
    """The rig's directions + its chain root's position give the completion the canonical skeleton's
    known positions give (the directions are placed on the model's bones from the pelvis)."""
    world = h36m_train_poses[5] + np.array([0.3, 1.2, 1.0])
    kn = [JOINT_INDEX[n] for n in KNOWN]
    rig_scale = np.random.default_rng(8).uniform(0.8, 1.25, NUM_JOINTS)
    rig = complete_request(world, kn, rig_scale)
    assert list(rig["known"]) == ["pelvis"] and len(rig["known_directions"]) == len(KNOWN) - 1
    canonical = complete_request(world, kn)
    out = []
    for frame in (rig, canonical):
        req = schemas.CompleteRequest(frames=[frame], num_hypotheses=3, seed=4, steps=12)
        out.append(np.array([h.joints for h in pose_service.complete(req).frames[0].hypotheses]))
    assert np.abs(out[0] - out[1]).max() < 1e-3  # metres
    assert np.abs(out[0][:, kn] - world[kn]).max() < 1e-4
