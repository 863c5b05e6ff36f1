"""A camera that travels with the person (a tracking shot): its path from the person's feet.

Real CMU walks with their captured trajectory (shared/data), the real prior and service.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from backend.mocap.datasets import SHARED_DATA
from backend.prior.camera_path import camera_path_from_feet, local_floor
from backend.prior.track import whittaker_smooth


@pytest.fixture(scope="module")
def walks():
    from backend.eval_tracking import load_walks

    return load_walks(str(SHARED_DATA))


def _follow(X: np.ndarray) -> np.ndarray:
    """A tracking camera's travel ``[F, 3]`` (world): the walker's smoothed path from its start."""
    path = whittaker_smooth(X[:, 0, :2], 2000.0)
    C = np.zeros((len(X), 3))
    C[:, :2] = path - path[0]
    return C


def test_the_travel_of_a_camera_that_follows_a_walk_is_recovered_from_the_captured_feet(walks):
    """The captured walk as a travelling camera sees it (walking on the spot): the camera's travel is
    the walk's, within 15 % of its length at every frame; the same walk from a camera in one place
    gives a travel under 15 % of the walk (the capture's own feet slide: ~18 cm/s over contacts)."""
    for clip in walks[:4]:
        X, fps = clip.joints, clip.fps
        C_true = _follow(X)
        walked = float(np.linalg.norm(C_true[-1]))
        assert walked > 2.0
        C, supported = camera_path_from_feet(X - C_true[:, None], fps)
        assert supported.mean() > 0.8
        assert np.allclose(C[:, 2], 0.0) and np.allclose(C[0], 0.0)
        err = np.linalg.norm(C - C_true, axis=-1)
        assert err.max() < 0.15 * walked, (clip.name, err.max(), walked)
        still, _ = camera_path_from_feet(X, fps)
        assert np.linalg.norm(still, axis=-1).max() < 0.15 * walked, clip.name


def test_local_floor_follows_a_sloped_floor_without_lag():
    """A walk's lowest foot point (one foot always down; 3 cm bumps at each step, 2 a second) over a
    floor rising 0.2 m/s (a tilt error of the estimated camera): the floor is found within 1.5 cm at
    every frame, where a running minimum over the same window lags 15 cm behind."""
    fps = 25.0
    t = np.arange(75) / fps
    floor = 0.2 * t
    lowest = floor + 0.03 * np.sin(2 * math.pi * 1.0 * t) ** 2
    est = local_floor(lowest, fps)
    assert np.abs(est - floor).max() < 0.015
    half = 19
    running_min = np.array([lowest[max(0, i - half) : i + half + 1].min() for i in range(len(t))])
    assert np.abs(running_min - floor)[half:-half].max() > 0.1


def test_camera_path_rejects_bad_input():
    with pytest.raises(ValueError, match="finite"):
        camera_path_from_feet(np.full((5, 21, 3), np.nan), 25.0)
    with pytest.raises(ValueError, match="fps"):
        camera_path_from_feet(np.zeros((5, 21, 3)), 0.0)
    C, supported = camera_path_from_feet(np.zeros((2, 21, 3)), 25.0)
    assert C.shape == (2, 3) and not C.any() and not supported.any()


def test_a_tracking_shot_estimated_with_moving_camera_walks_through_the_scene(walks):
    """Through the service (real prior): a walk filmed by a camera travelling with it, 2D from the
    capture with 2 px noise. Taken as fixed, the track walks on the spot; with ``moving_camera`` its
    world root travels as the walker did (the camera's travel reported, in the first frame's camera
    frame), and its planted feet stay still. Measured on this clip: travel ~0.8x the true one. Taken as
    fixed, the response says the feet slide as a travelling camera's would (a hint to use the option);
    from a camera staying in place it does not."""
    from backend.eval_tracking import tracking_request, walk_camera
    from backend.http import schemas
    from backend.service import PoseService

    service = PoseService()
    clip = walks[0]
    X, fps = clip.joints[:40], clip.fps
    rng = np.random.default_rng(5)
    R, C0 = walk_camera(X, rng)
    C_true = _follow(X)
    req, _ = tracking_request(X, fps, R, C0 + C_true, rng, noise_px=2.0, num=8, seed=0)
    req["steps"] = 20
    walked = float(np.linalg.norm(X[-1, 0, :2] - X[0, 0, :2]))
    travels = {}
    for moving in (False, True):
        req["sequence"]["moving_camera"] = moving
        res = service.estimate(schemas.EstimateRequest.model_validate(req))
        wr = np.array([fr.track.world_root for fr in res.frames])
        travels[moving] = float(np.linalg.norm(wr[-1, :2] - wr[0, :2]))
        assert res.sequence.moving_camera is moving
        if moving:
            ct = np.array(res.sequence.camera_translation)
            assert ct.shape == (40, 3) and np.allclose(ct[0], 0.0)
            true_ct = (C_true - C_true[0]) @ R.T  # the first frame's camera frame
            assert np.linalg.norm(ct[-1] - true_ct[-1]) < 0.5 * np.linalg.norm(true_ct[-1])
            # a per-frame override (what the add-on's Use in track sends back) keeps the camera's travel
            tr = service.track(schemas.TrackRequest(frames=res.frames, sequence=schemas.SequenceOptions(
                fps=fps, fixed={5: 1}, moving_camera=True)))
            assert tr.frames[5].track.hypothesis == 1 and tr.sequence.moving_camera
            assert np.linalg.norm(np.array(tr.sequence.camera_translation)[-1]) > 0.5 * np.linalg.norm(true_ct[-1])
            assert not res.sequence.warnings
        else:
            assert res.sequence.camera_translation is None
            # taken as fixed, the clip says that its feet slide as a travelling camera's would
            assert any("moving_camera" in w for w in res.sequence.warnings), res.sequence.warnings
    assert travels[False] < 0.3 * walked, travels
    # the same walk from a camera that stays in place: no such hint
    req, _ = tracking_request(X, fps, R, np.tile(C0, (len(X), 1)), rng, noise_px=2.0, num=8, seed=0)
    req["steps"] = 20
    res = service.estimate(schemas.EstimateRequest.model_validate(req))
    assert not any("moving_camera" in w for w in res.sequence.warnings), res.sequence.warnings
    assert 0.5 * walked < travels[True] < 1.5 * walked, (travels, walked)
