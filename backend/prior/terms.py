"""The built-in guidance terms (see :mod:`backend.prior.guidance` for the interface).

* :class:`Evidence2DTerm`: 2D keypoints or heatmaps through the perspective camera
  (Snelgar et al. 2026), with the closed-form root translation of ZeDO.
* :class:`KnownJointsTerm`: known 3D joints (completion, combined evidence).
* :class:`KnownDirectionsTerm`: known bone directions.

:func:`build_terms` picks them from a :class:`~backend.prior.guidance.Conditions`; register a new
built-in term there (and a field of ``Conditions`` carrying its evidence), or pass a term object
in ``Conditions.terms``.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from backend.prior.evidence import Evidence2D
from backend.prior.geometry import pitch_roll_of, solve_root_translation, unit
from backend.prior.guidance import Conditions, GuidanceTerm
from backend.skeleton import PARENTS


class Evidence2DTerm(GuidanceTerm):
    """2D keypoint / heatmap likelihood through the perspective camera (Snelgar et al. 2026).

    Per inner step the root translation is solved in closed form from the camera rays
    (:func:`solve_root_translation`, ZeDO) and each projected joint gets a 2D target: one
    Gauss-Newton (mean-shift for heatmaps) step on its log-likelihood, ``uv + sigma^2 grad log
    p(uv)`` (:meth:`Evidence2D.target`). A bone's wanted direction points at the point of the
    target's camera ray nearest the denoiser's child (depth from the prior: front/back flips are
    left to the prior, which keeps hypotheses diverse where the photo is ambiguous), with
    precision ``scale * c_j / (sigma_j^2 z_j^2)`` (1/m^2 at the joint's depth ``z_j``).

    Args:
        evidence: the 2D likelihood; rotation: ``[3, 3]`` world->camera when the camera
            orientation is known (its pitch and roll are then fixed, else estimated).
    """

    def __init__(self, evidence: Evidence2D, rotation: np.ndarray | None = None):
        self.ev = evidence
        self.rotation = rotation

    def prepare(self, state):
        self.state = state
        B, dev = state.batch, state.device
        if self.rotation is not None:
            p, r = pitch_roll_of(self.rotation)
            state.pitch, state.roll = torch.full((B,), p, device=dev), torch.full((B,), r, device=dev)
            state.fixed_tilt = True
        else:
            state.pitch, state.roll = torch.full((B,), math.radians(8.0), device=dev), torch.zeros(B, device=dev)
            state.fixed_tilt = False

    def update(self, X, step):
        ev = self.ev
        t0 = time.perf_counter()
        self.T = solve_root_translation(X, ev.anchor_uv, ev.weight)
        self.state.timings["root_solve"] += time.perf_counter() - t0
        P = X + self.T[:, None]
        z = P[..., 2].clamp(min=0.1)
        uv = P[..., :2] / z[..., None]
        self.uv_t = ev.target(uv)
        self.a2d = self.state.weights.scale * ev.weight / (ev.sigma**2 * z**2)  # [B, J] 1/m^2

    def bone_targets(self, level, parent, d_prior, step):
        js, L = level.joints, level.lengths
        r = torch.cat([self.uv_t[:, js], torch.ones_like(self.uv_t[:, js, :1])], -1)  # ray, camera frame
        pa = parent + self.T[:, None]
        c_prior = pa + L * d_prior
        q = (r * c_prior).sum(-1, keepdim=True) / (r * r).sum(-1, keepdim=True) * r
        return unit(q - pa), self.a2d[:, js, None]

    def finish(self, final, result):
        ev = self.ev
        R = self.state.camera_rotation()
        Xc = final.model @ R.transpose(1, 2)
        T = solve_root_translation(Xc, ev.anchor_uv, ev.weight)
        P = Xc + T[:, None]
        uv = P[..., :2] / P[..., 2:3].clamp(min=0.1)
        l2d, _ = ev.value_and_grad(uv)
        Kf = getattr(ev, "focal_px", None)
        if Kf is not None:
            err = ((uv - ev.anchor_uv) ** 2).sum(-1).sqrt()
            wv = (ev.weight > 0).float()
            result.reproj_px = ((err * wv).sum(-1) / wv.sum(-1).clamp(min=1) * Kf).cpu().numpy()
        result.camera_rel = Xc.cpu().numpy()
        result.camera_root = T.cpu().numpy()
        result.rotation = R.cpu().numpy()
        result.pitch = self.state.pitch.cpu().numpy()
        result.roll = self.state.roll.cpu().numpy()
        return l2d.sum(-1), ev.num_visible


class KnownJointsTerm(GuidanceTerm):
    """Known 3D joints (world frame, metres): each bone points from its refined parent at the
    known child, precision ``scale / known_sigma^2``; the final pose reproduces every known joint
    exactly, unknown joints moving with their nearest known ancestor (no stretched bones).

    Args:
        known: ``[J, 3]`` world positions (rows of unknown joints ignored); weights: ``[J]`` 0/1.
    """

    def __init__(self, known: np.ndarray, weights: np.ndarray):
        self.dps_joints = weights
        self.known_np, self.w_np = known, weights

    def prepare(self, state):
        self.known = torch.tensor(np.nan_to_num(self.known_np), dtype=torch.float32, device=state.device)
        self.w = torch.tensor(self.w_np, dtype=torch.float32, device=state.device)
        self.sigma = state.weights.known_sigma
        self.a = state.weights.scale / self.sigma**2
        state.world_points = (self.known, self.w)

    def update(self, X, step):
        self.tgt = step.world_to_working(self.known)

    def bone_targets(self, level, parent, d_prior, step):
        js = level.joints
        return unit(self.tgt[:, js] - parent), self.a * self.w[js][None, :, None]

    def finish(self, final, result):
        Xw, kw = final.world, self.w
        d2 = ((Xw - self.known[None]) ** 2).sum(-1)
        ll = -0.5 * (d2 * kw).sum(-1) / (self.sigma**2)
        rows = []
        for j, p in enumerate(PARENTS):
            if kw[j] > 0:
                rows.append(self.known[j].expand_as(Xw[:, j]))
            elif p < 0:
                rows.append(Xw[:, j])
            else:
                rows.append(rows[p] + Xw[:, j] - Xw[:, p])
        final.world = torch.stack(rows, 1)
        return ll, int(kw.sum().item())


class KnownDirectionsTerm(GuidanceTerm):
    """Known bone directions parent->joint (world frame, unit vectors), precision
    ``scale / direction_sigma^2``; they fix the body's yaw but not its placement.

    Args:
        directions: ``[J, 3]`` world directions (normalised here); weights: ``[J]`` 0/1.
    """

    def __init__(self, directions: np.ndarray, weights: np.ndarray):
        self.dps_joints = weights
        d = np.nan_to_num(np.asarray(directions, np.float64))
        self.d_np = d / np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-9)
        self.w_np = weights

    def prepare(self, state):
        self.dirs = torch.tensor(self.d_np, dtype=torch.float32, device=state.device)
        self.w = torch.tensor(self.w_np, dtype=torch.float32, device=state.device)
        self.a = state.weights.scale / state.weights.direction_sigma**2
        state.world_vectors = (self.dirs, self.w)

    def update(self, X, step):
        self.work = step.world_to_working(self.dirs, translate=False)

    def bone_targets(self, level, parent, d_prior, step):
        js = level.joints
        return self.work[:, js], self.a * self.w[js][None, :, None]


def build_terms(cond: Conditions) -> list[GuidanceTerm]:
    """The terms for ``cond``: 2D evidence, known joints, known directions, then ``cond.terms``."""
    terms: list[GuidanceTerm] = []
    if cond.has_2d:
        terms.append(Evidence2DTerm(cond.evidence, cond.rotation))
    if cond.has_known:
        terms.append(KnownJointsTerm(cond.known, cond.known_w))
    if cond.has_directions:
        terms.append(KnownDirectionsTerm(cond.directions, cond.directions_w))
    return terms + list(cond.terms)
