"""Kinematic flips (backend/prior/flips.py) and how a photo's estimate uses them."""

from __future__ import annotations

import numpy as np

from backend.prior.flips import FLIP_JOINTS, MAX_MISS, kinematic_flips, resolve_along_rays
from backend.skeleton import PARENTS


def _descendants(j: int) -> set[int]:
    out = {j}
    for k, p in enumerate(PARENTS):
        if p in out:
            out.add(k)
    return out


def _bones(X: np.ndarray) -> np.ndarray:
    return np.array([np.linalg.norm(X[..., j, :] - X[..., p, :], axis=-1) for j, p in enumerate(PARENTS) if p >= 0])


def test_a_flipped_bone_projects_where_it_did_keeps_its_length_and_flips_back(h36m_train_poses):
    from backend.evaluate import random_camera

    rng = np.random.default_rng(0)
    poses = h36m_train_poses[::7][:6]
    X = []
    for p in poses:
        R, T = random_camera(rng)
        X.append(p @ R.T + T)  # camera frame, absolute
    X = np.array(X)
    Y, src = kinematic_flips(X)
    assert len(Y) > len(X) * len(FLIP_JOINTS) // 2 and set(src) == set(range(len(X)))
    Xs = X[src]
    np.testing.assert_allclose(Y[..., :2] / Y[..., 2:], Xs[..., :2] / Xs[..., 2:], atol=1e-9)  # same pixels
    np.testing.assert_allclose(_bones(Y), _bones(Xs), atol=MAX_MISS)  # the same bone lengths
    for i in range(len(Y)):
        moved = set(np.flatnonzero(np.abs(Y[i] - Xs[i]).max(-1) > 1e-9))
        assert moved, "every variant moves a joint"
        j = min(moved)
        assert j in FLIP_JOINTS and moved <= _descendants(j)  # the flipped joint and what hangs from it
        flip = np.zeros(Y.shape[1:2], bool)
        flip[j] = True
        fwd, fmiss = resolve_along_rays(Xs[i : i + 1], flip[None])
        np.testing.assert_allclose(fwd[0], Y[i], atol=1e-12)
        back, miss = resolve_along_rays(Y[i : i + 1], flip[None])
        if fmiss[0] == 0 and miss[0] == 0:  # every bone of the variant reaches its ray: flipping again gives the source
            np.testing.assert_allclose(back[0], Xs[i], atol=1e-6)
    # nothing flipped: nothing moves
    same, miss = resolve_along_rays(X, np.zeros(X.shape[:2], bool))
    np.testing.assert_allclose(same, X, atol=1e-12)
    assert np.all(miss == 0)


def test_flips_widen_a_photos_hypotheses_but_leave_the_first_as_the_sampler_ranks_them(pose_service, h36m_train_poses, monkeypatch):
    """Plain flips (not re-sampled): the first ``FLIP_BELOW`` hypotheses (best-of-1, the default key)
    and the aggregate are those without flips; the later ones include flipped candidates, which keep
    the skeleton's bone lengths."""
    import backend.service as S
    from backend.evaluate import H36M_K, lift_case
    from backend.http import schemas

    monkeypatch.setattr(S, "FLIP_RESAMPLE", 0.0)

    kps, _, _ = lift_case(h36m_train_poses[40], np.random.default_rng(3), noise_px=2.0)
    req = schemas.EstimateRequest.model_validate({"frames": [{"keypoints": kps, "camera": H36M_K.as_dict()}], "num_hypotheses": 20, "steps": 12, "seed": 1})
    fr_flips = pose_service.estimate(req).frames[0]
    monkeypatch.setattr(S, "FLIP_SOURCES", 0)
    fr_without = pose_service.estimate(req).frames[0]
    with_flips, without = fr_flips.hypotheses, fr_without.hypotheses
    assert fr_flips.aggregate == fr_without.aggregate and fr_flips.aggregate_world == fr_without.aggregate_world
    assert len(with_flips) == len(without) == 20
    for a, b in zip(with_flips[: S.FLIP_BELOW], without[: S.FLIP_BELOW]):
        assert a.joints == b.joints and a.score == b.score
    scores = [h.score for h in with_flips]
    assert scores == sorted(scores, reverse=True)
    new = [h for h in with_flips if all(h.joints != b.joints for b in without)]
    assert new, "no flipped candidate was kept"
    ref = _bones(np.array(without[0].joints))
    for h in new:
        np.testing.assert_allclose(_bones(np.array(h.joints)), ref, atol=MAX_MISS + 2e-4)


