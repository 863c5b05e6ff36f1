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

from backend.prior.camera_prior import pitch_for_view
from backend.prior.evidence import Evidence2D, KeypointEvidence
from backend.prior.geometry import pitch_roll_of, solve_root_translation, unit
from backend.prior.guidance import Conditions, GuidanceTerm
from backend.skeleton import JOINT_INDEX, PARENTS

#: Limbs whose left/right 2D labels a detector may exchange (BlazePose does on back views):
#: for each, the (left, right) joint pairs below the hip or shoulder.
SWAP_LIMBS = {"legs": (("left_knee", "right_knee"), ("left_ankle", "right_ankle"), ("left_toe", "right_toe")),
              "arms": (("left_elbow", "right_elbow"), ("left_wrist", "right_wrist"), ("left_hand", "right_hand"))}


#: A limb's labels are taken swapped only when that lowers its robust cost ``sum log(1 + r^2 / nu)``
#: by this much (about ``(nu + 2) / 2`` nats per unit).
SWAP_MARGIN = 1.0
#: Hypotheses of two kinds, alternating over the batch: a share ``SWAP_SHARE`` may swap labels from
#: ``SWAP_FROM`` of the DDIM steps on (when the pose has taken shape: the rescue of a detector's
#: swap), the others only from ``SWAP_LATE_FROM`` on (None: never), once the labels as given have
#: shaped the limbs (the clean-2D behaviour); ranking chooses between them.
SWAP_SHARE = 0.5
SWAP_FROM = 0.3
SWAP_LATE_FROM = 0.7
#: Log prior probability of one limb's labels being swapped by the detector (nats), added to a
#: swapped hypothesis' final evidence log-likelihood: at equal fit, ranking prefers the labels as given.
SWAP_LOGPRIOR = -3.0
#: Joints outside the photo (:meth:`Evidence2D.set_outside`): the hinge's standard deviation
#: (pixels) on the distance by which a projection falls inside the photo.
OUTSIDE_SIGMA_PX = 8.0


