"""One camera tilt for a clip: the pitch and roll that make a sequence's poses most typical together.

A fixed camera films the whole clip, so every frame is seen with the same pitch and roll relative
to gravity. A single frame fixes the tilt poorly: its hypotheses are re-tilted on a 10-degree grid
of view pitch against the pose prior and the photo prior (:mod:`backend.prior.camera_prior`), and
the prior, applied once per frame, pulls every frame toward level (on 8 S8 lab clips whose true
pitch was 5-18 degrees the frames' median was off by 5.0 degrees on average, 3.3 too low).

Here the tilt is the maximum of the clip's marginal likelihood over a fine grid, the camera prior
counted once (an empirical-Bayes estimate of the one parameter the frames share):

``(p, r) = argmax  log p(p, r) + sum_f log (1/K) sum_k exp(plaus(X_fk; p, r) / T)``

with ``X_fk`` the ``K`` best hypotheses of frame ``f`` (camera frame, root-relative: they fit the
2D whatever the tilt), ``plaus`` the pose prior's agreement with the pose seen upright under the
tilt (:meth:`backend.prior.sampler.GuidedSampler._grid_plausibility`, metres, the same score the
per-hypothesis re-tilt maximises in Snelgar et al. 2026's tilt search), ``T`` the camera prior's
temperature and ``log p`` its tilt prior (:meth:`~backend.prior.camera_prior.CameraPrior.log_tilt`,
over the view pitch of the mean subject ray). Pitch is searched first at roll 0, then roll at that
pitch, then pitch again at that roll.
"""

from __future__ import annotations

import math

import numpy as np
import torch

#: Searched camera pitches (degrees: low, high, step) and rolls (degrees: low, high, step).
PITCH_RANGE = (-30.0, 70.0, 1.0)
ROLL_RANGE = (-20.0, 20.0, 1.0)
#: Weight of the camera prior's log tilt in the clip score (1: counted once for the clip).
PRIOR_WEIGHT = 1.0


def clip_tilt(sampler, poses: np.ndarray, ray: np.ndarray | None = None) -> tuple[float, float]:
    """The clip's camera pitch and roll (radians) from its frames' best hypotheses (see the module doc).

    Args:
        sampler: a :class:`backend.prior.sampler.GuidedSampler` (its denoiser and camera prior).
        poses: ``[F, K, J, 3]`` the ``K`` best hypotheses of each of ``F`` frames, camera frame,
            pelvis at the origin, metres.
        ray: ``[3]`` camera-frame direction towards the subject (the mean pelvis position), for
            the view-pitch prior; None: the optical axis.
    Returns:
        (pitch, roll) in radians (+ pitch looks down).
    Raises:
        ValueError: ``poses`` not ``[F, K, J, 3]`` with ``F, K >= 1``, or not finite.
    """
    X = np.asarray(poses, np.float64)
    if X.ndim != 4 or X.shape[-1] != 3 or min(X.shape[:2]) < 1 or not np.isfinite(X).all():
        raise ValueError(f"clip_tilt: poses must be finite [F, K, J, 3] (got {X.shape})")
    F, K = X.shape[:2]
    cp = sampler.w.camera_prior
    dev = sampler.device
    Xc = torch.as_tensor(X.reshape(F * K, *X.shape[2:]), dtype=torch.float32, device=dev)
    r_t = None if ray is None else torch.as_tensor(np.asarray(ray, np.float64) / np.linalg.norm(ray), dtype=torch.float32, device=dev)
    temp = cp.temperature if cp is not None else 0.02

    def best(pitch: torch.Tensor, roll: torch.Tensor) -> int:  # [G] each -> index of the highest clip score
        G = pitch.numel()
        with torch.no_grad():
            pl = sampler._grid_plausibility(Xc, pitch[None].expand(F * K, G), roll[None].expand(F * K, G))  # [FK, G]
        ll = torch.logsumexp((pl / temp).reshape(F, K, G), 1).sum(0) - F * math.log(K)
        if cp is not None:
            ll = ll + PRIOR_WEIGHT * cp.log_tilt(pitch, roll, None if r_t is None else r_t.expand(G, 3))
        return int(ll.argmax())

    pg = torch.deg2rad(torch.arange(PITCH_RANGE[0], PITCH_RANGE[1] + 1e-6, PITCH_RANGE[2], device=dev))
    rg = torch.deg2rad(torch.arange(ROLL_RANGE[0], ROLL_RANGE[1] + 1e-6, ROLL_RANGE[2], device=dev))
    pitch = pg[best(pg, torch.zeros_like(pg))]
    roll = rg[best(torch.full_like(rg, float(pitch)), rg)]
    pitch = pg[best(pg, torch.full_like(pg, float(roll)))]
    return float(pitch), float(roll)