def test_flips_that_would_put_a_joint_behind_the_camera_or_are_not_finite_are_left_out():
    """A pose so near the camera that the other depth of a bone is behind it gives no such variant;
    a pose with a NaN joint gives no variant at all."""
    rng = np.random.default_rng(1)
    from backend.skeleton import canonical_rest_pose

    rest = canonical_rest_pose().astype(np.float64)
    X = rest @ np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]]).T  # upright, facing the camera
    near = X + np.array([0.0, 0.0, 0.3])  # pelvis 30 cm in front: some joints' rays graze the camera
    Y, _ = kinematic_flips(near[None] + rng.normal(0, 0.02, (1,) + X.shape))
    assert 0 < len(Y) < len(FLIP_JOINTS)  # the legs' other depths are behind the camera: left out
    assert np.all(Y[..., 2] > 0.05)
    bad = X + np.array([0.0, 0.0, 4.0])
    bad[5] = np.nan
    Y, src = kinematic_flips(bad[None])
    assert len(Y) == 0 and len(src) == 0


def test_resampled_flips_still_fit_the_2d_and_rank_at_most_level_with_the_samplers_best(pose_service, h36m_train_poses, monkeypatch):
    """A photo's flips are re-sampled part-way through the schedule (``FLIP_RESAMPLE``): they differ
    from the plain flips, still fit the 2D about as well as the sampler's own candidates, and none
    is scored above the sampler's best (``RESAMPLED_FLIP_BELOW``: level with it at most, so they
    take part in the consensus that picks the default key); the scores stay sorted."""
    import backend.service as S
    from backend.evaluate import H36M_K, lift_case
    from backend.http import schemas

    assert S.FLIP_RESAMPLE > 0 and S.RESAMPLED_FLIP_BELOW == 1
    kps, _, _ = lift_case(h36m_train_poses[40], np.random.default_rng(3), noise_px=2.0)
    req = schemas.EstimateRequest.model_validate({"frames": [{"keypoints": kps, "camera": H36M_K.as_dict()}], "num_hypotheses": 20, "steps": 12, "seed": 1})
    fr = pose_service.estimate(req).frames[0]
    monkeypatch.setattr(S, "FLIP_RESAMPLE", 0.0)
    plain = pose_service.estimate(req).frames[0]
    monkeypatch.setattr(S, "FLIP_SOURCES", 0)
    own = pose_service.estimate(req).frames[0]
    scores = [h.score for h in fr.hypotheses]
    assert len(scores) == 20 and scores == sorted(scores, reverse=True)
    assert max(scores) <= max(h.score for h in own.hypotheses) + 1e-4  # scores standardised on the sampler's candidates
    new = [h for h in fr.hypotheses if all(h.joints != b.joints for b in own.hypotheses)]
    assert new and all(all(h.joints != p.joints for p in plain.hypotheses) for h in new), "the kept flips are re-sampled ones"
    worst_own = max(h.reprojection_error_px for h in own.hypotheses)
    assert all(h.reprojection_error_px <= worst_own + 1.0 for h in new)
    assert np.isfinite(np.array(fr.aggregate)).all()


