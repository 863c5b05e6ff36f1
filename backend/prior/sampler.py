"""Guided DDIM sampling of the pose prior: estimation, completion, variations and generation.

One unconditional prior, steered at sampling time (Snelgar et al. 2026). At every DDIM step
(Song et al. 2021) the denoiser predicts x0; the guidance terms of :mod:`backend.prior.guidance`
refine that estimate (2D evidence through the perspective camera, known joints, known bone
directions), rebuilding the pose down the kinematic tree with the canonical bone lengths, and the
DDIM update continues from the refined x0 ("x0 refinement" guidance, as in Platypose). For known
3D joints a DPS step (Chung et al. 2023) through the denoiser also pulls x_t so that the denoiser
itself predicts them, which carries the evidence to the unknown joints.

Unknowns solved along the way, per hypothesis: the root translation (closed form from the camera
rays every inner step, as in ZeDO), the camera's pitch and roll relative to gravity when the
request does not give the camera's orientation (a grid search, at a few points of the sampling,
for the tilt under which the camera-frame pose is most typical of the prior,
:meth:`GuidedSampler._retilt`), and for known world joints the body's yaw and placement (2D
Kabsch, :func:`backend.guidance.yaw_align`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from backend.errors import Cancelled
from backend.prior import guidance as G
from backend.prior.model import PoseDenoiser
from backend.prior.schedule import NoiseSchedule
from backend.skeleton import BONE_LENGTHS, NUM_JOINTS, PARENTS

#: Camera tilts searched when the request does not give the camera orientation (radians).
PITCH_GRID = torch.deg2rad(torch.arange(-15.0, 46.0, 7.5))
ROLL_GRID = torch.deg2rad(torch.tensor([0.0]))


@dataclass
class Conditions:
    """Evidence for one frame. All optional; none at all = unconditional generation.

    Attributes:
        evidence: 2D likelihood (keypoints or heatmaps), normalised image coordinates.
        rotation: world->camera rotation ``[3, 3]`` when the camera orientation is known.
        known: ``[J, 3]`` known joint positions, world frame, metres (rows of unknown joints ignored).
        known_w: ``[J]`` 1 for known joints, else 0.
        directions: ``[J, 3]`` known unit directions parent->joint, world frame.
        directions_w: ``[J]`` 1 where a direction is known.
        fix_yaw: keep the world yaw of known joints as given (variations) instead of solving it.
    """

    evidence: G.Evidence2D | None = None
    rotation: np.ndarray | None = None
    known: np.ndarray | None = None
    known_w: np.ndarray | None = None
    directions: np.ndarray | None = None
    directions_w: np.ndarray | None = None
    fix_yaw: bool = False

    @property
    def has_2d(self) -> bool:
        return self.evidence is not None and self.evidence.num_visible > 0

    @property
    def has_known(self) -> bool:
        return self.known_w is not None and float(np.sum(self.known_w)) > 0

    @property
    def has_directions(self) -> bool:
        return self.directions_w is not None and float(np.sum(self.directions_w)) > 0


@dataclass
class SampleResult:
    """Hypotheses of one frame (``B`` of them), metres.

    Attributes:
        world: ``[B, J, 3]`` pose in the upright frame (Z up), pelvis at the origin. With 2D
            evidence, the level camera looks along +Y of this frame; with known joints it is
            the world frame of the request shifted to put the pelvis at the origin.
        camera: ``[B, J, 3]`` root-relative camera-frame joints (2D evidence only).
        root: ``[B, 3]`` pelvis in the camera frame (2D) or in the world (known joints).
        rotation: ``[B, 3, 3]`` world->camera rotation used (2D only).
        pitch, roll: ``[B]`` radians (2D only).
        loglik: ``[B]`` mean log-likelihood of the evidence per constrained joint (higher is better).
        reproj_px: ``[B]`` mean reprojection error against the 2D anchors in pixels (2D only).
        plausibility: ``[B]`` negative denoiser disagreement (higher = more typical of the prior).
        timings: seconds spent in the denoiser, the guidance and the root solve.
    """

    world: np.ndarray
    camera: np.ndarray | None = None
    root: np.ndarray | None = None
    rotation: np.ndarray | None = None
    pitch: np.ndarray | None = None
    roll: np.ndarray | None = None
    loglik: np.ndarray | None = None
    reproj_px: np.ndarray | None = None
    plausibility: np.ndarray | None = None
    timings: dict = field(default_factory=dict)


def _tilt_batch(pitch: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """``[B]`` pitch, roll (radians) -> ``[B, 3, 3]`` world->camera rotations (see camera.tilt_rotation)."""
    cp, sp, cr, sr = pitch.cos(), pitch.sin(), roll.cos(), roll.sin()
    z, o = torch.zeros_like(cp), torch.ones_like(cp)
    rx = torch.stack([torch.stack([o, z, z], -1), torch.stack([z, cp, -sp], -1), torch.stack([z, sp, cp], -1)], -2)
    rz = torch.stack([torch.stack([cr, -sr, z], -1), torch.stack([sr, cr, z], -1), torch.stack([z, z, o], -1)], -2)
    level = torch.tensor([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]], device=pitch.device)
    return rz @ rx @ level


def pitch_roll_of(R: np.ndarray) -> tuple[float, float]:
    """Pitch and roll (radians) of a world->camera rotation: from the image of world up."""
    up = np.asarray(R) @ np.array([0.0, 0.0, 1.0])
    pitch = math.asin(float(np.clip(-up[2], -1, 1)))
    roll = math.atan2(float(up[0]), float(-up[1]))
    return pitch, roll


def _kabsch(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """Rotations ``Q`` (``[B, 3, 3]``) minimising ``|A Q^T - B|`` for centred ``[B, J, 3]`` sets."""
    H = A.transpose(1, 2) @ B
    U, _, Vt = torch.linalg.svd(H)
    d = torch.sign(torch.det(Vt.transpose(1, 2) @ U.transpose(1, 2)))
    D = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], -1))
    return Vt.transpose(1, 2) @ D @ U.transpose(1, 2)


def _unit(v: torch.Tensor) -> torch.Tensor:
    """Unit vectors along the last axis (zero vectors stay finite)."""
    return v / v.norm(dim=-1, keepdim=True).clamp(min=1e-8)


_LEVELS: dict = {}


def _tree_levels(device) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Per depth of the kinematic tree, root excluded, outward: (joints ``[n]``, their parents
    ``[n]``, their canonical bone lengths ``[1, n, 1]`` in metres), on ``device``."""
    key = str(device)
    if key not in _LEVELS:
        depth = [0] * NUM_JOINTS
        for j, p in enumerate(PARENTS):
            depth[j] = 0 if p < 0 else depth[p] + 1
        levels = []
        for d in range(1, max(depth) + 1):
            js = [j for j in range(NUM_JOINTS) if depth[j] == d]
            levels.append((torch.tensor(js, device=device), torch.tensor([PARENTS[j] for j in js], device=device),
                           torch.tensor(BONE_LENGTHS[js], dtype=torch.float32, device=device)[None, :, None]))
        _LEVELS[key] = levels
    return _LEVELS[key]


