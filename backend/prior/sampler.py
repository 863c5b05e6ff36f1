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
Kabsch, :func:`backend.prior.geometry.yaw_align`).

The DDIM loop calls the guidance through two functions only, whatever the terms are
(:func:`backend.prior.terms.build_terms` once, :func:`backend.prior.guidance.refine` per
step); see :mod:`backend.prior.guidance` for the term interface and how to add a term.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import numpy as np
import torch

from backend.errors import Cancelled
from backend.prior import guidance as G
from backend.prior.camera_prior import pitch_for_view, view_pitch
from backend.prior.geometry import prior_precision, tilt_batch
from backend.prior.guidance import Conditions, SampleState
from backend.prior.model import PoseDenoiser
from backend.prior.schedule import NoiseSchedule
from backend.prior.terms import build_terms
from backend.skeleton import NUM_JOINTS

__all__ = ["Conditions", "GuidedSampler", "SampleResult"]

#: Camera tilts searched when the request does not give the camera orientation (radians).
PITCH_GRID = torch.deg2rad(torch.arange(-15.0, 46.0, 7.5))
ROLL_GRID = torch.deg2rad(torch.tensor([0.0]))
#: The tilt search evaluates the whole grid in one denoiser call up to this many rows (hypotheses x
#: tilts), above it by branch and bound (:meth:`~backend.prior.camera_prior.CameraPrior.best_tilt`):
#: a photo's 60 candidates x 11 pitches were 4-8 % slower in rounds (CPU time, 1 thread).
WHOLE_GRID_ROWS = 2048


@dataclass
class SampleResult:
    """Hypotheses of one frame (``B`` of them), metres. Each field has one frame and meaning.

    Attributes:
        world_rel: ``[B, J, 3]`` pose in the world frame (Z up), pelvis at the origin. The world's
            yaw is the request's when known joints or directions fix it; otherwise it is the
            prior's upright frame, in which (with 2D evidence) the level camera looks along +Y.
        world_root: ``[B, 3]`` pelvis in the request's world frame; only when known joints or
            directions place the body (else None).
        camera_rel: ``[B, J, 3]`` camera-frame joints, pelvis at the origin (2D evidence only).
        camera_root: ``[B, 3]`` pelvis in the camera frame (2D evidence only).
        rotation: ``[B, 3, 3]`` upright frame -> camera rotation used (2D only).
        pitch, roll: ``[B]`` radians (2D only).
        loglik: ``[B]`` mean log-likelihood of the evidence per constrained joint (higher is better).
        reproj_px: ``[B]`` mean reprojection error against the 2D anchors in pixels (2D only).
        plausibility: ``[B]`` negative denoiser disagreement (higher = more typical of the prior).
        swapped: ``[B]`` bool, the hypothesis explains the 2D with a limb's left/right labels
            exchanged (only with ``GuidanceWeights.swap_limbs``).
        timings: seconds spent in the denoiser, the guidance and the root solve.
    """

    world_rel: np.ndarray
    world_root: np.ndarray | None = None
    camera_rel: np.ndarray | None = None
    camera_root: np.ndarray | None = None
    rotation: np.ndarray | None = None
    pitch: np.ndarray | None = None
    roll: np.ndarray | None = None
    loglik: np.ndarray | None = None
    reproj_px: np.ndarray | None = None
    plausibility: np.ndarray | None = None
    swapped: np.ndarray | None = None
    timings: dict = field(default_factory=dict)

    def _arrays(self) -> list[str]:
        return [f.name for f in fields(self) if f.name != "timings"]

    def take(self, index: np.ndarray) -> SampleResult:
        """The hypotheses at ``index`` (``[K]`` ints), every per-hypothesis field sliced; same timings."""
        return SampleResult(**{k: None if (v := getattr(self, k)) is None else v[index] for k in self._arrays()},
                            timings=self.timings)

    def concat(self, other: SampleResult) -> SampleResult:
        """These hypotheses, then ``other``'s (``B + B'``, each field in this one's dtype); this
        one's timings. Raises ValueError where a field is given in one of them only."""
        out = {}
        for k in self._arrays():
            a, b = getattr(self, k), getattr(other, k)
            if (a is None) != (b is None):
                raise ValueError(f"SampleResult.concat: {k} is given in one result only")
            out[k] = None if a is None else np.concatenate([a, np.asarray(b, a.dtype)])
        return SampleResult(**out, timings=self.timings)


