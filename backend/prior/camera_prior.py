"""A prior over how photos of people are taken: camera pitch and roll relative to gravity, subject distance.

A single photo does not fix the camera's tilt: the 2D evidence is fitted equally well by a
person lying on the floor seen from eye height and by a near-standing person seen steeply from
above and close (the scale-depth-tilt ambiguity; issue 13). The pose prior alone prefers
"standing" (most training poses stand), so the tilt is weighed with how photos are taken:

* **pitch** (radians, + = looking down; searched over -30..+70 degrees in 10-degree steps):
  hand-held and tripod photos see the person from about level. The prior and the search grid
  are over the **view pitch**, the angle below the horizon of the camera ray to the subject
  (the pelvis; :func:`view_pitch`), not over the optical axis: how the person is framed moves
  the optical axis but not the direction the person is seen from, and with a wide lens the
  framing alone tilts the axis by up to +-24 degrees (24 mm, the pelvis anywhere within 80 % of
  the half field of view) where the view pitch stays within -5..+20. A two-component Gaussian
  mixture in degrees, ``0.8 N(4, 10^2) + 0.2 N(12, 28^2)``: the first for photos taken from
  0.3-2.5 m height at 3-7 m, the second for steeper views (from a balcony, a drone, the floor)
  that need evidence; against level, 45 degrees costs 3.2 nats, 70 degrees 4.6, -30 degrees 3.5.
  For a subject at the image centre the view pitch is the camera pitch.
* **roll** (searched over -20..+20 degrees in 10-degree steps): ``0.9 N(0, 4^2) + 0.1 N(0, 12^2)``
  degrees (photos are held about upright; 10 degrees costs 2.7 nats, 20 degrees 4.7).
* **subject distance** (pelvis depth, metres): log-normal, median 4 m, ``sigma = 0.45`` in log
  (full-body photos at 2-8 m); used when ranking hypotheses, not in the search (the depth does
  not change with the tilt).

Why the view pitch (issue 13, 24 mm lens): with the prior, the grid and the starting pitch (8
degrees) on the optical axis, a subject framed off-centre was lifted as if seen from the axis'
pitch: on 8 S8 frames away from standing (24 mm, 4 px) the true camera pitch ranged -20..+22
degrees but every candidate ended at 0 or +10 (the view pitch, -3..+18, is what the 2D and the
pose prior see), and the best-of-20 was 101 mm, 66 mm with the true camera rotation given.
Over the view pitch (the retilt weighing each hypothesis' pelvis ray, the start the pelvis' 2D
ray): best-of-1 / best-of-20 154.6 / 101.1 -> 114.4 / 65.1 mm, exact 2D 24 mm 117.1 / 90.1 ->
84.2 / 53.0, 50 mm noisy 77.0 / 51.1 -> 70.4 / 53.0 (starting from the centroid of the 2D
instead: 113.6 / 63.1, 80.4 / 54.2, 59.6 / 51.7, but a person lying on the floor seen from eye
height, tests/test_photo_geometry.py, lost its close hypotheses: best-of-20 121 mm). The rest of
the gap to 50 mm is the eval's framing, not the lens model: at the issue's 3-7 m a 24 mm photo
shows the person at about 60 % of the pixel height of a 50 mm one (266 vs 454 px on those
frames), so the 4 px noise weighs 1.7 times more; at 0.55 times the distance (1.7-3.9 m,
stronger perspective, 364 px) 24 mm gave 67.8 / 49.6, with 2 px noise 80.7 / 52.3 (both with
the centroid start).

On the lab protocol's centred cameras (``posediff eval lift --frames 30``, best-of-1 / best-of-20 /
aggregate mm) the view pitch costs a little where the 2D is exact, and the *start* is not why:
S8 exact 54.9 / 39.9 / 46.7 on the optical axis, 56.6 / 41.2 / 47.8 over the view pitch, 54.6 /
39.4 / 47.4 with the view-pitch prior and grid but the old start (camera pitch 8 degrees); noisy
70.0 / 50.0 / 63.4, 67.2 / 49.4 / 63.1, 69.2 / 49.9 / 63.5; limbs 85.8 / 60.6 / 75.8, 88.4 / 61.2
/ 78.1, 87.3 / 60.3 / -. On S9/S11 the old start gave exact 58.3 / 41.6 / 52.0, noisy 80.6 / 57.2
/ 67.8, limbs 103.4 / 73.7 / 92.2 against the view start's 58.9 / 41.6 / 51.9, 76.7 / 57.2 / 67.4,
104.4 / 77.0 / 94.0, and moving the start by 1 degree alone gave 59.6 / 41.7 / 52.6, 79.3 / 57.1
/ 69.0, 106.7 / 77.0 / 94.8: differences of this size are the draw of the sampling path. On S8 no
variant beat that spread: a 5-degree grid (exact 60.0 / 42.4 / 50.8, noisy 69.8 / 51.1 / 62.9),
a third re-tilt at 0.25 of the steps (61.0 / 41.0 / 48.7, 67.9 / 49.7 / 59.9), starts spread over
view pitches 2 / 8 / 14 (54.3 / 39.6 / 49.4, 69.4 / 50.0 / 61.1; photo away 16 frames exact 61.6 /
43.4 -> 67.7 / 43.7, 24 mm unpaired 91.1 / 58.0 -> 90.7 / 58.4) or 0 / 8 / 16 (worse), the hips' midpoint
as the start ray when the pelvis is not given (limbs 88.6 / 60.9). The hypotheses' view pitches
end on grid values next to the start (0 or 10 degrees where the lab's are -2..23): the re-tilt
scores poses that were shaped under the start's tilt, so it mostly confirms it.

The numbers are a judgement of typical photography, matched to the ranges of
``posediff eval lift --protocol photo`` (not fitted to its frames). The pose prior's plausibility
(metres of denoiser disagreement) enters the tilt posterior divided by ``temperature`` (0.02 m
per nat, chosen on S8 frames). :class:`CameraPrior` is used by
:meth:`backend.prior.sampler.GuidedSampler._retilt` when the request gives no camera rotation.
Two ways to keep several tilt modes alive are built in but off by default, because on S8 frames
(away from standing, 4 px noise, 12 frames) both made best-of-20 *worse* (52 -> 60 and 69 mm):
starting the hypotheses at pitches spread over the prior's quantiles
(:meth:`initial_pitches`, ``GuidanceWeights.tilt_spread``) and drawing each re-tilt from the
grid posterior instead of taking its maximum (:meth:`draw`, ``GuidanceWeights.tilt_sample``).
Refining the tilt between grid points (a parabola through the best grid pitch/roll and its
neighbours) was measured too and not kept: S8, best-of-1 / best-of-20 mm, photo away 10 frames
exact 64.2 / 47.5 -> 66.9 / 52.2, noisy 68.4 / 52.6 -> 67.8 / 55.3, lab noisy 24 frames 76.0 /
50.4 -> 73.1 / 53.3, the pitch error unchanged (6.2 -> 6.3 deg); a 5-degree grid gave the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


def _log_mixture(x_deg: torch.Tensor, comps: tuple) -> torch.Tensor:
    """log of ``sum_k w_k N(x; mu_k, sd_k^2)`` (degrees), up to a constant; ``comps = ((w, mu, sd), ...)``."""
    terms = [math.log(w) - math.log(sd) - 0.5 * ((x_deg - mu) / sd) ** 2 for w, mu, sd in comps]
    return torch.logsumexp(torch.stack(terms, 0), 0)


def _view_terms(roll: torch.Tensor, ray: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(a, b)`` with ``sin(view) = a cos p + b sin p`` for the unit ``ray``: ``a = cos r y - sin r x``, ``b = z``."""
    d = ray / ray.norm(dim=-1, keepdim=True).clamp(min=1e-9)
    return roll.cos() * d[..., 1] - roll.sin() * d[..., 0], d[..., 2]