def test_resample_checks_its_arguments_and_a_light_resample_stays_near_the_pose(pose_service, h36m_train_poses):
    """``GuidedSampler.resample``: wrong shapes or a strength outside (0, 1] raise ValueError;
    re-running the last 5 % of the schedule without evidence moves a training pose much less than
    the distance between poses and than re-running all of it."""
    import pytest

    from backend.prior.guidance import Conditions
    from backend.prior.sampler import GuidedSampler

    sampler = GuidedSampler(pose_service.model, steps=15, eta=0.5)
    X = h36m_train_poses[100:104].astype(np.float64)
    X = X - X[:, :1]
    z = np.zeros(4)
    for bad in [(X[0], z, z, 0.2), (X, z[:3], z, 0.2), (X, z, z, 0.0), (X, z, z, 1.5)]:
        with pytest.raises(ValueError):
            sampler.resample(*bad[:3], Conditions(), bad[3])
    moved = {}
    for s in (0.05, 1.0):
        out = sampler.resample(X, z, z, Conditions(), s, seed=0)
        assert out.world_rel.shape == X.shape and np.isfinite(out.world_rel).all()
        moved[s] = np.linalg.norm(out.world_rel - X, axis=-1).mean(-1)  # [4] metres
    far = np.linalg.norm(X[:, None] - X[None], axis=-1).mean(-1)[~np.eye(4, dtype=bool)]  # between the poses
    assert moved[0.05].max() < far.min() / 2 and moved[0.05].mean() < moved[1.0].mean() / 3


def test_a_sequences_flips_are_re_sampled_in_one_batch_each_under_its_own_frames_2d(pose_service, h36m_train_poses):
    """``backend.prior.batch.resample_stacked`` (a sequence chunk's flips, one batch): each frame's
    re-sampled poses fit that frame's 2D, not the other frame's, and come back in their frame's order
    and count; ``backend.sequence.with_flips`` appends them after the sampler's own candidates."""
    import backend.sequence as SQ
    from backend.evaluate import H36M_K, lift_case
    from backend.prior.batch import resample_stacked, sample_stacked
    from backend.prior.evidence import KeypointEvidence
    from backend.prior.guidance import Conditions
    from backend.prior.sampler import GuidedSampler
    from backend.service import keypoint_arrays

    assert SQ.SEQUENCE_FLIP_RESAMPLE > 0
    conds = []
    for k, seed in ((40, 3), (90, 4)):  # two different poses
        kps, _, _ = lift_case(h36m_train_poses[k], np.random.default_rng(seed), noise_px=2.0)
        uv, conf = keypoint_arrays(kps, "keypoints")
        conds.append(Conditions(evidence=KeypointEvidence(uv, conf, H36M_K)))
    smp = GuidedSampler(pose_service.model, steps=12, eta=0.5)
    smp.common_plausibility = True
    res = sample_stacked(smp, conds, [12, 12], seed=0)
    cands = [pose_service._flip_candidates(smp, r, c, SQ.SEQUENCE_PLAUSIBILITY_WEIGHT) for r, c in zip(res, conds)]
    assert all(fc is not None for fc in cands)
    worlds = [fc[0] for fc in cands]
    out = resample_stacked(smp, conds, worlds, [r.pitch[fc[2]] for r, fc in zip(res, cands)],
                           [r.roll[fc[2]] for r, fc in zip(res, cands)], 0.3, seed=0, steps=4)
    assert [len(o.world_rel) for o in out] == [len(w) for w in worlds]

    def fit_px(cam_abs, cond):  # mean distance to the frame's 2D anchors (the seen joints), pixels
        seen = cond.evidence.weight.numpy() > 0
        uv = cam_abs[:, seen, :2] / cam_abs[:, seen, 2:]
        return np.linalg.norm(uv - cond.evidence.anchor_uv.numpy()[None, seen], axis=-1).mean(-1) * H36M_K.fx

    for f, o in enumerate(out):
        cam = o.camera_rel + o.camera_root[:, None]
        own, other = fit_px(cam, conds[f]), fit_px(cam, conds[1 - f])
        assert np.median(own) < 15 and np.median(other) > 2 * np.median(own)
    both = SQ.with_flips(pose_service, smp, conds, res, seed=0)
    for (r, n_own), r0 in zip(both, res):
        assert n_own == len(r0.world_rel) and len(r.world_rel) > n_own
        np.testing.assert_array_equal(r.world_rel[:n_own], r0.world_rel)
