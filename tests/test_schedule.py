"""backend.prior.schedule: the cosine noise schedule, forward diffusion and the DDIM update."""

from __future__ import annotations

import math

import pytest
import torch

from backend.prior.schedule import NoiseSchedule


@pytest.fixture(scope="module")
def sched() -> NoiseSchedule:
    return NoiseSchedule(1000)


def test_abar_decreases_within_unit_interval(sched):
    a = sched.alphas_cumprod
    assert a.shape == (1000,)
    assert (a > 0).all() and (a <= 1).all()
    assert (a[1:] < a[:-1]).all()
    assert a[0] > 0.999 and a[-1] < 1e-3
    assert ((sched.betas > 0) & (sched.betas <= 0.999)).all()
    # cosine schedule (Nichol & Dhariwal eq. 17): abar at T/2 is about cos^2(pi/4) = 0.5
    assert float(a[499]) == pytest.approx(0.5, abs=0.02)
    t = torch.tensor([0, 10, 999])
    assert sched.abar(t).dtype == torch.float32
    torch.testing.assert_close(sched.abar(t), a[t].float())
    snr = sched.snr(t)
    assert (snr[1:] < snr[:-1]).all()


@pytest.mark.parametrize("t", [50, 400, 900])
def test_q_sample_statistics(sched, t):
    g = torch.Generator().manual_seed(0)
    n = 200_000
    x0 = torch.full((n, 1), 2.0)
    noise = torch.randn(n, 1, generator=g)
    xt = sched.q_sample(x0, torch.full((n,), t), noise)
    a = float(sched.alphas_cumprod[t])
    assert float(xt.mean()) == pytest.approx(math.sqrt(a) * 2.0, abs=5 / math.sqrt(n))
    assert float(xt.std()) == pytest.approx(math.sqrt(1 - a), rel=0.01)


def test_eps_from_x0_inverts_q_sample(sched):
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(6, 21, 3, generator=g)
    noise = torch.randn(6, 21, 3, generator=g)
    t = torch.tensor([1, 10, 100, 500, 900, 990])
    xt = sched.q_sample(x0, t, noise)
    torch.testing.assert_close(sched.eps_from_x0(xt, x0, t), noise, atol=2e-3, rtol=1e-3)


@pytest.mark.parametrize("t,t_prev", [(999, 950), (600, 400), (100, 0)])
def test_ddim_step_deterministic_with_true_x0(sched, t, t_prev):
    g = torch.Generator().manual_seed(2)
    x0 = torch.randn(4, 21, 3, generator=g, dtype=torch.float64)
    noise = torch.randn(4, 21, 3, generator=g, dtype=torch.float64)
    a = sched.alphas_cumprod
    xt = math.sqrt(a[t]) * x0 + math.sqrt(1 - a[t]) * noise
    expected = math.sqrt(a[t_prev]) * x0 + math.sqrt(1 - a[t_prev]) * noise
    torch.testing.assert_close(sched.ddim_step(xt, x0, t, t_prev, eta=0.0), expected, atol=1e-6, rtol=1e-6)
    # past the last step the update returns the x0 estimate itself
    assert sched.ddim_step(xt, x0, t, -1) is x0


def test_ddim_step_with_eta_adds_seeded_noise(sched):
    x0 = torch.zeros(2000, 3)
    xt = torch.zeros(2000, 3)
    det = sched.ddim_step(xt, x0, 500, 400, eta=0.0)
    s1 = sched.ddim_step(xt, x0, 500, 400, eta=1.0, generator=torch.Generator().manual_seed(5))
    s2 = sched.ddim_step(xt, x0, 500, 400, eta=1.0, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(s1, s2)
    assert float(det.abs().max()) == 0.0
    a_t, a_p = float(sched.alphas_cumprod[500]), float(sched.alphas_cumprod[400])
    sigma = math.sqrt((1 - a_p) / (1 - a_t) * (1 - a_t / a_p))
    assert float(s1.std()) == pytest.approx(sigma, rel=0.05)


@pytest.mark.parametrize("n,start", [(10, None), (40, None), (7, 300), (2000, 20), (1, None)])
def test_timesteps_decreasing_unique_start_end(sched, n, start):
    ts = sched.timesteps(n, start=start)
    first = 999 if start is None else start
    assert ts[0] == first
    assert all(isinstance(t, int) for t in ts)
    assert len(ts) == len(set(ts)) and all(a > b for a, b in zip(ts, ts[1:]))
    assert len(ts) <= min(n, first + 1)
    if n > 1:
        assert ts[-1] == 0 and len(ts) == min(n, first + 1)