def view_pitch(pitch: torch.Tensor, roll: torch.Tensor, ray: torch.Tensor) -> torch.Tensor:
    """Angle (radians, + = below the horizon) of the camera-frame direction ``ray`` (``[..., 3]``,
    any length, broadcast against ``pitch``/``roll``) for a camera tilted by ``pitch`` and ``roll``.

    World up in the camera frame is ``(sin r cos p, -cos r cos p, -sin p)``
    (:func:`backend.prior.geometry.tilt_batch`), so ``sin(view) = cos p (cos r y - sin r x) + sin p z``
    for the unit ray ``(x, y, z)``; the optical axis ``(0, 0, 1)`` gives ``view = pitch``.
    """
    a, b = _view_terms(roll, ray)
    return torch.asin((pitch.cos() * a + pitch.sin() * b).clamp(-1.0, 1.0))


def pitch_for_view(view: torch.Tensor, roll: torch.Tensor, ray: torch.Tensor) -> torch.Tensor:
    """The camera pitch (radians) under which ``ray`` (``[..., 3]`` camera frame) is seen at ``view``
    (radians below the horizon) with roll ``roll``: the inverse of :func:`view_pitch` in ``pitch``.

    ``sin(view) = a cos p + b sin p = rho sin(p + phi)`` with ``a = cos r y - sin r x``, ``b = z``,
    ``rho = hypot(a, b)``, ``phi = atan2(a, b)``; views beyond ``asin(rho)`` are clamped to it.
    """
    a, b = _view_terms(roll, ray)
    rho = torch.sqrt(a * a + b * b).clamp(min=1e-6)
    return torch.asin((view.sin() / rho).clamp(-1.0, 1.0)) - torch.atan2(a, b)


