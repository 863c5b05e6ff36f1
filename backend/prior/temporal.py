"""Temporal guidance: consecutive frames sampled together, hypothesis chains coupled by smoothness.

When a clip's frames share one batch (:mod:`backend.prior.batch`, frame-major: row ``f * K + k``
is hypothesis ``k`` of frame ``f``), hypothesis ``k`` of every frame forms a chain. This
:class:`~backend.prior.guidance.GuidanceTerm` pulls each bone of row ``(f, k)`` toward the mean
direction of the same bone in rows ``(f - 1, k)`` and ``(f + 1, k)`` (the current inner-step
estimate, camera frame), a first-order smoothness prior between frames applied inside the
x0-refinement MAP step of Snelgar et al. 2026's guidance (``b d_prior + a_2D d_2D + a_t d_t``).
It plays the role of the temporal terms of video pose optimisation (e.g. the smoothness prior of
SMPLify-style video fitting, Arnab et al. 2019 "Exploiting temporal context for 3D human pose
estimation in the wild"), here at sampling time, through the diffusion prior.
"""

from __future__ import annotations

import torch

from backend.prior.geometry import unit
from backend.prior.guidance import GuidanceTerm


class TemporalSmoothnessTerm(GuidanceTerm):
    """Smoothness between consecutive frames' hypothesis ``k`` (see the module docstring).

    Args:
        frames: frames in the batch (``F``); per_frame: hypotheses per frame (``K``), ``B = F K``.
        sigma: tolerated change of a bone direction between frames, at bone length (metres);
            the precision is ``guidance scale / sigma^2``.
    """

    def __init__(self, frames: int, per_frame: int, sigma: float = 0.05):
        self.F, self.K, self.sigma = int(frames), int(per_frame), float(sigma)

    def prepare(self, state):
        if state.batch != self.F * self.K:
            raise ValueError(f"temporal term: batch {state.batch} is not {self.F} frames x {self.K} hypotheses")
        dev = state.device
        f = torch.arange(state.batch, device=dev) // self.K
        rows = torch.arange(state.batch, device=dev)
        self.prev = torch.where(f > 0, rows - self.K, rows)
        self.next = torch.where(f < self.F - 1, rows + self.K, rows)
        self.w_prev = (f > 0).float()[:, None, None]
        self.w_next = (f < self.F - 1).float()[:, None, None]
        self.a = state.weights.scale / self.sigma**2
        self.X = None

    def update(self, X, step):
        self.X = X  # this inner step's estimate (working frame = camera frame: the same for all frames)

    def bone_targets(self, level, parent, d_prior, step):
        if self.X is None or self.F < 2:
            return None
        js, ps = level.joints, level.parents
        d = unit(self.X[:, js] - self.X[:, ps])  # [B, n, 3]
        nb = d[self.prev] * self.w_prev + d[self.next] * self.w_next
        return unit(nb), self.a * ((self.w_prev + self.w_next) > 0).float()