def _near_index(grid: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """``[B, G]`` bool: the points of ``grid`` (``[G]``) within one step of each ``value``'s nearest (``[B]``)."""
    j = (grid[None] - value[:, None]).abs().argmin(1)
    return (torch.arange(grid.numel(), device=grid.device)[None] - j[:, None]).abs() <= 1


class GuidedSampler:
    """DDIM sampler over a :class:`~backend.model.PoseDenoiser` with optional guidance.

    Args:
        model: the prior (x0-prediction, model units = metres / ``cfg.data_scale``).
        steps: DDIM steps (default 40).
        eta: DDIM stochasticity (0 deterministic, 1 DDPM-like); > 0 keeps hypotheses diverse.
        weights: guidance precisions and inner-step controls.

    ``common_plausibility``, ``plausibility_draws``: the final :meth:`plausibility`
    (``SampleResult.plausibility``) uses that many noise draws (default 2), common to all
    hypotheses (a sequence and a single photo's estimate set it; default each hypothesis its own).
    """

    def __init__(self, model: PoseDenoiser, steps: int = 40, eta: float = 0.5, weights: G.GuidanceWeights | None = None):
        self.model = model
        self.device = next(model.parameters()).device
        self.scale = float(model.cfg.data_scale)
        self.sched = NoiseSchedule(model.cfg.diffusion_steps)
        self.steps = int(steps)
        self.eta = float(eta)
        self.w = weights or G.GuidanceWeights.for_prior(model)
        self.common_plausibility = False
        self.plausibility_draws = 2

    # ------------------------------------------------------------------------------ public

    @torch.no_grad()
    def sample(self, num: int, cond: Conditions | None = None, seed: int | None = 0,
               init: np.ndarray | None = None, strength: float = 1.0,
               progress=None, cancel=None, shared_noise: bool = False,
               tilt: tuple[np.ndarray, np.ndarray] | None = None, steps: int | None = None,
               guidance_from: float = 0.0) -> SampleResult:
        """Draw ``num`` hypotheses.

        Args:
            num: batch size B.
            cond: evidence (None = unconditional generation).
            seed: RNG seed (same seed, same result on the same device).
            init: ``[J, 3]`` starting pose (world, metres) for variations, or ``[B, J, 3]`` one per
                hypothesis (SDEdit, Meng et al. 2022): noised to step ``strength * T`` and denoised
                from there.
            strength: 0..1, only with ``init``.
            progress: callable(fraction 0..1); cancel: callable() -> bool (raises Cancelled).
            shared_noise: every hypothesis starts from the same noise (with ``eta = 0`` they then
                differ only by their guidance terms: pose assist compares two pin sets this way).
            tilt: ``([B], [B])`` camera pitch and roll (radians) to hold fixed instead of searching
                them (2D evidence without a known rotation only).
            steps: denoising steps (default: the sampler's ``steps``, times ``strength`` with ``init``).
            guidance_from: where in the guidance schedule (``frac``, 0..1) the first step is; the
                last is at 1.
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
        ts = self.sched.timesteps(max(2, steps or round(self.steps * max(t_first, 1) / (self.sched.num_steps - 1))), start=t_first)
        noise = torch.randn(1 if shared_noise else B, J, 3, generator=gen).to(dev).expand(B, J, 3)
        if init is not None:
            x0i = torch.tensor(np.asarray(init, np.float32), device=dev) / self.scale
            x0i = (x0i - x0i[..., :1, :]).expand(B, J, 3)
            a = self.sched.abar(torch.tensor([t_first]))[0].item()
            x = math.sqrt(a) * x0i + math.sqrt(1 - a) * noise
            if t_first == 0:
                ts = []
                x = x0i.clone()
        else:
            x = noise

        st = self._state(cond, B, gen)
        if tilt is not None and st.has_camera:
            st.pitch, st.roll = (torch.as_tensor(np.asarray(v), dtype=torch.float32, device=dev) for v in tilt)
            st.fixed_tilt = True
        timings = st.timings
        x0 = x
        retilt_at = {int(f * (len(ts) - 1)) for f in self.w.retilt_at} if ts else set()
        for i, t in enumerate(ts):
            if cancel is not None and cancel():
                raise Cancelled("cancelled")
            t_prev = ts[i + 1] if i + 1 < len(ts) else -1
            t0 = time.perf_counter()
            tt = torch.full((B,), t, device=dev, dtype=torch.long)
            dps = self.w.dps_scale > 0 and st.dps_mask is not None
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
            x0 = self._refine(x0_hat, abar, st, frac=guidance_from + (1 - guidance_from) * i / max(len(ts) - 1, 1))  # guidance
            if st.has_camera and not st.fixed_tilt and i in retilt_at:
                x0, x = self._retilt(x0, x, st, local=self.w.retilt_local and i > min(retilt_at))
            grad = None
            if dps:
                # DPS (Chung et al. 2023, eq. 16) with the refined x0 as the measurement: pull x_t so
                # that the denoiser itself predicts the evidence, which carries it to the joints the
                # evidence does not see; step normalised by the residual norm.
                with torch.enable_grad():
                    r = (x0_hat_g - x0) * st.dps_mask[None, :, None]
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
            x0 = self._refine(x0, None, st, frac=1.0)
        t0 = time.perf_counter()
        res = self._finish(x0, st)
        timings["guidance"] += time.perf_counter() - t0
        res.timings = timings
        if progress is not None:
            progress(1.0)
        return res

    def resample(self, world: np.ndarray, pitch: np.ndarray, roll: np.ndarray, cond: Conditions,
                 strength: float, seed: int | None = 0, steps: int | None = None) -> SampleResult:
        """Re-sample given poses under the guidance of ``cond``: each is noised to step
        ``strength * T`` and denoised from there with the guidance terms (SDEdit, Meng et al.
        2022, one start per pose), its camera tilt held at the given one. The local optimisation
        after a kinematic jump of Sminchisescu & Triggs (2003): a flipped limb
        (:mod:`backend.prior.flips`) is carried to a pose the prior finds typical near it, fitting
        the 2D as before, and scored as the sampler's own candidates are (:meth:`_finish`).

        Args:
            world: ``[N, J, 3]`` upright-frame poses (metres, pelvis at the origin; ``x_cam = R x``).
            pitch, roll: ``[N]`` radians, each pose's camera tilt (kept fixed).
            cond: the evidence (2D, as for the candidates the poses came from).
            strength: ``0 < strength <= 1``, the share of the schedule re-run (its last steps, with
                the guidance as it is there: ``frac`` from ``1 - strength`` to 1).
            seed: RNG seed of the noise.
            steps: denoising steps (default: the sampler's ``steps`` times ``strength``, at least 2).
        Returns:
            :class:`SampleResult` of the ``N`` re-sampled poses.
        Raises:
            ValueError: ``world`` not ``[N, J, 3]``, mismatched tilts, or ``strength`` outside (0, 1].
        """
        N = len(world)
        if np.shape(world)[1:] != (NUM_JOINTS, 3) or np.shape(pitch) != (N,) or np.shape(roll) != (N,) or not 0 < strength <= 1:
            raise ValueError(f"resample: world [N, {NUM_JOINTS}, 3], pitch and roll [N], 0 < strength <= 1 "
                             f"(got {np.shape(world)}, {np.shape(pitch)}, {np.shape(roll)}, {strength})")
        return self.sample(N, cond, seed=0 if seed is None else seed, init=world, tilt=(pitch, roll), steps=steps,
                           strength=max(strength, 1 / (self.sched.num_steps - 1)),  # at least one step of the schedule
                           guidance_from=1.0 - strength)

    # ------------------------------------------------------------------------------ internals

    def _state(self, cond: Conditions, B: int, generator: torch.Generator | None = None) -> SampleState:
        """The per-sample state: the terms for ``cond``, prepared, and the DPS joint mask."""
        st = SampleState(cond=cond, batch=B, device=self.device, weights=self.w, terms=build_terms(cond),
                         generator=generator)
        c = np.zeros(NUM_JOINTS, np.float32)
        for term in st.terms:
            term.prepare(st)
            if term.dps_joints is not None:
                c = np.maximum(c, term.dps_joints)
        # (2D evidence is left out: measured, DPS on it did not help the lifting accuracy)
        st.dps_mask = torch.tensor(c, dtype=torch.float32, device=self.device) if c.any() else None
        return st

    def _refine(self, x0_hat: torch.Tensor, abar: float | None, st: SampleState, frac: float) -> torch.Tensor:
        """Guidance: refine the denoiser's x0 (model units) with the terms of ``st``
        (:func:`backend.prior.guidance.refine`); returns model units.

        The prior's precision is :func:`~backend.prior.geometry.prior_precision` at ``abar``,
        capped by ``prior_cap``; ``polish_prior`` for the final polish (``abar`` None). Without
        any term the DDIM steps keep the denoiser's x0, and the polish only restores the
        canonical bone lengths.
        """
        w = self.w
        if not st.terms:
            if abar is None:  # final polish of an unguided sample: canonical bone lengths
                X = x0_hat * self.scale
                return G.tree_walk(X, X, [], w.polish_prior, None) / self.scale
            return x0_hat
        b = min(prior_precision(abar, self.scale), w.prior_cap) if abar is not None else w.polish_prior
        return G.refine(x0_hat * self.scale, st, abar, frac, b) / self.scale

    def _retilt(self, x0: torch.Tensor, x_t: torch.Tensor, st: SampleState, local: bool = False):
        """Re-estimate each hypothesis' camera pitch and roll (gravity) from the prior and the photo prior.

        The camera-frame pose fits the 2D evidence whatever the tilt; the tilt decides how that
        pose stands in the world. Each grid tilt is scored by how typical the upright pose is of
        the pose prior (:meth:`plausibility`, the denoiser's agreement) and, with
        ``weights.camera_prior`` (:class:`~backend.prior.camera_prior.CameraPrior`), by how
        photos are taken: the pitch over its grid (-30..+70 degrees of *view* pitch, the angle at
        which the camera ray to the hypothesis' pelvis, ``state.subject_ray``, leaves the horizon:
        :func:`~backend.prior.camera_prior.view_pitch`; each grid value is turned into the camera
        pitch that sees the subject at that angle) at the current roll, then the roll (+-20
        degrees) at that pitch, each the grid posterior's maximum (found by branch and bound,
        :meth:`~backend.prior.camera_prior.CameraPrior.best_tilt`). With ``tilt_sample`` the pitch
        is *drawn* from the grid posterior instead, so hypotheses keep different tilt/depth modes (a
        person lying on the floor seen from eye height vs a near-standing one seen steeply). With
        ``local`` only the grid neighbours of each hypothesis' tilt are searched (one step of view
        pitch, one of roll; ``weights.retilt_local``). Without a camera prior: the
        argmax over ``PITCH_GRID`` x ``ROLL_GRID`` of the plausibility alone. Then ``x0`` and the
        noisy sample ``x_t`` are re-expressed in the new upright frame (a rotation, so the noise
        stays isotropic). Returns (x0, x_t) in model units.
        """
        B = x0.shape[0]
        R_old = st.camera_rotation()
        Xc = (x0 * self.scale) @ R_old.transpose(1, 2)  # camera frame
        cp = self.w.camera_prior
        if cp is None:
            pg, rg = torch.meshgrid(PITCH_GRID.to(x0.device), ROLL_GRID.to(x0.device), indexing="ij")
            pg, rg = pg.reshape(-1), rg.reshape(-1)
            k = self._grid_plausibility(Xc, pg[None].expand(B, -1), rg[None].expand(B, -1)).argmax(1)
            st.pitch, st.roll = pg[k], rg[k]
        else:
            rows = torch.arange(B, device=x0.device)
            ray = st.subject_ray[:, None] if st.subject_ray is not None else None  # [B, 1, 3]
            pv = cp.pitch_grid(x0.device)  # view pitches of the subject
            pg, rg = pv[None].expand(B, -1), st.roll[:, None].expand(B, pv.numel())
            if ray is not None:
                pg = pitch_for_view(pg, rg, ray)
            noise = self._tilt_noise(Xc)
            local = local and not self.w.tilt_sample
            near = None
            if local:  # grid view pitches within one step of the current one
                v = view_pitch(st.pitch, st.roll, st.subject_ray) if ray is not None else st.pitch
                near = _near_index(pv, v)
            if self.w.tilt_sample:  # a draw from the whole grid's posterior
                post = cp.tilt_posterior(self._grid_plausibility(Xc, pg, rg, noise), pg, rg, ray)
                k, known = cp.draw(post, st.generator, sample=True), None
            else:  # its argmax, by branch and bound
                k, plaus = cp.best_tilt(self._plausibility_at(Xc, pg, rg, noise), pg, rg, ray, allowed=near,
                                        whole_below=WHOLE_GRID_ROWS)
                known = plaus[rows, k]  # the roll grid's point at the current roll is this one
            pitch = pg[rows, k]
            rv = cp.roll_values(x0.device)
            r_now = rg[:, :1] == rv[None]  # [B, R]
            near = _near_index(rv, st.roll) if local else None
            rg, pg = rv[None].expand(B, -1), pitch[:, None].expand(B, rv.numel())
            if self.w.tilt_sample:
                k = cp.tilt_posterior(self._grid_plausibility(Xc, pg, rg, noise), pg, rg, ray).argmax(1)
            else:
                known = torch.where(r_now, known[:, None], torch.full_like(r_now, math.nan, dtype=pg.dtype))
                k, _ = cp.best_tilt(self._plausibility_at(Xc, pg, rg, noise), pg, rg, ray, known=known, allowed=near,
                                   whole_below=WHOLE_GRID_ROWS)
            st.pitch, st.roll = pitch, rg[rows, k]
        R_new = st.camera_rotation()
        M = R_old.transpose(1, 2) @ R_new  # old world -> camera -> new world
        return (Xc @ R_new) / self.scale, x_t @ M

    @staticmethod
    def _tilt_noise(Xc: torch.Tensor) -> torch.Tensor:
        """``[B, 1, J, 3]`` the grid's noise: one draw per hypothesis (seeded), the same for all its tilts."""
        g = torch.Generator().manual_seed(1234)
        return torch.randn((Xc.shape[0], 1) + tuple(Xc.shape[1:]), generator=g).to(Xc.device)

    def _plausibility_at(self, Xc: torch.Tensor, pitch: torch.Tensor, roll: torch.Tensor, noise: torch.Tensor):
        """callable(rows ``[n]``, cols ``[n]``) -> ``[n]``: :meth:`_grid_plausibility` of hypothesis
        ``rows[i]`` under grid tilt ``cols[i]`` of ``pitch``, ``roll`` (``[B, G]``), for
        :meth:`~backend.prior.camera_prior.CameraPrior.best_tilt`."""
        return lambda r, c: self._grid_plausibility(Xc[r], pitch[r, c][:, None], roll[r, c][:, None], noise[r])[:, 0]

    def _grid_plausibility(self, Xc: torch.Tensor, pitch: torch.Tensor, roll: torch.Tensor,
                           noise: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`plausibility` of camera-frame poses ``Xc`` (``[B, J, 3]``, m) seen upright under
        tilts ``pitch``, ``roll`` (``[B, G]`` radians): ``[B, G]``.

        One noise draw per hypothesis, the same for all its tilts (``noise``, default
        :meth:`_tilt_noise`), so the grid compares the tilts rather than the noise draws.
        """
        B, G_ = pitch.shape
        Rg = tilt_batch(pitch.reshape(-1), roll.reshape(-1)).view(B, G_, 3, 3)
        cand = torch.einsum("bjc,bgcd->bgjd", Xc, Rg) / self.scale  # camera -> upright: v @ R
        n = self._tilt_noise(Xc) if noise is None else noise
        t = 100
        a = float(self.sched.alphas_cumprod[t])
        xt = (math.sqrt(a) * cand + math.sqrt(1 - a) * n).reshape(B * G_, -1, 3)
        x0 = self.model(xt, torch.full((B * G_,), t, device=Xc.device, dtype=torch.long)).view(B, G_, -1, 3)
        return -((x0 - cand) * self.scale).norm(dim=-1).mean(-1)

    def _finish(self, x0: torch.Tensor, st: SampleState) -> SampleResult:
        """The result of the final x0: each term's :meth:`~backend.prior.guidance.GuidanceTerm.finish`
        (log-likelihood, camera fields, known joints snapped), the world placement, plausibility."""
        Xm = x0 * self.scale
        Xm = Xm - Xm[:, :1]
        B = Xm.shape[0]
        res = SampleResult(world_rel=Xm.cpu().numpy())
        final = G.FinalPose(model=Xm)
        if st.world_anchored:
            Ry, ty = st.align_world(Xm)
            final.world = Xm @ Ry.transpose(1, 2) + ty[:, None]
        ll = torch.zeros(B, device=Xm.device)
        count = 0
        for term in st.terms:
            got = term.finish(final, res)
            if got is not None:
                ll = ll + got[0]
                count += got[1]
        if final.world is not None:
            res.world_rel = (final.world - final.world[:, :1]).cpu().numpy()
            res.world_root = final.world[:, 0].cpu().numpy()
        res.loglik = (ll / max(count, 1)).cpu().numpy()
        res.plausibility = self.plausibility(Xm, draws=self.plausibility_draws, common=self.common_plausibility).cpu().numpy()
        return res

    @torch.no_grad()
    def plausibility(self, Xm: torch.Tensor, t: int = 100, draws: int = 2, common: bool = False) -> torch.Tensor:
        """Denoiser agreement: ``-|D(sqrt(abar) x + sqrt(1-abar) eps, t) - x|`` averaged over joints (metres).

        Poses typical of the prior are reproduced by the denoiser after a little noise; fixed noise
        (seeded) keeps it deterministic. ``Xm``: ``[B, J, 3]`` metres, upright frame; the mean over
        ``draws`` noise draws. ``common``: every pose gets the same draws (common random numbers),
        so the differences between poses, what a ranking compares, are not differences of their
        noise draws (:data:`backend.ranking.PLAUSIBILITY_DRAWS`).
        """
        g = torch.Generator().manual_seed(1234)
        x = Xm / self.scale
        a = float(self.sched.alphas_cumprod[t])
        out = 0
        for _ in range(draws):
            n = torch.randn((1,) + tuple(x.shape[1:]) if common else x.shape, generator=g).to(x.device).expand(x.shape)
            xt = math.sqrt(a) * x + math.sqrt(1 - a) * n
            x0 = self.model(xt, torch.full((x.shape[0],), t, device=x.device, dtype=torch.long))
            out = out + ((x0 - x) * self.scale).norm(dim=-1).mean(-1)
        return -out / draws
