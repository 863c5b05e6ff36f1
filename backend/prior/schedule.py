"""Noise schedule and DDPM/DDIM update rules (kept apart from the model, as in ``diffusers``).

Discrete-time variance-preserving diffusion (Ho et al. 2020, "DDPM"):
``x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps`` with the cosine schedule of Nichol & Dhariwal
2021 (eq. 17): ``abar_t = f(t)/f(0)``, ``f(t) = cos^2(((t/T + s)/(1 + s)) pi/2)``, ``s = 0.008``,
betas clipped at 0.999. The denoiser predicts x0 ("x0-prediction"); the sampler turns that
into eps where needed (:meth:`NoiseSchedule.eps_from_x0`).
"""

from __future__ import annotations

import math

import torch


class NoiseSchedule:
    """Cosine schedule with ``num_steps`` (T) discrete steps; timesteps are ``0..T-1``.

    Attributes:
        alphas_cumprod: ``[T]`` float64 tensor, abar_t (decreasing from ~1 to ~0).
    """

    def __init__(self, num_steps: int = 1000, s: float = 0.008):
        self.num_steps = int(num_steps)
        t = torch.arange(num_steps + 1, dtype=torch.float64) / num_steps
        f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
        abar = f / f[0]
        betas = (1 - abar[1:] / abar[:-1]).clamp(max=0.999)
        self.betas = betas
        self.alphas_cumprod = torch.cumprod(1 - betas, 0)

    def abar(self, t: torch.Tensor) -> torch.Tensor:
        """abar_t for integer timesteps ``t`` (any shape), float32 on ``t``'s device."""
        return self.alphas_cumprod.to(t.device)[t.long()].float()

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Forward diffusion ``x_t = sqrt(abar) x0 + sqrt(1-abar) eps``; ``t`` is ``[B]``, x0 ``[B, ...]``."""
        a = self.abar(t).view(-1, *([1] * (x0.dim() - 1)))
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    def eps_from_x0(self, x_t: torch.Tensor, x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The noise implied by an x0 estimate: ``(x_t - sqrt(abar) x0) / sqrt(1 - abar)``."""
        a = self.abar(t).view(-1, *([1] * (x0.dim() - 1)))
        return (x_t - a.sqrt() * x0) / (1 - a).clamp(min=1e-8).sqrt()

    def snr(self, t: torch.Tensor) -> torch.Tensor:
        """Signal-to-noise ratio abar / (1 - abar)."""
        a = self.abar(t)
        return a / (1 - a).clamp(min=1e-8)

    def timesteps(self, num_inference_steps: int, start: int | None = None) -> list[int]:
        """Evenly spaced decreasing timesteps for DDIM, from ``start`` (default T-1) to 0."""
        start = self.num_steps - 1 if start is None else int(start)
        n = max(1, min(int(num_inference_steps), start + 1))
        ts = torch.linspace(start, 0, n).round().long().tolist()
        return list(dict.fromkeys(ts))

    def ddim_step(self, x_t: torch.Tensor, x0: torch.Tensor, t: int, t_prev: int, eta: float = 0.0,
                  generator: torch.Generator | None = None) -> torch.Tensor:
        """One DDIM update (Song et al. 2021, eq. 12) from ``t`` to ``t_prev`` given an x0 estimate.

        ``x_{t'} = sqrt(abar_{t'}) x0 + sqrt(1 - abar_{t'} - sigma^2) eps_hat + sigma z``, with
        ``sigma = eta sqrt((1-abar_{t'})/(1-abar_t)) sqrt(1 - abar_t/abar_{t'})``. ``eta = 1`` is
        DDPM-like ancestral sampling, ``eta = 0`` deterministic DDIM. ``t_prev < 0`` returns x0.
        """
        if t_prev < 0:
            return x0
        ac = self.alphas_cumprod
        a_t, a_p = float(ac[t]), float(ac[t_prev])
        eps = (x_t - math.sqrt(a_t) * x0) / math.sqrt(max(1 - a_t, 1e-12))
        sigma = eta * math.sqrt(max((1 - a_p) / max(1 - a_t, 1e-12) * (1 - a_t / a_p), 0.0))
        out = math.sqrt(a_p) * x0 + math.sqrt(max(1 - a_p - sigma**2, 0.0)) * eps
        if sigma > 0:
            z = torch.randn(x_t.shape, generator=generator, device="cpu").to(x_t.device, x_t.dtype)
            out = out + sigma * z
        return out