class GuidedSampler:
    """DDIM sampler over a :class:`~backend.model.PoseDenoiser` with optional guidance.

    Args:
        model: the prior (x0-prediction, model units = metres / ``cfg.data_scale``).
        steps: DDIM steps (default 40).
        eta: DDIM stochasticity (0 deterministic, 1 DDPM-like); > 0 keeps hypotheses diverse.
        weights: guidance precisions and inner-step controls.
    """

    def __init__(self, model: PoseDenoiser, steps: int = 40, eta: float = 0.5, weights: G.GuidanceWeights | None = None):
        self.model = model
        self.device = next(model.parameters()).device
        self.scale = float(model.cfg.data_scale)
        self.sched = NoiseSchedule(model.cfg.diffusion_steps)
        self.steps = int(steps)
        self.eta = float(eta)
        self.w = weights or G.GuidanceWeights()

    # ------------------------------------------------------------------------------ public

    @torch.no_grad()
    def sample(self, num: int, cond: Conditions | None = None, seed: int | None = 0,
               init: np.ndarray | None = None, strength: float = 1.0,
               progress=None, cancel=None) -> SampleResult:
        """Draw ``num`` hypotheses.

        Args:
            num: batch size B.
            cond: evidence (None = unconditional generation).
            seed: RNG seed (same seed, same result on the same device).
            init: ``[J, 3]`` starting pose (world, metres) for variations (SDEdit, Meng et al. 2022):
                noised to step ``strength * T`` and denoised from there.
            strength: 0..1, only with ``init``.
            progress: callable(fraction 0..1); cancel: callable() -> bool (raises Cancelled).
        Returns:
            :class:`SampleResult`.
        """
        import time

        cond = cond or Conditions()
        gen = torch.Generator().manual_seed(int(seed) if seed is not None else int(torch.seed() % 2**63))
        dev = self.device
        B, J = int(num), NUM_JOINTS
        t_first = self.sched.num_steps - 1
        if init is not None:
            t_first = int(round(float(np.clip(strength, 0.0, 1.0)) * (self.sched.num_steps - 1)))
        ts = self.sched.timesteps(max(2, round(self.steps * max(t_first, 1) / (self.sched.num_steps - 1))), start=t_first)
        noise = torch.randn(B, J, 3, generator=gen).to(dev)
        if init is not None:
            x0i = torch.tensor(np.asarray(init, np.float32) - np.asarray(init, np.float32)[:1], device=dev) / self.scale
            a = self.sched.abar(torch.tensor([t_first]))[0].item()
            x = math.sqrt(a) * x0i[None] + math.sqrt(1 - a) * noise
            if t_first == 0:
                ts = []
                x = x0i[None].expand(B, J, 3).clone()
        else:
            x = noise

        st = self._state(cond, B, gen)
        timings = {"denoiser": 0.0, "guidance": 0.0, "root_solve": 0.0}
        x0 = x
        retilt_at = {int(f * (len(ts) - 1)) for f in self.w.retilt_at} if ts else set()
        for i, t in enumerate(ts):
            if cancel is not None and cancel():
                raise Cancelled("cancelled")
            t_prev = ts[i + 1] if i + 1 < len(ts) else -1
            t0 = time.perf_counter()
            tt = torch.full((B,), t, device=dev, dtype=torch.long)
            dps = self.w.dps_scale > 0 and st["constrained"] is not None
            if dps:
                with torch.enable_grad():
                    xg = x.detach().requires_grad_(True)
                    x0_hat_g = self.model(xg, tt)
                x0_hat = x0_hat_g.detach()
            else:
                x0_hat = self.model(x, tt)
            timings["denoiser"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            abar = float(self.sched.alphas_cumprod[t])
            x0 = self._refine(x0_hat, abar, st, timings, frac=i / max(len(ts) - 1, 1))
            if "pitch" in st and not st["fixed_tilt"] and i in retilt_at:
                x0, x = self._retilt(x0, x, st)
            grad = None
            if dps:
                # DPS (Chung et al. 2023, eq. 16) with the refined x0 as the measurement: pull x_t so
                # that the denoiser itself predicts the evidence, which carries it to the joints the
                # evidence does not see; step normalised by the residual norm.
                with torch.enable_grad():
                    r = (x0_hat_g - x0) * st["constrained"][None, :, None]
                    loss = (r**2).sum()
                    (grad,) = torch.autograd.grad(loss, xg)
                rn = r.detach().flatten(1).norm(dim=1).clamp(min=1e-6)[:, None, None]
                grad = grad / rn
            timings["guidance"] += time.perf_counter() - t0
            x = self.sched.ddim_step(x, x0, t, t_prev, eta=self.eta, generator=gen)
            if grad is not None and t_prev >= 0:
                x = x - self.w.dps_scale * grad
            if progress is not None:
                progress((i + 1) / (len(ts) + 1))
        if not ts:
            x0 = x
        if self.w.polish_steps > 0 and not (init is not None and t_first == 0):
            x0 = self._refine(x0, None, st, timings, frac=1.0)
        t0 = time.perf_counter()
        res = self._finish(x0, st, timings)
        timings["guidance"] += time.perf_counter() - t0
        res.timings = timings
        if progress is not None:
            progress(1.0)
        return res

    # ------------------------------------------------------------------------------ internals

    def _state(self, cond: Conditions, B: int, gen: torch.Generator) -> dict:
        dev = self.device
        st: dict = {"cond": cond, "B": B}
        if cond.has_2d:
            if cond.rotation is not None:
                p, r = pitch_roll_of(cond.rotation)
                st["pitch"] = torch.full((B,), p, device=dev)
                st["roll"] = torch.full((B,), r, device=dev)
                st["fixed_tilt"] = True
            else:
                st["pitch"] = torch.full((B,), math.radians(8.0), device=dev)
                st["roll"] = torch.zeros(B, device=dev)
                st["fixed_tilt"] = False
        c = np.zeros(NUM_JOINTS, np.float32)
        if cond.has_known:
            c = np.maximum(c, cond.known_w)
        if cond.has_directions:
            c = np.maximum(c, cond.directions_w)
        # (2D evidence is left out: measured, DPS on it did not help the lifting accuracy)
        st["constrained"] = torch.tensor(c, dtype=torch.float32, device=dev) if c.any() else None
        if cond.has_known:
            st["known"] = torch.tensor(np.nan_to_num(cond.known), dtype=torch.float32, device=dev)
            st["known_w"] = torch.tensor(cond.known_w, dtype=torch.float32, device=dev)
        if cond.has_directions:
            d = np.nan_to_num(np.asarray(cond.directions, np.float64))
            d = d / np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-9)
            st["dirs"] = torch.tensor(d, dtype=torch.float32, device=dev)
            st["dirs_w"] = torch.tensor(cond.directions_w, dtype=torch.float32, device=dev)
        return st

    def _align_world(self, Xm: torch.Tensor, st: dict):
        """Yaw + translation taking model-frame poses to the request's world (known joints/directions)."""
        cond = st["cond"]
        B = Xm.shape[0]
        if cond.fix_yaw:
            R = torch.eye(3, device=Xm.device).expand(B, 3, 3)
            if "known" in st:
                w = st["known_w"]
                t = ((st["known"] - Xm) * w[:, None]).sum(1) / w.sum().clamp(min=1e-8)
            else:
                t = Xm.new_zeros(B, 3)
            return R, t
        par = torch.tensor([max(p, 0) for p in PARENTS], device=Xm.device)
        vs = vd = vw = None
        if "dirs" in st:
            vs = Xm - Xm[:, par]
            vd = st["dirs"] * torch.tensor(BONE_LENGTHS, device=Xm.device)[:, None]
            vw = st["dirs_w"]
        if "known" in st:
            return G.yaw_align(Xm, st["known"], st["known_w"], vs, vd, vw)
        R, _ = G.yaw_align(Xm, Xm.new_zeros(NUM_JOINTS, 3), Xm.new_zeros(NUM_JOINTS), vs, vd, vw)
        return R, Xm.new_zeros(B, 3)

    def _refine(self, x0_hat: torch.Tensor, abar: float | None, st: dict, timings: dict, frac: float) -> torch.Tensor:
        """Guidance: refine the denoiser's x0 (model units) with the evidence; returns model units.

        The refined pose is rebuilt down the kinematic tree with canonical bone lengths (the
        skeleton term as a hard constraint, which removes the scale-depth ambiguity of NOTES.md).
        Each bone's direction is the precision-weighted blend of the denoiser's direction and the
        evidence's: for a joint seen in 2D, the point on its camera ray at bone length from the
        (already refined) parent, choosing the ray intersection nearest the denoiser's depth
        (front/back flips are left to the prior, which keeps hypotheses diverse where the photo is
        ambiguous); for a known 3D joint, the direction to it; for a known bone direction, itself.
        The 2D target of a heatmap is one Gauss-Newton (mean-shift) step on its log-likelihood
        from the current projection, ``uv + sigma^2 grad log p(uv)``: the heatmap gradient guidance
        of Snelgar et al. 2026. Blend weight ``alpha = a / (a + b)`` with the evidence precision
        ``a`` (1/m^2 at the subject's depth) and the denoiser's x0 precision ``b``
        (:func:`backend.guidance.prior_precision`, capped by ``prior_cap``).
        """
        cond: Conditions = st["cond"]
        if not (cond.has_2d or cond.has_known or cond.has_directions):
            if abar is None:  # final polish of an unguided sample: canonical bone lengths
                X = x0_hat * self.scale
                return self._tree_walk(X, X, torch.zeros_like(X[:, 0]), self.w.polish_prior, None, None, None, None) / self.scale
            return x0_hat
        import time

        w = self.w
        Xh_m = x0_hat * self.scale  # metres, model (upright) frame
        b = min(G.prior_precision(abar, self.scale), w.prior_cap) if abar is not None else w.polish_prior
        B = Xh_m.shape[0]
        if cond.has_2d:
            R = _tilt_batch(st["pitch"], st["roll"])  # world->camera
        else:
            R = torch.eye(3, device=Xh_m.device).expand(B, 3, 3)
        Xh = Xh_m @ R.transpose(1, 2)  # working frame (camera frame with 2D evidence)
        ev = cond.evidence if cond.has_2d else None
        tgt = dirs = None
        if cond.has_known or cond.has_directions:
            Ry, ty = self._align_world(Xh_m, st)
            if "known" in st:
                tgt_m = (st["known"][None] - ty[:, None]) @ Ry  # R^T (k - t): model frame
                tgt = tgt_m @ R.transpose(1, 2)
            if "dirs" in st:
                dirs = (st["dirs"][None].expand(B, -1, -1) @ Ry) @ R.transpose(1, 2)
        X = Xh
        for _ in range(w.inner_steps if abar is not None else w.polish_steps):
            T = torch.zeros(B, 3, device=X.device)
            uv_t = a2d = None
            if ev is not None:
                t0 = time.perf_counter()
                T = G.solve_root_translation(X, ev.anchor_uv, ev.weight)
                timings["root_solve"] += time.perf_counter() - t0
                P = X + T[:, None]
                z = P[..., 2].clamp(min=0.1)
                uv = P[..., :2] / z[..., None]
                uv_t = ev.target(uv)
                sig2 = ev.sigma**2
                ramp = 1.0 if abar is None else min(1.0, frac / w.ramp) if w.ramp > 0 else 1.0
                a2d = ramp * w.scale * ev.weight / (sig2 * z**2)  # [B, J] 1/m^2
            X = self._tree_walk(X, Xh, T, b, uv_t, a2d, tgt, dirs, st.get("known_w"), st.get("dirs_w"))
        return (X @ R) / self.scale

    def _tree_walk(self, X, Xh, T, b, uv_t, a2d, tgt, dirs, kw=None, dw=None):
        """Rebuild the pose root-outward with canonical bone lengths (see :meth:`_refine`).

        Joints at the same depth of the kinematic tree are independent given their parents, so
        the walk runs one tree level at a time (6 levels for 21 joints), batched over joints.
        ``X``, ``Xh``: ``[B, J, 3]`` metres (working frame); ``T``: ``[B, 3]`` root translation;
        ``b``: prior precision; ``uv_t``, ``a2d``: ``[B, J, 2]`` 2D targets and ``[B, J]`` their
        precisions (or None); ``tgt``: ``[B, J, 3]`` known joints; ``dirs``: ``[B, J, 3]`` known
        directions (or None); ``kw``, ``dw``: ``[J]`` weights of the known joints and directions.
        Returns ``[B, J, 3]``.
        """
        w = self.w
        out = torch.zeros_like(X)
        ak = (w.scale / w.known_sigma**2) if tgt is not None else 0.0
        ad = (w.scale / w.direction_sigma**2) if dirs is not None else 0.0
        for js, ps, L in _tree_levels(X.device):
            xp = out[:, ps]  # [B, n, 3]
            d_prior = _unit(Xh[:, js] - Xh[:, ps])
            num = b * d_prior
            den = torch.full_like(num[..., :1], float(b))
            if uv_t is not None:
                # point on the ray through uv_t at distance L from the parent (camera frame, absolute)
                r = torch.cat([uv_t[:, js], torch.ones_like(uv_t[:, js, :1])], -1)
                pa = xp + T[:, None]
                c_prior = pa + L * d_prior
                rr = (r * r).sum(-1, keepdim=True)
                if w.ray_mode == "intersect":
                    bq = (r * pa).sum(-1, keepdim=True)
                    sq = (bq * bq - rr * ((pa * pa).sum(-1, keepdim=True) - L * L)).clamp(min=0).sqrt()
                    q1, q2 = (bq + sq) / rr * r, (bq - sq) / rr * r
                    pick1 = ((q1 - c_prior) ** 2).sum(-1, keepdim=True) <= ((q2 - c_prior) ** 2).sum(-1, keepdim=True)
                    q = torch.where(pick1, q1, q2)
                else:  # the point of the ray nearest the denoiser's child: depth from the prior
                    q = (r * c_prior).sum(-1, keepdim=True) / rr * r
                a = a2d[:, js, None]
                num = num + a * _unit(q - pa)
                den = den + a
            if tgt is not None:
                m = ak * kw[js][None, :, None]
                num = num + m * _unit(tgt[:, js] - xp)
                den = den + m
            if dirs is not None:
                m = ad * dw[js][None, :, None]
                num = num + m * dirs[:, js]
                den = den + m
            out[:, js] = xp + L * _unit(num / den)
        return out

    def _retilt(self, x0: torch.Tensor, x_t: torch.Tensor, st: dict):
        """Re-estimate each hypothesis' camera pitch and roll from the prior (gravity).

        The camera-frame pose fits the 2D evidence whatever the tilt; the tilt decides how that
        pose stands in the world. Grid search over ``PITCH_GRID`` x ``ROLL_GRID`` for the tilt under
        which the upright pose is most typical of the prior (:meth:`plausibility`, the denoiser's
        agreement), then re-express ``x0`` and the noisy sample ``x_t`` in the new upright frame
        (a rotation, so the noise stays isotropic). Returns (x0, x_t) in model units.
        """
        B = x0.shape[0]
        R_old = _tilt_batch(st["pitch"], st["roll"])
        Xc = (x0 * self.scale) @ R_old.transpose(1, 2)  # camera frame
        pg, rg = torch.meshgrid(PITCH_GRID.to(x0.device), ROLL_GRID.to(x0.device), indexing="ij")
        pg, rg = pg.reshape(-1), rg.reshape(-1)
        G_ = pg.numel()
        Rg = _tilt_batch(pg, rg)  # [G, 3, 3]
        cand = torch.einsum("bjc,gcd->bgjd", Xc, Rg)  # camera -> world: v @ R
        score = self.plausibility(cand.reshape(B * G_, -1, 3), draws=1).view(B, G_)
        k = score.argmax(1)
        st["pitch"], st["roll"] = pg[k], rg[k]
        R_new = _tilt_batch(st["pitch"], st["roll"])
        M = R_old.transpose(1, 2) @ R_new  # old world -> camera -> new world
        return (Xc @ R_new) / self.scale, x_t @ M

    def _finish(self, x0: torch.Tensor, st: dict, timings: dict) -> SampleResult:
        cond: Conditions = st["cond"]
        Xm = x0 * self.scale
        Xm = Xm - Xm[:, :1]
        B = Xm.shape[0]
        res = SampleResult(world=Xm.cpu().numpy())
        ll = torch.zeros(B, device=Xm.device)
        count = 0
        if cond.has_2d:
            ev = cond.evidence
            R = _tilt_batch(st["pitch"], st["roll"])
            Xc = Xm @ R.transpose(1, 2)
            T = G.solve_root_translation(Xc, ev.anchor_uv, ev.weight)
            P = Xc + T[:, None]
            uv = P[..., :2] / P[..., 2:3].clamp(min=0.1)
            l2d, _ = ev.value_and_grad(uv)
            ll = ll + l2d.sum(-1)
            count += ev.num_visible
            Kf = getattr(ev, "focal_px", None)
            err = ((uv - ev.anchor_uv) ** 2).sum(-1).sqrt()
            wv = (ev.weight > 0).float()
            if Kf is not None:
                res.reproj_px = ((err * wv).sum(-1) / wv.sum().clamp(min=1) * Kf).cpu().numpy()
            res.camera = Xc.cpu().numpy()
            res.root = T.cpu().numpy()
            res.rotation = R.cpu().numpy()
            res.pitch = st["pitch"].cpu().numpy()
            res.roll = st["roll"].cpu().numpy()
        if cond.has_known or cond.has_directions:
            Ry, ty = self._align_world(Xm, st)
            Xw = Xm @ Ry.transpose(1, 2) + ty[:, None]
            if cond.has_known:
                kw = st["known_w"]
                d2 = ((Xw - st["known"][None]) ** 2).sum(-1)
                ll = ll - 0.5 * (d2 * kw).sum(-1) / (self.w.known_sigma**2)
                count += int(kw.sum().item())
                # reproduce every known joint exactly; unknown joints keep their bone vectors from
                # the fit, so they move with their nearest known ancestor (no stretched bones)
                fit = Xw
                rows = []
                for j, p in enumerate(PARENTS):
                    if kw[j] > 0:
                        rows.append(st["known"][j].expand_as(fit[:, j]))
                    elif p < 0:
                        rows.append(fit[:, j])
                    else:
                        rows.append(rows[p] + fit[:, j] - fit[:, p])
                Xw = torch.stack(rows, 1)
            if cond.has_2d:
                res.world = Xw.cpu().numpy()  # combined evidence: world placement from known joints
            else:
                res.world = (Xw - Xw[:, :1]).cpu().numpy()
                res.root = Xw[:, 0].cpu().numpy()
        res.loglik = (ll / max(count, 1)).cpu().numpy()
        res.plausibility = self.plausibility(Xm).cpu().numpy()
        return res

    @torch.no_grad()
    def plausibility(self, Xm: torch.Tensor, t: int = 100, draws: int = 2) -> torch.Tensor:
        """Denoiser agreement: ``-|D(sqrt(abar) x + sqrt(1-abar) eps, t) - x|`` averaged over joints (metres).

        Poses typical of the prior are reproduced by the denoiser after a little noise; fixed noise
        (seeded) keeps it deterministic. ``Xm``: ``[B, J, 3]`` metres, upright frame.
        """
        g = torch.Generator().manual_seed(1234)
        x = Xm / self.scale
        a = float(self.sched.alphas_cumprod[t])
        out = 0
        for _ in range(draws):
            n = torch.randn(x.shape, generator=g).to(x.device)
            xt = math.sqrt(a) * x + math.sqrt(1 - a) * n
            x0 = self.model(xt, torch.full((x.shape[0],), t, device=x.device, dtype=torch.long))
            out = out + ((x0 - x) * self.scale).norm(dim=-1).mean(-1)
        return -out / draws
