"""Several frames' hypotheses in one batch through the denoiser (sequences).

The sampler draws a batch of hypotheses for one frame's evidence; most of the cost of a small
batch is per-step overhead, not arithmetic. For a clip, the frames' evidences are stacked along
the batch (:class:`StackedEvidence`: frame f owns rows ``[o_f, o_f + n_f)``) so that one sampling
run serves ``frames x hypotheses`` rows, and the result is split back per frame
(:func:`split_result`). Every per-row quantity of a 2D evidence (anchors ``[B, J, 2]``, weights
and sigmas ``[B, J]``) broadcasts where a single frame's ``[J, ...]`` did.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from backend.prior.evidence import Evidence2D, KeypointEvidence


class StackedEvidence(Evidence2D):
    """The 2D evidence of several frames, one block of batch rows per frame.

    Args:
        evidences: one :class:`Evidence2D` per frame (keypoints or heatmaps).
        counts: rows (hypotheses) of each frame, in order.
    """

    def __init__(self, evidences: list[Evidence2D], counts: list[int]):
        self.parts = list(evidences)
        self.counts = [int(c) for c in counts]
        rep = lambda name: torch.cat([getattr(e, name)[None].expand(c, *getattr(e, name).shape)  # noqa: E731
                                      for e, c in zip(self.parts, self.counts)])
        self.anchor_uv = rep("anchor_uv")  # [B, J, 2]
        self.weight = rep("weight")  # [B, J]
        self.sigma = rep("sigma")  # [B, J]
        if any(e.out_lo is not None for e in self.parts):  # joints outside the photo, per row
            none = torch.full_like(self.parts[0].anchor_uv, math.inf)  # [J, 2]: no bound
            self.out_lo = torch.cat([(-none if e.out_lo is None else e.out_lo).expand(c, -1, -1)
                                     for e, c in zip(self.parts, self.counts)])  # [B, J, 2]
            self.out_hi = torch.cat([(none if e.out_hi is None else e.out_hi).expand(c, -1, -1)
                                     for e, c in zip(self.parts, self.counts)])
        dev = self.anchor_uv.device
        self.focal_px = torch.cat([torch.full((c,), float(e.focal_px), device=dev) for e, c in zip(self.parts, self.counts)])
        self._keypoints_only = all(type(e) is KeypointEvidence for e in self.parts)

    @property
    def num_visible(self) -> int:
        return max(e.num_visible for e in self.parts)

    def _split(self, uv: torch.Tensor) -> list[torch.Tensor]:
        return list(torch.split(uv, self.counts, 0))

    def _gauss(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-row constants of the keypoint Gaussians (computed once; the attributes are fixed
        after construction): ``w / sigma^2`` ``[B, J]`` and ``[B, J, 1]``, ``sigma^2 / w`` ``[B, J, 1]``."""
        if getattr(self, "_gauss_cache", None) is None:
            inv = self.weight / self.sigma**2
            self._gauss_cache = (inv, inv[..., None], (self.sigma**2 / self.weight.clamp(min=1e-6))[..., None])
        return self._gauss_cache

    def value_and_grad(self, uv):
        if self._keypoints_only:  # vectorised: KeypointEvidence's Gaussian with per-row anchors
            d = uv - self.anchor_uv
            inv, inv_col, _ = self._gauss()
            return -0.5 * (d**2).sum(-1) * inv, -d * inv_col
        out = [e.value_and_grad(u) for e, u in zip(self.parts, self._split(uv))]
        return torch.cat([o[0] for o in out]), torch.cat([o[1] for o in out])

    def target(self, uv):
        if self._keypoints_only:  # uv + g sigma^2 / w with g = -(uv - anchor) w / sigma^2
            _, inv_col, step = self._gauss()
            return uv + (-(uv - self.anchor_uv) * inv_col) * step
        return torch.cat([e.target(u) for e, u in zip(self.parts, self._split(uv))])