class Evidence2DTerm(GuidanceTerm):
    """2D keypoint / heatmap likelihood through the perspective camera (Snelgar et al. 2026).

    Per inner step the root translation is solved in closed form from the camera rays
    (:func:`solve_root_translation`, ZeDO) and each projected joint gets a 2D target: one
    Gauss-Newton (mean-shift for heatmaps) step on its log-likelihood, ``uv + sigma^2 grad log
    p(uv)`` (:meth:`Evidence2D.target`). A bone's wanted direction points at the point of the
    target's camera ray nearest the denoiser's child (depth from the prior: front/back flips are
    left to the prior, which keeps hypotheses diverse where the photo is ambiguous), with
    precision ``scale * c_j * w_bj / (sigma_j^2 z_j^2)`` (1/m^2 at the joint's depth ``z_j``).

    Robust evidence (``weights.robust_nu`` > 0): the 2D residuals are Student-t with ``nu``
    degrees of freedom instead of Gaussian. Its iteratively-reweighted least-squares weight
    ``w_bj = 1 / (1 + (r_bj / s_b)^2 / nu)`` (Lange, Little & Taylor 1989) multiplies the joint's
    precision and its weight in the root solve, where ``r_bj`` is the joint's residual in units of
    its ``sigma`` and ``s_b = max(1, 1.5 median_j r_bj)`` the hypothesis' own residual scale, so a
    joint far off the others (a detector outlier) stops dragging the pose while a pose that fits
    nothing yet (early, noisy steps) is pulled as before. The final log-likelihood of keypoints
    is the Student-t one, ``-(nu + 2)/2 log(1 + r^2 / nu)``, so the ranking is not dominated by
    one wrong joint either.

    Left/right swaps (``weights.swap_limbs``): per hypothesis and limb (:data:`SWAP_LIMBS`), the
    2D labels are taken as given or exchanged, whichever the current projection fits better by
    :data:`SWAP_MARGIN` of robust cost (a max over the label assignment, re-decided every inner
    step). Half the hypotheses (:data:`SWAP_SHARE`) may swap from :data:`SWAP_FROM` (0.3) of the
    steps on, the other half only from :data:`SWAP_LATE_FROM` (0.7); a swapped limb costs
    :data:`SWAP_LOGPRIOR` (-3 nats) in the final log-likelihood. Why two kinds: a swap allowed at
    0.3 lets a hypothesis keep the prior's guess of which leg is forward instead of being corrected
    by the 2D (it fits the exchanged labels as well), which cost 2-8 mm on clean 2D when every
    hypothesis could swap early; swaps allowed only from 0.7 or 0.5 on keep clean 2D but lose the
    rescue of swapped labels (they have bent the legs by then).

    Measured on the training subject S8 (best-of-1 / best-of-20 mm; ``eval lift --protocol lab
    --frames 24`` exact | noisy; ``--protocol photo --subsets away --frames 10`` noisy | legs'
    labels swapped and feet cut off):

    ==============================  ===========================  ===========================
    variant                         lab exact | noisy            photo noisy | swap+truncated
    ==============================  ===========================  ===========================
    Gaussian, no swaps              66.2/40.2 | 71.6/48.8        69.4/47.1 | 195.8/140.2
    nu 8, all swap from 0.3         68.0/42.8 | 79.7/50.4        74.2/52.6 | 116.0/84.6
    nu 8, all from 0.7              64.1/41.3 | 73.4/47.2        74.7/50.4 | 129.4/101.6
    nu 8, all from 0.5, prior -3    65.7/42.2 | 74.4/47.3        74.7/52.6 | 123.9/95.0
    nu 8, half 0.3 / half never     65.1/40.9 | 75.4/49.5        74.7/52.1 | 121.0/87.5
    nu 8, half 0.3 / half 0.7, -3   64.4/41.3 | 75.4/49.5        74.7/52.1 | 116.3/84.7
    nu 8, a third 0.3 / 0.7, -3     65.8/41.3 | 72.1/47.2        74.9/50.1 | 125.0/98.8
    nu 16, half 0.3 / half 0.7, -3  66.7/41.5 | 74.7/49.2        70.0/48.9 | 118.9/84.7
    ==============================  ===========================  ===========================

    The last row is the default (``robust_nu = 16``). A swap only for a limb whose fit with the
    labels as given is bad (robust cost per joint > 1) changed nothing; the prior of -3 nats alone
    moved lab noisy best-of-1 79.7 -> 74.8 and nothing else. Earlier (12 S8 frames away from
    standing, older tilt search): one or two outlier joints 164 / 88 with ``nu = 8`` (Gaussian
    217 / 121); ``nu = 2`` and swaps decided from the first step: 85 / 59 without errors.

    Joints outside the photo (:meth:`Evidence2D.set_outside`: reported beyond a border, no 2D
    evidence of their own): a one-sided Gaussian (hinge) of :data:`OUTSIDE_SIGMA_PX` on how far the
    projection falls inside the photo; while it does, the joint's 2D target is the nearest point on
    that border, and the same hinge enters the final log-likelihood (robust like the keypoints).
    Measured on S8 (``--protocol photo --frames 6``, best-of-1 / best-of-20 mm, without -> with):
    knees and ankles cut off, away 130.2/108.1 -> 127.2/106.7, floor 139.3/111.6 -> 134.4/102.1;
    only the feet cut off: unchanged (the prior puts the feet below the crop anyway); on S1 photos
    cut above the knees the worst of 20 hypotheses put a hidden knee or ankle up to 130 px inside
    the photo without the hinge, at most 17 px with it.

    Args:
        evidence: the 2D likelihood; rotation: ``[3, 3]`` world->camera when the camera
            orientation is known (its pitch and roll are then fixed, else estimated: starting
            pitches from ``weights.camera_prior`` when there is one, else 8 degrees; with a
            camera prior the starting pitch is the one that sees the pelvis' 2D anchor (the
            centroid of the 2D evidence where the pelvis is not seen) at that view pitch, and every update sets ``state.subject_ray`` to the solved
            pelvis ray, :func:`backend.prior.camera_prior.view_pitch`).
    """

    def __init__(self, evidence: Evidence2D, rotation: np.ndarray | None = None):
        self.ev = evidence
        self.rotation = rotation

    def prepare(self, state):
        self.state = state
        B, dev, w = state.batch, state.device, state.weights
        if self.rotation is not None:
            p, r = pitch_roll_of(self.rotation)
            state.pitch, state.roll = torch.full((B,), p, device=dev), torch.full((B,), r, device=dev)
            state.fixed_tilt = True
        else:
            if w.camera_prior is not None and w.tilt_spread and state.generator is not None:
                state.pitch = w.camera_prior.initial_pitches(B, state.generator, dev)
            else:
                state.pitch = torch.full((B,), math.radians(8.0), device=dev)
            state.roll = torch.zeros(B, device=dev)
            state.fixed_tilt = False
            if w.camera_prior is not None:
                # the starting pitches are the subject's view pitch: an off-centre subject (a wide
                # lens) starts under the camera pitch that sees it at that angle
                state.subject_ray = self._evidence_ray(B)
                state.pitch = pitch_for_view(state.pitch, state.roll, state.subject_ray)
        # robust weights and label swaps work on one frame's evidence (weights [J]); stacked
        # frames of a sequence (weights [B, J], backend.prior.batch) keep the Gaussian evidence
        single = self.ev.weight.dim() == 1
        self.nu = float(w.robust_nu) if single else 0.0
        seen = (self.ev.weight > 0).cpu().numpy()
        self.limbs = []  # per limb: [n, 2] joint indices of its (left, right) pairs seen on both sides
        if w.swap_limbs and single:
            for pairs in SWAP_LIMBS.values():
                idx = [(JOINT_INDEX[a], JOINT_INDEX[b]) for a, b in pairs if seen[JOINT_INDEX[a]] and seen[JOINT_INDEX[b]]]
                if idx:
                    self.limbs.append(torch.tensor(idx, device=dev))
        self.wt_prev = self.anchors_prev = None
        f = torch.as_tensor(self.ev.focal_px, dtype=torch.float32, device=dev)
        self.outside_sigma = OUTSIDE_SIGMA_PX / (f[:, None] if f.dim() else f)  # normalised, [] or [B, 1]
        self.swap_on = False
        b = torch.arange(B, device=dev, dtype=torch.float32)
        early = torch.floor((b + 1) * SWAP_SHARE) > torch.floor(b * SWAP_SHARE)  # [B], spread over the batch
        late = math.inf if SWAP_LATE_FROM is None else SWAP_LATE_FROM
        self.swap_start = torch.where(early, torch.tensor(SWAP_FROM, device=dev), torch.tensor(late, device=dev))
        self.swap_now = torch.zeros(B, dtype=torch.bool, device=dev)

    def _evidence_ray(self, B: int) -> torch.Tensor:
        """``[B, 3]`` camera-frame ray through the pelvis' 2D anchor (the ray the retilt weighs),
        or through the confidence-weighted centroid of the anchors where the pelvis is not seen."""
        ev = self.ev
        w = ev.weight
        c = (ev.anchor_uv * w[..., None]).sum(-2) / w.sum(-1, keepdim=True).clamp(min=1e-6)
        c = torch.where((w[..., :1] > 0), ev.anchor_uv[..., 0, :], c)
        ray = torch.cat([c, torch.ones_like(c[..., :1])], -1)
        return ray.expand(B, 3) if ray.dim() == 1 else ray

    # ---------------------------------------------------------------- per-hypothesis evidence

    def _residual(self, uv: torch.Tensor, perm: torch.Tensor | None) -> torch.Tensor:
        """``[B, J]`` distance of each projected joint to its (possibly swapped) 2D anchor, in sigmas."""
        ev = self.ev
        a, s = ev.anchor_uv, ev.sigma
        if perm is not None:
            a, s = a[perm], s[perm]
        return ((uv - a) ** 2).sum(-1).sqrt() / s

    def _assign(self, uv: torch.Tensor) -> torch.Tensor | None:
        """``[B, J]`` evidence index per joint: identity, or a limb's left/right pairs exchanged
        for the hypotheses whose projection fits the exchanged labels better (robust cost)."""
        if not self.limbs:
            return None
        B, J = uv.shape[:2]
        perm = torch.arange(J, device=uv.device).expand(B, J).clone()
        ev = self.ev
        nu = self.nu if self.nu > 0 else 4.0
        rho = lambda r: torch.log1p(r**2 / nu)  # noqa: E731 - robust cost of a residual in sigmas
        for idx in self.limbs:
            L, R = idx[:, 0], idx[:, 1]
            keep = rho(((uv[:, L] - ev.anchor_uv[L]) ** 2).sum(-1).sqrt() / ev.sigma[L]) \
                + rho(((uv[:, R] - ev.anchor_uv[R]) ** 2).sum(-1).sqrt() / ev.sigma[R])
            swap = rho(((uv[:, L] - ev.anchor_uv[R]) ** 2).sum(-1).sqrt() / ev.sigma[R]) \
                + rho(((uv[:, R] - ev.anchor_uv[L]) ** 2).sum(-1).sqrt() / ev.sigma[L])
            sw = (swap.sum(-1) < keep.sum(-1) - SWAP_MARGIN) & self.swap_now
            sw = sw[:, None]  # [B, 1]
            perm[:, L] = torch.where(sw, R[None], L[None])
            perm[:, R] = torch.where(sw, L[None], R[None])
        return perm

    def _robust_weight(self, r: torch.Tensor) -> torch.Tensor:
        """``[B, J]`` IRLS weight of residuals ``r`` (sigmas) relative to each hypothesis' scale."""
        if self.nu <= 0:
            return torch.ones_like(r)
        seen = self.ev.weight > 0
        med = r[:, seen].median(-1).values if bool(seen.any()) else r.new_ones(r.shape[0])
        scale = (1.5 * med).clamp(min=1.0)[:, None]
        return 1.0 / (1.0 + (r / scale) ** 2 / self.nu)

    def _solve(self, X: torch.Tensor):
        """Root translation, projections, label assignment and joint weights of ``X`` (camera frame).

        Returns (T ``[B, 3]``, uv ``[B, J, 2]``, z ``[B, J]``, perm ``[B, J]`` or None, weight ``[B, J]``).
        """
        ev = self.ev
        t0 = time.perf_counter()
        robust = self.nu > 0 or bool(self.limbs)
        # the root solve starts from the previous step's robust weights (IRLS carried across steps)
        w0 = self.wt_prev if robust and self.wt_prev is not None else ev.weight
        a0 = self.anchors_prev if robust and self.anchors_prev is not None else ev.anchor_uv
        T = solve_root_translation(X, a0, w0)
        P = X + T[:, None]
        uv = P[..., :2] / P[..., 2:3].clamp(min=0.1)
        perm = self._assign(uv) if self.swap_on else None
        wt = ev.weight if perm is None else ev.weight[perm]
        if robust:
            wt = wt * self._robust_weight(self._residual(uv, perm))
            anchors = ev.anchor_uv if perm is None else ev.anchor_uv[perm]
            T = solve_root_translation(X, anchors, wt)
            P = X + T[:, None]
            uv = P[..., :2] / P[..., 2:3].clamp(min=0.1)
            self.wt_prev, self.anchors_prev = wt, anchors
        self.state.timings["root_solve"] += time.perf_counter() - t0
        return T, uv, P[..., 2].clamp(min=0.1), perm, wt

    def _target(self, uv: torch.Tensor, perm: torch.Tensor | None) -> torch.Tensor:
        """2D targets of the projections ``uv`` under the label assignment ``perm``."""
        if perm is None:
            return self.ev.target(uv)
        # evidence channel c is evaluated at the joint assigned to it (perm is an involution)
        idx = perm[..., None].expand(-1, -1, 2)
        return torch.gather(self.ev.target(torch.gather(uv, 1, idx)), 1, idx)

    def update(self, X, step):
        ev = self.ev
        # label swaps are decided once the pose has taken shape (early x0s are blurs)
        self.swap_now = self.swap_start <= (1.0 if step.abar is None else step.frac)
        self.swap_on = bool(self.limbs) and bool(self.swap_now.any())
        self.T, uv, z, perm, wt = self._solve(X)
        if self.state.subject_ray is not None:
            self.state.subject_ray = self.T  # the pelvis ray of each hypothesis
        self.uv_t = self._target(uv, perm)
        sig = ev.sigma if perm is None else ev.sigma[perm]
        self.a2d = self.state.weights.scale * wt / (sig**2 * z**2)  # [B, J] 1/m^2
        out = ev.outside_target(uv)
        if out is not None:  # a joint outside the photo that projects inside: pulled to the border
            act = out[1] > 0
            self.uv_t = torch.where(act[..., None], out[0], self.uv_t)
            self.a2d = torch.where(act, self.state.weights.scale / (self.outside_sigma**2 * z**2), self.a2d)
        # per joint, once per inner step (the tree walk reads them level by level)
        self.ray = torch.cat([self.uv_t, torch.ones_like(self.uv_t[..., :1])], -1)  # [B, J, 3] camera frame
        self.ray_sq = (self.ray * self.ray).sum(-1, keepdim=True)  # [B, J, 1]
        self.a2d_col = self.a2d[..., None]  # [B, J, 1]

    def _loglik(self, r: torch.Tensor) -> torch.Tensor:
        """Log-likelihood of residuals ``r`` (sigmas): Student-t ``-(nu + 2)/2 log(1 + r^2 / nu)``, Gaussian when ``nu`` is 0."""
        return -0.5 * (self.nu + 2) * torch.log1p(r**2 / self.nu) if self.nu > 0 else -0.5 * r**2

    def bone_targets(self, level, parent, d_prior, step):
        js, L = level.joints, level.lengths
        r = self.ray.index_select(1, js)  # the target's camera ray
        pa = parent + self.T[:, None]
        c_prior = pa + L * d_prior
        q = (r * c_prior).sum(-1, keepdim=True) / self.ray_sq.index_select(1, js) * r
        return unit(q - pa), self.a2d_col.index_select(1, js)

    def finish(self, final, result):
        ev = self.ev
        self.swap_now = self.swap_start <= 1.0
        self.swap_on = bool(self.limbs) and bool(self.swap_now.any())
        R = self.state.camera_rotation()
        Xc = final.model @ R.transpose(1, 2)
        T, uv, _, perm, _ = self._solve(Xc)
        if perm is None:
            l2d, _ = ev.value_and_grad(uv)
        else:
            idx = perm[..., None].expand(-1, -1, 2)
            l2d = torch.gather(ev.value_and_grad(torch.gather(uv, 1, idx))[0], 1, perm)
        if self.nu > 0 and isinstance(ev, KeypointEvidence):
            r = self._residual(uv, perm)
            wv = ev.weight if perm is None else ev.weight[perm]
            l2d = self._loglik(r) * wv
        out = ev.outside_target(uv)
        if out is not None:  # the hinge on joints outside the photo (robust like the keypoints)
            l2d = l2d + self._loglik(out[1] / self.outside_sigma)
        Kf = getattr(ev, "focal_px", None)
        if Kf is not None:
            anchors = ev.anchor_uv if perm is None else ev.anchor_uv[perm]
            err = ((uv - anchors) ** 2).sum(-1).sqrt()
            wv = (ev.weight > 0).float()
            result.reproj_px = ((err * wv).sum(-1) / wv.sum(-1).clamp(min=1) * Kf).cpu().numpy()
        if perm is not None:
            moved = perm != torch.arange(perm.shape[1], device=perm.device)
            result.swapped = moved.any(-1).cpu().numpy()
            if SWAP_LOGPRIOR:
                n_swapped = torch.stack([moved[:, idx[0, 0]] for idx in self.limbs], -1).float().sum(-1)
                l2d = l2d.clone()
                l2d[:, 0] = l2d[:, 0] + SWAP_LOGPRIOR * n_swapped
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
        # ``known`` may be ``[J, 3]`` (one set for the batch) or ``[B, J, 3]`` (one per hypothesis)
        Xw, kw = final.world, self.w
        known = self.known.expand_as(Xw)
        d2 = ((Xw - known) ** 2).sum(-1)
        ll = -0.5 * (d2 * kw).sum(-1) / (self.sigma**2)
        rows = []
        for j, p in enumerate(PARENTS):
            if kw[j] > 0:
                rows.append(known[:, j])
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
