"""The prior over how photos are taken (backend/prior/camera_prior.py): no model needed."""

import math

import numpy as np
import pytest
import torch

from backend.prior.camera_prior import CameraPrior


def _cost_deg(cp, pitch=0.0, roll=0.0):
    """Nats a tilt costs against level (pitch, roll in degrees)."""
    t = lambda d: torch.tensor([math.radians(d)])  # noqa: E731
    return float(cp.log_tilt(t(4.0), t(0.0)) - cp.log_tilt(t(pitch), t(roll)))


def test_costs_of_steep_and_rolled_cameras_are_as_documented():
    cp = CameraPrior()
    assert _cost_deg(cp, pitch=45) == pytest.approx(3.2, abs=0.15)
    assert _cost_deg(cp, pitch=70) == pytest.approx(4.6, abs=0.15)
    assert _cost_deg(cp, roll=10) == pytest.approx(2.7, abs=0.15)
    # a near level camera is cheap; the distance prior peaks at its median
    assert _cost_deg(cp, pitch=10) < 0.5
    d = cp.log_distance(np.array([2.0, 4.0, 8.0]))
    assert d[1] == pytest.approx(0.0) and d[0] < 0 and d[2] < 0


def test_draw_takes_the_argmax_or_a_sample_from_the_posterior():
    lp = torch.tensor([[0.0, 5.0, 0.0], [9.0, 0.0, 0.0]])
    assert CameraPrior.draw(lp, None, sample=False).tolist() == [1, 0]
    g = torch.Generator().manual_seed(0)
    assert CameraPrior.draw(lp * 10, g, sample=True).tolist() == [1, 0]


def test_view_pitch_is_the_angle_of_the_subject_ray_below_the_horizon():
    from backend.prior.camera_prior import pitch_for_view, view_pitch
    from backend.prior.geometry import tilt_batch

    pitch = torch.tensor([0.3, -0.2, 0.1, 0.0])
    roll = torch.tensor([0.05, -0.1, 0.2, 0.0])
    ray = torch.tensor([[0.3, -0.4, 1.0], [0.1, 0.5, 1.0], [-0.6, 0.1, 1.0], [0.0, 0.0, 2.0]])
    up = tilt_batch(pitch, roll) @ torch.tensor([0.0, 0.0, 1.0])  # world up in the camera frame
    d = ray / ray.norm(dim=-1, keepdim=True)
    v = view_pitch(pitch, roll, ray)
    assert torch.allclose(v, -torch.asin((up * d).sum(-1)), atol=1e-6)
    assert torch.allclose(pitch_for_view(v, roll, ray), pitch, atol=1e-5)
    assert float(v[3]) == pytest.approx(0.0)  # the optical axis: view pitch = camera pitch
    # a subject at the top of a level camera's image is seen from below (negative view pitch),
    # and the prior weighs that angle, not the camera's
    top = torch.tensor([0.0, -0.5, 1.0])
    assert float(view_pitch(torch.tensor(0.0), torch.tensor(0.0), top)) == pytest.approx(-math.atan(0.5), abs=1e-6)
    cp = CameraPrior()
    p = pitch_for_view(torch.tensor(math.radians(4.0)), torch.tensor(0.0), top)
    assert float(cp.log_tilt(p, torch.tensor(0.0), top)) == pytest.approx(float(cp.log_tilt(torch.tensor(math.radians(4.0)), torch.tensor(0.0))), abs=1e-5)


def test_best_tilt_is_the_whole_grids_argmax_with_fewer_evaluations():
    # a plausibility (<= 0 metres) per hypothesis and tilt; the bound may skip, never change the argmax
    cp = CameraPrior()
    g = torch.Generator().manual_seed(0)
    B = 200
    pv = cp.pitch_grid()
    pitch = pv[None].expand(B, -1) + 0.05 * torch.randn(B, 1, generator=g)
    roll = 0.1 * torch.randn(B, 1, generator=g).expand(B, pv.numel())
    ray = torch.cat([0.3 * torch.randn(B, 1, 2, generator=g), torch.ones(B, 1, 1)], -1)
    plaus = -(0.01 + 0.1 * torch.rand(B, pv.numel(), generator=g))
    full = cp.tilt_posterior(plaus, pitch, roll, ray).argmax(1)
    asked = []

    def plausibility_of(r, c):
        asked.append(len(r))
        return plaus[r, c]

    k, got = cp.best_tilt(plausibility_of, pitch, roll, ray)
    assert torch.equal(k, full)
    assert 0 < sum(asked) < B * pv.numel()  # some skipped
    seen = ~torch.isnan(got)
    assert torch.equal(got[seen], plaus[seen]) and bool(seen[torch.arange(B), k].all())
    # known values are reused, not asked for again
    asked.clear()
    k2, _ = cp.best_tilt(plausibility_of, pitch, roll, ray, known=got)
    assert torch.equal(k2, full) and sum(asked) == 0
    # a restricted search (the sampler's local retilt) takes the best allowed tilt
    allowed = torch.zeros_like(got, dtype=torch.bool)
    allowed[:, 2:5] = True
    k3, got3 = cp.best_tilt(plausibility_of, pitch, roll, ray, allowed=allowed)
    post = cp.tilt_posterior(plaus, pitch, roll, ray)
    assert torch.equal(k3, 2 + post[:, 2:5].argmax(1)) and bool(torch.isnan(got3[~allowed]).all())
    # a small batch: the whole grid in one call, the same argmax
    asked.clear()
    k4, got4 = cp.best_tilt(plausibility_of, pitch, roll, ray, whole_below=B * pv.numel())
    assert torch.equal(k4, full) and asked == [B * pv.numel()] and not bool(torch.isnan(got4).any())
