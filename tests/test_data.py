"""backend.mocap.datasets: held-out subjects, bone-length normalisation, mirror, yaw augmentation,
remove_yaw, and the anatomy of Human3.6M after loading (small strided subsets of S1)."""

from __future__ import annotations

import numpy as np
import pytest

from backend.mocap import datasets as D
from backend.skeleton import BONE_LENGTHS, JOINT_INDEX, MIRROR, NUM_JOINTS, PARENTS, bone_lengths, canonical_rest_pose

J = JOINT_INDEX


def _unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _bone_dirs(poses):
    par = [max(p, 0) for p in PARENTS]
    return _unit(poses[:, 1:] - poses[:, par][:, 1:])


@pytest.mark.parametrize("subjects", [("S9",), ("S11",), ("S1", "S9")])
def test_load_h36m_refuses_held_out_subjects(subjects, tmp_path):
    with pytest.raises(ValueError, match="held out"):
        D.load_h36m(subjects)
    # refused before the file is even looked at
    with pytest.raises(ValueError, match="held out"):
        D.load_h36m(subjects, path=tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="held out"):
        D.h36m_poseset(subjects)


def test_load_h36m_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        D.load_h36m(("S1",), path=tmp_path / "missing.npz")


def test_load_h36m_shapes_and_root(h36m_train_poses):
    clips = D.load_h36m(("S1",), stride=100)
    assert clips and all(k.startswith("S1/") for k in clips)
    for arr in clips.values():
        assert arr.dtype == np.float32 and arr.ndim == 3 and arr.shape[1:] == (NUM_JOINTS, 3)
        np.testing.assert_array_equal(arr[:, 0], 0)
    # the H3.6M canonical skeleton: bones already (nearly) canonical, hand ends excepted
    pose = np.concatenate(list(clips.values()))
    err = np.abs(bone_lengths(pose)[:, 1:17] - BONE_LENGTHS[1:17])
    assert err.max() < 0.005


def test_h36m_anatomy_right_hip_on_the_bodys_right(h36m_train_poses):
    """Forward = horizontal direction of the toes, up = +Z, right = forward x up."""
    p = h36m_train_poses
    feet = (p[:, J["left_toe"]] - p[:, J["left_ankle"]]) + (p[:, J["right_toe"]] - p[:, J["right_ankle"]])
    forward = feet * np.array([1.0, 1.0, 0.0])
    ok = np.linalg.norm(forward, axis=-1) > 0.05
    right = np.cross(_unit(forward[ok]), np.array([0.0, 0.0, 1.0]))
    hip = p[ok, J["right_hip"]] - p[ok, J["left_hip"]]
    sh = p[ok, J["right_shoulder"]] - p[ok, J["left_shoulder"]]
    assert ok.mean() > 0.8
    assert ((hip * right).sum(-1) > 0).mean() > 0.95
    assert ((sh * right).sum(-1) > 0).mean() > 0.9
    # upright: the head is above the pelvis in almost every frame
    assert (p[:, J["head"], 2] > 0.3).mean() > 0.9


def test_normalise_bone_lengths_gives_canonical_lengths_and_keeps_directions(h36m_train_poses):
    rng = np.random.default_rng(0)
    p = h36m_train_poses[:40].astype(np.float64)
    # a different skeleton: scale each bone (built down the tree) and move the root away
    scale = rng.uniform(0.7, 1.3, (len(p), NUM_JOINTS))
    q = np.zeros_like(p)
    for j, par in enumerate(PARENTS):
        if par >= 0:
            q[:, j] = q[:, par] + scale[:, j, None] * (p[:, j] - p[:, par])
    q = q + rng.normal(0, 1, (len(p), 1, 3))
    out = D.normalise_bone_lengths(q)
    assert out.dtype == np.float32 and out.shape == q.shape
    np.testing.assert_allclose(bone_lengths(out), np.broadcast_to(BONE_LENGTHS, (len(p), NUM_JOINTS)), atol=1e-5)
    np.testing.assert_allclose(out[:, 0], 0, atol=1e-7)
    np.testing.assert_allclose(_bone_dirs(out), _bone_dirs(q), atol=1e-5)
    # a zero-length bone gets the canonical length (no NaN)
    z = q[:1].copy()
    z[0, J["left_wrist"]] = z[0, J["left_elbow"]]
    out = D.normalise_bone_lengths(z)
    assert np.isfinite(out).all()
    assert bone_lengths(out)[0, J["left_wrist"]] == pytest.approx(BONE_LENGTHS[J["left_wrist"]], abs=1e-5)