@dataclass(frozen=True)
class CameraPrior:
    """Camera-orientation and subject-distance prior with the tilt search grid (see the module doc).

    Attributes:
        pitch_mix, roll_mix: ``((weight, mean_deg, sd_deg), ...)`` Gaussian mixtures.
        pitch_range: searched pitches ``(lo, hi, step)`` in degrees; roll_grid: searched rolls (degrees).
        distance_median: metres; distance_sigma: log-space standard deviation.
        temperature: metres of denoiser disagreement per nat when plausibility is turned into a
            log-likelihood for the tilt posterior (:meth:`tilt_posterior`).
    """

    pitch_mix: tuple = ((0.8, 4.0, 10.0), (0.2, 12.0, 28.0))
    roll_mix: tuple = ((0.9, 0.0, 4.0), (0.1, 0.0, 12.0))
    pitch_range: tuple = (-30.0, 70.0, 10.0)
    roll_grid: tuple = (-20.0, -10.0, 0.0, 10.0, 20.0)
    distance_median: float = 4.0
    distance_sigma: float = 0.45
    temperature: float = 0.02

    def pitch_grid(self, device=None) -> torch.Tensor:
        """Searched view pitches of the subject (:func:`view_pitch`), radians ``[P]``."""
        lo, hi, step = self.pitch_range
        return torch.deg2rad(torch.arange(lo, hi + 1e-6, step, device=device))

    def roll_values(self, device=None) -> torch.Tensor:
        """Searched rolls, radians ``[R]``."""
        return torch.deg2rad(torch.tensor(self.roll_grid, device=device))

    def log_tilt(self, pitch: torch.Tensor, roll: torch.Tensor, ray: torch.Tensor | None = None) -> torch.Tensor:
        """Log prior (nats, up to a constant) of ``pitch`` and ``roll`` (radians, any equal shapes).

        With ``ray`` (``[..., 3]`` camera frame, towards the subject, broadcastable) the pitch
        mixture weighs the subject's view pitch (:func:`view_pitch`) instead of the optical axis'.
        """
        v = pitch if ray is None else view_pitch(pitch, roll, ray)
        return _log_mixture(torch.rad2deg(v), self.pitch_mix) + _log_mixture(torch.rad2deg(roll), self.roll_mix)

    def log_distance(self, depth: np.ndarray) -> np.ndarray:
        """Log prior (nats, up to a constant) of the pelvis depth (metres, ``[B]``)."""
        z = np.maximum(np.asarray(depth, np.float64), 0.05)
        return -0.5 * (np.log(z / self.distance_median) / self.distance_sigma) ** 2

    def initial_pitches(self, B: int, generator: torch.Generator, device=None) -> torch.Tensor:
        """``[B]`` starting pitches (radians): the prior's quantiles ``(k + 0.5) / B``, shuffled.

        Quantiles (not random draws) spread the hypotheses over the prior evenly at any ``B``.
        """
        lo, hi, _ = self.pitch_range
        xs = torch.linspace(lo, hi, 2001)
        pdf = torch.exp(_log_mixture(xs, self.pitch_mix))
        cdf = torch.cumsum(pdf, 0)
        cdf = cdf / cdf[-1]
        q = (torch.arange(B, dtype=torch.float32) + 0.5) / B
        p = xs[torch.searchsorted(cdf, q).clamp(max=len(xs) - 1)]
        p = p[torch.randperm(B, generator=generator)]
        return torch.deg2rad(p).to(device)

    def tilt_posterior(self, plausibility: torch.Tensor, pitch: torch.Tensor, roll: torch.Tensor,
                       ray: torch.Tensor | None = None) -> torch.Tensor:
        """Unnormalised log posterior of grid tilts: ``plausibility / temperature + log prior``.

        Args:
            plausibility: ``[B, G]`` negative denoiser disagreement (metres) of each hypothesis
                seen upright under each grid tilt; pitch, roll: ``[B, G]`` or ``[G]`` radians;
                ray: ``[B, 1, 3]`` towards the subject (camera frame) or None (:meth:`log_tilt`).
        Returns:
            ``[B, G]`` nats.
        """
        return plausibility / self.temperature + self.log_tilt(pitch, roll, ray)

    def best_tilt(self, plausibility_of, pitch: torch.Tensor, roll: torch.Tensor, ray: torch.Tensor | None = None,
                  known: torch.Tensor | None = None, allowed: torch.Tensor | None = None,
                  whole_below: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Index ``[B]`` of each hypothesis' grid tilt of highest :meth:`tilt_posterior`, the same
        argmax as over the whole grid, evaluating the plausibility only where it can win.

        Branch and bound (Land & Doig 1960): the plausibility is a negative distance, so a grid
        tilt's posterior ``plausibility / temperature + log_tilt`` is at most its log prior. The
        tilts are visited in descending log prior (one batch of hypotheses per rank) and a tilt whose
        log prior is below the best posterior already found for that hypothesis cannot be its
        maximum and is skipped. With this prior and the denoiser's ~5 cm disagreement (2.5 nats)
        about 6.5 of the 11 pitches and 2 of the 5 rolls are evaluated (a 40-frame sequence).

        Args:
            plausibility_of: callable(rows ``[n]``, cols ``[n]``) -> ``[n]`` plausibility (metres,
                <= 0) of hypothesis ``rows[i]`` under grid tilt ``cols[i]``.
            pitch, roll: ``[B, G]`` grid tilts (radians); ray: as in :meth:`tilt_posterior`.
            known: ``[B, G]`` plausibilities already computed (NaN where not), reused as they are.
            allowed: ``[B, G]`` bool, the tilts searched (default all; at least one per row).
            whole_below: evaluate every (allowed) tilt in one call when ``B * G`` is at most this:
                for a small batch one call costs less than the rounds (a photo's 60 candidates).
        Returns:
            (index ``[B]``, plausibility ``[B, G]``, NaN where it was not evaluated).
        """
        lp = self.log_tilt(pitch, roll, ray)  # [B, G]: upper bound of the posterior
        B, G = lp.shape
        plaus = torch.full_like(lp, math.nan) if known is None else known.clone()
        seen = ~torch.isnan(plaus)
        post = torch.where(seen, plaus / self.temperature + lp, torch.full_like(lp, -math.inf))
        if allowed is not None:
            post = torch.where(allowed, post, torch.full_like(lp, -math.inf))
            seen = seen | ~allowed
        rows = torch.arange(B, device=lp.device)
        if B * G <= whole_below:
            r, cr = (~seen).nonzero(as_tuple=True)
            if r.numel():
                v = plausibility_of(r, cr)
                plaus[r, cr] = v
                post[r, cr] = v / self.temperature + lp[r, cr]
            return post.argmax(1), plaus
        order = torch.argsort(lp, dim=1, descending=True, stable=True)
        for k in range(G):
            c = order[:, k]
            can = lp[rows, c] >= post.amax(1)  # may still beat the best found
            if not bool(can.any()):
                break  # log priors only decrease along ``order`` and the best only grows
            r = (can & ~seen[rows, c]).nonzero()[:, 0]
            if r.numel():
                cr = c[r]
                v = plausibility_of(r, cr)
                plaus[r, cr] = v
                seen[r, cr] = True
                post[r, cr] = v / self.temperature + lp[r, cr]
        return post.argmax(1), plaus

    @staticmethod
    def draw(logpost: torch.Tensor, generator: torch.Generator | None, sample: bool = True) -> torch.Tensor:
        """Index ``[B]`` of one grid tilt per hypothesis: a draw from ``softmax(logpost)`` (or its argmax)."""
        if not sample:
            return logpost.argmax(1)
        p = torch.softmax(logpost - logpost.amax(1, keepdim=True), 1)
        return torch.multinomial(p.cpu(), 1, generator=generator)[:, 0].to(logpost.device)
