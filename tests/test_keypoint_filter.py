"""Temporal filter of 2D keypoints (backend.vision.keypoint_filter), the evidence shift it is applied
through (backend.prior.evidence) and its use in sequence estimation (backend.sequence)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.vision.keypoint_filter import KeypointFilterStream, filter_keypoints


def _linear(T=30, J=6):
    t = np.arange(T, dtype=np.float64)[:, None, None]
    return np.concatenate([100 + 3.0 * t, 200 - 1.5 * t], -1) + np.arange(J)[None, :, None] * 10.0


@pytest.mark.parametrize("window,order", [(5, 1), (9, 1), (9, 2), (15, 2)])
def test_linear_motion_is_kept_exactly_even_at_the_ends_and_around_unseen_joints(window, order):
    uv = _linear()
    w = np.ones(uv.shape[:2])
    w[3, 2] = 0.0
    w[10:13, 4] = 0.0  # a joint unseen for 3 frames (at least 2 seen frames in every window)
    w[20] = 0.3  # a low-confidence frame
    np.testing.assert_allclose(filter_keypoints(uv, w, window, order), uv, atol=1e-8)


def test_unevenly_spaced_frames_keep_a_uniform_motion_in_time():
    """Frames 1 then 2 apart (a variable frame rate): given their times the stream keeps a motion
    uniform in time exactly; taken as evenly spaced it bends it at the change of rate."""
    t = np.cumsum(np.r_[0.0, np.where(np.arange(29) < 15, 1.0, 2.0)])
    uv = np.stack([100 + 3.0 * t, 200 - 1.5 * t], -1)[:, None, :].repeat(4, 1)  # [30, 4, 2]

    def streamed(times):
        st, out = KeypointFilterStream(9, 1), {}
        for k in range(len(uv)):
            out.update(st.push(uv[k], np.ones(4), None if times is None else times[k]))
        out.update(st.finish())
        return np.stack([out[k] for k in range(len(uv))])

    np.testing.assert_allclose(streamed(t), uv, atol=1e-8)
    assert np.abs(streamed(None) - uv).max() > 1.0


def test_iid_noise_is_reduced():
    rng = np.random.default_rng(0)
    uv = _linear(60, 8)
    noisy = uv + rng.normal(0, 4.0, uv.shape)
    f = filter_keypoints(noisy, np.ones(uv.shape[:2]), 9, 1)
    e_raw = np.linalg.norm(noisy - uv, axis=-1).mean()
    e_f = np.linalg.norm(f - uv, axis=-1).mean()
    assert e_f < 0.6 * e_raw, (e_f, e_raw)


def test_zero_confidence_joints_are_ignored():
    """A wild value with confidence 0 (or NaN) changes nothing around it; the joint itself is
    filled from its neighbours."""
    uv = _linear()
    w = np.ones(uv.shape[:2])
    bad = uv.copy()
    bad[12, 1] = [5000.0, -3000.0]
    bad[13, 2] = np.nan
    w[12, 1] = 0.0
    f = filter_keypoints(bad, w, 9, 2)
    np.testing.assert_allclose(f, uv, atol=1e-8)


def test_a_joint_never_seen_in_its_window_keeps_its_value_and_windows_longer_than_the_clip_work():
    uv = _linear(6, 3)
    w = np.ones(uv.shape[:2])
    w[:, 0] = 0.0
    uv[:, 0] = 7.0
    f = filter_keypoints(uv, w, 9, 2)  # window longer than the clip: one fit over the 6 frames
    np.testing.assert_allclose(f[:, 0], 7.0)
    np.testing.assert_allclose(f[:, 1:], uv[:, 1:], atol=1e-8)
    np.testing.assert_allclose(filter_keypoints(uv, w, 1, 2), uv)  # window 1 = off


def test_few_seen_frames_lower_the_order_instead_of_failing():
    uv = _linear(12, 2)
    w = np.zeros(uv.shape[:2])
    w[5, 0] = 1.0  # joint 0 seen in one frame only: a constant
    w[[4, 7], 1] = 1.0  # joint 1 in two: a line through them
    f = filter_keypoints(uv, w, 9, 2)
    np.testing.assert_allclose(f[3, 0], uv[5, 0])
    np.testing.assert_allclose(f[5, 1], uv[5, 1], atol=1e-8)


def test_bad_window_or_shapes_are_errors():
    with pytest.raises(ValueError):
        filter_keypoints(_linear(), np.ones((30, 6)), 4, 1)
    with pytest.raises(ValueError):
        filter_keypoints(_linear(), np.ones((30, 5)), 5, 1)
    with pytest.raises(ValueError):
        KeypointFilterStream(0, 1)


@pytest.mark.parametrize("window,T", [(9, 40), (9, 5), (3, 17), (15, 23)])
def test_stream_equals_the_whole_sequence_filter_with_gaps_and_bounded_memory(window, T):
    rng = np.random.default_rng(1)
    uv = _linear(T, 5) + rng.normal(0, 2.0, (T, 5, 2))
    w = rng.uniform(0.0, 1.0, (T, 5))
    w[w < 0.2] = 0.0
    gaps = {2, 3, T - 1} & set(range(T))
    for g in gaps:
        w[g] = 0.0
    ref = filter_keypoints(uv, w, window, 2)
    s = KeypointFilterStream(window, 2)
    out, held = [], 0
    for t in range(T):
        ready = s.push(None if t in gaps else uv[t], w[t])
        held = max(held, len(s.frames))
        for i, _ in ready:  # frame i is out once half a window after it was read (a full window at the start)
            assert t >= min(max(i - window // 2, 0) + window - 1, T - 1)
        out += ready
    out += s.finish()
    assert [i for i, _ in out] == list(range(T)) and held <= window
    for i, f in out:
        if i in gaps:
            assert f is None  # a gap stays a gap
        else:
            np.testing.assert_allclose(f, ref[i], atol=1e-10)


# ------------------------------------------------------------------------------ evidence shift


def _heatmap_evidence():
    from backend.camera import Intrinsics
    from backend.prior.evidence import HeatmapEvidence

    K = Intrinsics(800.0, 800.0, 320.0, 240.0, 640, 480)
    idx = [1, 2, 5]
    H = W = 64
    ys, xs = np.mgrid[0:H, 0:W]
    centres = [(20.0, 30.0), (40.5, 22.0), (33.0, 45.0)]
    logh = np.stack([-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * 2.0**2) for cx, cy in centres]).astype(np.float32)
    logh -= np.log(np.exp(logh).sum((1, 2), keepdims=True))
    A = np.array([[0.1, 0.0, 0.0], [0.0, 0.1, 8.0]])  # image pixels -> heatmap cells
    return HeatmapEvidence(logh, idx, A, [1.0, 0.8, 0.6], K), idx


def test_shifted_heatmap_evidence_is_the_same_likelihood_moved_by_the_offset():
    ev, idx = _heatmap_evidence()
    rng = np.random.default_rng(0)
    uv = torch.as_tensor(rng.normal(0, 0.1, (4, ev.anchor_uv.shape[0], 2)), dtype=torch.float32)
    ll0, g0 = ev.value_and_grad(uv)
    t0 = ev.target(uv)
    a0 = ev.anchor_uv.clone()
    off = np.zeros((ev.anchor_uv.shape[0], 2))
    off[idx] = [[0.01, -0.02], [0.03, 0.0], [-0.015, 0.01]]
    ev.shift(off)
    offt = torch.as_tensor(off, dtype=torch.float32)
    ll1, g1 = ev.value_and_grad(uv + offt)
    torch.testing.assert_close(ll1, ll0, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(g1, g0, atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(ev.target(uv + offt)[:, idx], (t0 + offt)[:, idx], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ev.anchor_uv, a0 + offt)


def test_filtered_anchors_move_seen_keypoints_only():
    from backend.camera import Intrinsics
    from backend.prior.evidence import KeypointEvidence
    from backend.sequence import apply_filtered_anchors

    K = Intrinsics(1000.0, 1000.0, 500.0, 500.0, 1000, 1000)
    uv = np.random.default_rng(0).uniform(300, 700, (21, 2))
    conf = np.ones(21)
    conf[4] = 0.0
    ev = KeypointEvidence(uv, conf, K)
    before = ev.anchor_uv.clone()
    new = np.full((21, 2), 0.123)
    apply_filtered_anchors(ev, new)
    got = ev.anchor_uv.numpy()
    np.testing.assert_allclose(np.delete(got, 4, 0), 0.123, atol=1e-6)
    np.testing.assert_allclose(got[4], before[4].numpy())
    # the likelihood is centred on the new anchors
    ll, g = ev.value_and_grad(torch.as_tensor(new, dtype=torch.float32)[None])
    assert float(g.abs().max()) < 1e-3


# ------------------------------------------------------------------------------ in a sequence estimate


def test_sequence_estimate_samples_from_the_filtered_evidence_across_chunks_and_gaps(monkeypatch):
    """Keypoint frames of a held-out clip with 4 px noise, estimated in chunks of 4 with a gap: each
    frame is sampled from the whole-clip filter of the raw 2D (look-ahead carried across chunks), the
    gap stays a gap, and the response still has a track and the raw keypoints."""
    import backend.sequence as SQ
    from backend.eval_sequence import clip_request
    from backend.http import schemas
    from backend.mocap import datasets as D
    from backend.service import PoseService

    poses = D.normalise_bone_lengths(D.load_h36m(("S11",), allow_eval=True)["S11/walking_1"][100:111]).astype(np.float64)
    req, _, _, _ = clip_request(poses, np.random.default_rng(0), num=2, seed=0)
    req["steps"] = 4
    gap = 5
    first = next(iter(req["frames"][gap]["keypoints"]))
    req["frames"][gap]["keypoints"] = {first: req["frames"][gap]["keypoints"][first]}  # 1 joint: no usable evidence
    raw = {i: dict(fr["keypoints"]) for i, fr in enumerate(req["frames"])}
    seen_anchors: list[np.ndarray] = []
    real = SQ.sample_frames

    def recording(sampler, conds, num, **kw):
        seen_anchors.extend(c.evidence.anchor_uv.numpy().copy() for c in conds)
        return real(sampler, conds, num, **kw)

    monkeypatch.setattr(SQ, "CHUNK", 4)
    monkeypatch.setattr(SQ, "sample_frames", recording)
    monkeypatch.setattr(SQ, "FILTER_2D_WINDOW", 5)
    monkeypatch.setattr(SQ, "FILTER_2D_ORDER", 1)
    res = PoseService().estimate(schemas.EstimateRequest.model_validate(req))
    assert res.sequence.gaps == [gap] and all(fr.track is not None for fr in res.frames)
    assert res.frames[3].keypoints == {k: list(v) for k, v in raw[3].items()}  # the response keeps the request's 2D

    K = res.frames[0].camera
    names = list(raw[0])
    from backend.skeleton import JOINT_INDEX, NUM_JOINTS

    uv = np.zeros((len(raw), NUM_JOINTS, 2))
    w = np.zeros((len(raw), NUM_JOINTS))
    for i in range(len(raw)):
        if i == gap:
            continue
        for n in names:
            j = JOINT_INDEX[n]
            uv[i, j] = ((raw[i][n][0] - K["cx"]) / K["fx"], (raw[i][n][1] - K["cy"]) / K["fy"])
            w[i, j] = 1.0
    ref = filter_keypoints(uv, w, 5, 1)
    kept = [i for i in range(len(raw)) if i != gap]
    assert len(seen_anchors) == len(kept)
    for i, a in zip(kept, seen_anchors):
        np.testing.assert_allclose(a[w[i] > 0], ref[i][w[i] > 0], atol=1e-5)


def test_video_sequence_with_the_filter_on_keeps_its_gap_and_track(monkeypatch, tmp_path):
    """Heatmap evidence (video frames through the detector) filtered over 3 frames: the blank frame
    stays a gap bridged with a warning, every frame has a track."""
    from test_sequence import _write_video

    import backend.sequence as SQ
    from backend.http import schemas
    from backend.service import PoseService
    from backend.vision.video import open_frames

    p = tmp_path / "clip.mp4"
    _write_video(p, 5, 25.0, blank_at=(2,))
    monkeypatch.setattr(SQ, "FILTER_2D_WINDOW", 3)
    req = schemas.EstimateRequest.model_validate({"video": {"path": str(p)}, "num_hypotheses": 3, "steps": 6})
    res = SQ.estimate_sequence(PoseService(), req, frame_source=open_frames(str(p)))
    assert res.sequence.gaps == [2] and any("no person" in w for w in res.frames[2].warnings)
    assert all(f.track is not None and np.isfinite(f.track.joints).all() for f in res.frames)
    assert all(len(f.hypotheses) == 3 for i, f in enumerate(res.frames) if i != 2)