def test_mirror_swaps_sides_negates_x_and_is_an_involution(h36m_train_poses):
    p = h36m_train_poses[:20]
    mask = np.ones(p.shape[:2], bool)
    mask[:, J["left_toe"]] = False
    m, mm = D.mirror(p, mask)
    np.testing.assert_allclose(m[:, J["left_hip"]], p[:, J["right_hip"]] * [-1, 1, 1])
    np.testing.assert_allclose(m[:, J["right_wrist"]], p[:, J["left_wrist"]] * [-1, 1, 1])
    np.testing.assert_allclose(m[:, J["head"]], p[:, J["head"]] * [-1, 1, 1])
    assert not mm[:, J["right_toe"]].any() and mm[:, J["left_toe"]].all()
    np.testing.assert_allclose(D.mirror(m), p)
    np.testing.assert_allclose(bone_lengths(m), bone_lengths(p), atol=1e-6)


def test_augment_is_yaw_and_mirror_only(h36m_train_poses):
    p = h36m_train_poses[:64]
    mask = np.ones(p.shape[:2], bool)
    mask[:, J["left_hand"]] = False
    out, om = D.augment(p, mask, np.random.default_rng(3))
    assert out.shape == p.shape and om.shape == mask.shape
    np.testing.assert_allclose(out[:, 0], 0, atol=1e-6)
    np.testing.assert_allclose(bone_lengths(out), bone_lengths(p), atol=1e-5)
    # vertical coordinates unchanged (up to the left/right swap of a mirrored pose)
    same = np.abs(out[..., 2] - p[..., 2]).max(-1) < 1e-5
    mirrored = np.abs(out[..., 2] - p[:, list(MIRROR), 2]).max(-1) < 1e-5
    assert (same | mirrored).all()
    # horizontal distances from the vertical axis unchanged too: a rotation about Z
    r_out = np.linalg.norm(out[..., :2], axis=-1)
    r_src = np.where(mirrored[:, None] & ~same[:, None], np.linalg.norm(p[:, list(MIRROR), :2], axis=-1),
                     np.linalg.norm(p[..., :2], axis=-1))
    np.testing.assert_allclose(r_out, r_src, atol=1e-5)
    # the mask follows the joints; both kinds of sample occur, and the facing varies
    assert (om[mirrored & ~same][:, J["right_hand"]] == False).all()  # noqa: E712
    assert 10 < mirrored.sum() < 54
    yaw = np.arctan2(*(out[:, J["left_hip"], :2] - out[:, J["right_hip"], :2]).T[::-1])
    assert np.std(yaw) > 1.0


def test_remove_yaw_puts_the_hip_line_on_plus_x(h36m_train_poses):
    rng = np.random.default_rng(5)
    p, _ = D.augment(h36m_train_poses[:30], np.ones((30, NUM_JOINTS), bool), rng)
    out = D.remove_yaw(p)
    hip = out[:, J["left_hip"]] - out[:, J["right_hip"]]
    np.testing.assert_allclose(hip[:, 1], 0, atol=1e-5)
    assert (hip[:, 0] > 0).all()
    np.testing.assert_allclose(out[..., 2], p[..., 2], atol=1e-6)
    np.testing.assert_allclose(bone_lengths(out), bone_lengths(p), atol=1e-5)
    # the facing is removed: two yaws of one pose give the same result
    rest = canonical_rest_pose()[None]
    a = D.remove_yaw(rest @ D.rotation_z(np.array([0.3]))[0].T.astype(np.float32))
    b = D.remove_yaw(rest @ D.rotation_z(np.array([-2.0]))[0].T.astype(np.float32))
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_rotation_z_is_a_rotation_about_the_vertical():
    R = D.rotation_z(np.array([0.0, np.pi / 2, 1.0]))
    np.testing.assert_allclose(R[0], np.eye(3), atol=1e-12)
    np.testing.assert_allclose(R[1] @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(R[2] @ R[2].T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(R), 1, atol=1e-12)


def test_h36m_poseset_is_canonical(h36m_train_poses):
    ps = D.h36m_poseset(("S1",), stride=400)
    assert len(ps) > 50 and ps.mask.all() and ps.names == ["h36m"]
    np.testing.assert_allclose(bone_lengths(ps.poses), np.broadcast_to(BONE_LENGTHS, ps.poses.shape[:2]), atol=1e-5)
    both = D.PoseSet.concat([ps, ps])
    assert len(both) == 2 * len(ps) and both.names == ["h36m", "h36m"] and both.source.max() == 1