def stackable(conds: list) -> bool:
    """Frames whose conditions are 2D evidence only (no known joints/directions), one shared rotation."""
    if len(conds) < 2:
        return False
    rot0 = conds[0].rotation
    for c in conds:
        if not c.has_2d or c.has_known or c.has_directions or c.fix_yaw:
            return False
        if (c.rotation is None) != (rot0 is None) or (rot0 is not None and not np.allclose(c.rotation, rot0)):
            return False
    return True


def _stacked_conditions(conds: list, counts: list[int], terms: list | None = None):
    """One :class:`~backend.prior.guidance.Conditions` for the frames' rows (``counts`` each): the
    first frame's, with the frames' evidence stacked (and ``terms`` in place of its terms when given).

    Raises:
        ValueError: if the conditions cannot share a batch (see :func:`stackable`).
    """
    if not stackable(conds):
        raise ValueError("these frames cannot share a batch (known joints, or different camera rotations)")
    extra = {} if terms is None else {"terms": terms}
    return dataclasses.replace(conds[0], evidence=StackedEvidence([c.evidence for c in conds], counts), **extra)


def split_result(res, counts: list[int]) -> list:
    """Split a batched result dataclass into one per frame: every array field with a leading
    dimension of the batch size is sliced; everything else (timings) is shared."""
    B = sum(counts)
    out, o = [], 0
    for c in counts:
        kw = {}
        for f in dataclasses.fields(res):
            v = getattr(res, f.name)
            kw[f.name] = v[o : o + c] if isinstance(v, np.ndarray) and v.ndim >= 1 and v.shape[0] == B else v
        out.append(dataclasses.replace(res, **kw))
        o += c
    return out


def sample_stacked(sampler, conds: list, nums: list[int], seed=0, progress=None, cancel=None,
                   temporal_sigma: float | None = None, tilt: tuple[float, float] | None = None) -> list:
    """One sampling run for several frames (``conds``, ``nums`` hypotheses each); per-frame results.

    ``temporal_sigma`` (metres, None = off): couple hypothesis ``k`` of consecutive frames with
    :class:`backend.prior.temporal.TemporalSmoothnessTerm` (needs the same count for every frame).
    ``tilt``: one camera (pitch, roll) in radians held fixed for every hypothesis (a clip's,
    :mod:`backend.prior.clip_tilt`) instead of searched per hypothesis.

    Raises:
        ValueError: if the conditions cannot share a batch (see :func:`stackable`).
    """
    terms = list(conds[0].terms)
    if temporal_sigma and len(set(nums)) == 1:
        from backend.prior.temporal import TemporalSmoothnessTerm

        terms.append(TemporalSmoothnessTerm(len(nums), nums[0], temporal_sigma))
    cond = _stacked_conditions(conds, nums, terms)
    B = sum(nums)
    fixed = None if tilt is None else (np.full(B, tilt[0]), np.full(B, tilt[1]))
    res = sampler.sample(B, cond, seed=seed, progress=progress, cancel=cancel, tilt=fixed)
    return split_result(res, nums)


def resample_stacked(sampler, conds: list, worlds: list[np.ndarray], pitches: list[np.ndarray], rolls: list[np.ndarray],
                     strength: float, seed=0, steps: int | None = None) -> list:
    """:meth:`GuidedSampler.resample` of several frames' poses in one batch: frame ``f``'s
    ``worlds[f]`` (``[N_f, J, 3]`` upright frame, metres) under its own 2D evidence, each with its
    tilt (``pitches[f]``, ``rolls[f]``: ``[N_f]`` radians); one result per frame, in order.

    Raises:
        ValueError: if the conditions cannot share a batch (see :func:`stackable`).
    """
    counts = [len(w) for w in worlds]
    cond = _stacked_conditions(conds, counts)
    res = sampler.resample(np.concatenate(worlds), np.concatenate(pitches), np.concatenate(rolls), cond, strength,
                           seed=seed, steps=steps)
    return split_result(res, counts)
