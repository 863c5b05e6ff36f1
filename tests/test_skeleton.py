"""backend.skeleton: joint set of the contract, hierarchy, mirror map, canonical bone lengths."""

from __future__ import annotations

import numpy as np
import pytest

from backend.skeleton import (
    BONE_LENGTHS,
    BONES,
    JOINT_INDEX,
    JOINT_NAMES,
    MIRROR,
    NUM_JOINTS,
    PARENTS,
    bone_lengths,
    canonical_rest_pose,
    describe,
    joint_index,
)

CONTRACT_17 = [
    "pelvis", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle", "spine",
    "thorax", "neck", "head", "left_shoulder", "left_elbow", "left_wrist", "right_shoulder", "right_elbow",
    "right_wrist",
]
EXTRA = ["right_toe", "left_toe", "left_hand", "right_hand"]


def test_joint_set_is_the_contract_17_plus_toes_and_hands():
    assert NUM_JOINTS == len(JOINT_NAMES) == 21
    assert list(JOINT_NAMES[:17]) == CONTRACT_17
    assert sorted(JOINT_NAMES[17:]) == sorted(EXTRA)
    assert len(set(JOINT_NAMES)) == NUM_JOINTS
    assert all(JOINT_INDEX[n] == i for i, n in enumerate(JOINT_NAMES))


def test_parents_are_topologically_ordered_with_one_root():
    assert len(PARENTS) == NUM_JOINTS
    assert PARENTS[0] == -1 and JOINT_NAMES[0] == "pelvis"
    assert all(0 <= p < j for j, p in enumerate(PARENTS) if j > 0)
    assert len(BONES) == NUM_JOINTS - 1
    # a few anatomical parents
    par = {JOINT_NAMES[j]: (JOINT_NAMES[p] if p >= 0 else None) for j, p in enumerate(PARENTS)}
    assert par["left_knee"] == "left_hip" and par["right_wrist"] == "right_elbow"
    assert par["head"] == "neck" and par["left_toe"] == "left_ankle" and par["right_hand"] == "right_wrist"


def test_mirror_is_an_involution_swapping_left_and_right():
    assert sorted(MIRROR) == list(range(NUM_JOINTS))
    for j, m in enumerate(MIRROR):
        assert MIRROR[m] == j
        name, other = JOINT_NAMES[j], JOINT_NAMES[m]
        if name.startswith("left_"):
            assert other == "right_" + name[5:]
        elif name.startswith("right_"):
            assert other == "left_" + name[6:]
        else:
            assert other == name
    # the hierarchy commutes with the mirror (a mirrored pose is a valid pose)
    for j, p in enumerate(PARENTS):
        if p >= 0:
            assert PARENTS[MIRROR[j]] == MIRROR[p]
            assert BONE_LENGTHS[MIRROR[j]] == pytest.approx(BONE_LENGTHS[j])


def test_rest_pose_has_canonical_bone_lengths_and_is_upright():
    rest = canonical_rest_pose()
    assert rest.shape == (NUM_JOINTS, 3)
    np.testing.assert_allclose(bone_lengths(rest), BONE_LENGTHS, atol=1e-6)
    np.testing.assert_array_equal(rest[0], 0)
    assert rest[JOINT_INDEX["head"], 2] > 0.6 > 0 > -0.8 > rest[JOINT_INDEX["left_ankle"], 2]
    assert rest[JOINT_INDEX["left_hip"], 0] > 0 > rest[JOINT_INDEX["right_hip"], 0]  # facing -Y: left is +X
    assert BONE_LENGTHS[0] == 0 and (BONE_LENGTHS[1:] > 0.05).all()


def test_bone_lengths_broadcasts_over_batches():
    rest = canonical_rest_pose()
    batch = np.stack([rest, rest * 2.0])
    out = bone_lengths(batch)
    assert out.shape == (2, NUM_JOINTS)
    np.testing.assert_allclose(out[1], 2 * BONE_LENGTHS, atol=1e-6)


def test_joint_index_names_valid_joints_on_error():
    assert joint_index("left_wrist") == JOINT_NAMES.index("left_wrist")
    with pytest.raises(KeyError) as e:
        joint_index("left_wristt")
    msg = str(e.value)
    assert "left_wristt" in msg and "left_wrist" in msg and "pelvis" in msg


def test_describe_rows():
    rows = describe()
    assert [r["name"] for r in rows] == list(JOINT_NAMES)
    assert rows[0]["parent"] is None and rows[JOINT_INDEX["left_knee"]]["parent"] == "left_hip"
    assert rows[JOINT_INDEX["left_knee"]]["mirror"] == "right_knee"
    assert rows[JOINT_INDEX["left_knee"]]["bone_length_m"] == pytest.approx(float(BONE_LENGTHS[JOINT_INDEX["left_knee"]]))


def test_anchor_directions_places_chains_that_hang_from_a_known_joint():
    from backend.skeleton import BONE_LENGTHS, JOINT_INDEX, PARENTS, anchor_directions, canonical_rest_pose

    rest = canonical_rest_pose().astype(np.float64) + np.array([0.5, -1.0, 1.0])
    known, kw = np.zeros((NUM_JOINTS, 3)), np.zeros(NUM_JOINTS)
    known[0], kw[0] = rest[0], 1.0  # the pelvis placed
    dirs, dw = np.zeros((NUM_JOINTS, 3)), np.zeros(NUM_JOINTS)
    chain = ["spine", "thorax", "neck", "head"]
    loose = "left_wrist"  # its parent (the elbow) is neither known nor given a direction
    for n in chain + [loose]:
        j = JOINT_INDEX[n]
        dirs[j], dw[j] = (rest[j] - rest[PARENTS[j]]) * 3.0, 1.0  # any length
    k2, kw2, d2, dw2 = anchor_directions(known, kw, dirs, dw)
    for n in chain:
        j = JOINT_INDEX[n]
        assert kw2[j] == 1 and dw2[j] == 0
        np.testing.assert_allclose(k2[j], rest[j], atol=1e-9)
        assert abs(np.linalg.norm(k2[j] - k2[PARENTS[j]]) - BONE_LENGTHS[j]) < 1e-9
    j = JOINT_INDEX[loose]
    assert kw2[j] == 0 and dw2[j] == 1
    np.testing.assert_allclose(d2[j], dirs[j])
    assert kw.sum() == 1 and dw.sum() == 5  # the inputs are not changed
