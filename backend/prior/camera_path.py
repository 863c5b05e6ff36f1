"""Where a moving camera went, from the feet of the person it films (a tracking shot).

A camera that travels with the person (a phone carried alongside someone walking, a dolly, a
car) moves the whole scene in its frames: the person, who walks, can stay in the middle of the
frame, so a track that takes the camera as fixed makes them walk on the spot with their feet
sliding backwards under them. The rays of one camera cannot tell "the person moved" from "the
camera moved"; the body can: a foot that carries the weight does not slide on the floor. So with
the camera's centre at ``C_t`` (world frame, metres; ``C_0 = 0``), the world joints are
``X_t = X_t^fixed + C_t`` (``X^fixed`` the joints as a fixed camera would place them), and the
camera's velocity ``u_t = dC_t/dt`` is the one that holds the supporting foot still:

``min_u  sum_t sum_f w_ft rho(|v_ft + u_t|)  +  lam |D2 u|^2``

over the foot points ``f`` (each foot's ankle and toe: a foot rolls from heel to toes while it
carries the weight), ``v_ft`` a point's horizontal velocity in ``X^fixed`` (central
differences), ``w_ft`` how likely it carries the weight at ``t`` (near the floor under the
person, on the lower foot, not rising or sinking: :func:`support_weights`), ``rho`` a Cauchy
loss (iteratively reweighted least squares from a windowed weighted median, ``PATH_SLIP`` m/s)
so a swinging foot that passes low does not drag the camera, and the second-difference penalty a
Whittaker smoother (Eilers 2003; :func:`backend.prior.track.whittaker_smooth`) on the camera's
velocity: a camera does not jerk.
Frames where no foot is down (a run's flight, a jump) take the curve through their neighbours.
``C_t`` is then the velocity's running integral (trapezoid rule); before the first and after
the last supported frame the velocity is held. Only the horizontal motion is recovered (the
camera is taken to stay at one height over a level floor).

The same constraint that foot-skate cleanup uses on the root (Kovar et al. 2002), and that
world-frame human motion estimators use to separate the camera's motion from the person's when
they have no scene reconstruction (e.g. the contact-based root trajectory of WHAM, Shin et al.
2024, sec. 3.3): here it is applied to the camera instead of the body. A person who really
slides (skating, a moving walkway, a treadmill) is taken as standing on a moving camera's floor.
"""

from __future__ import annotations

import numpy as np

from backend.prior.contacts import FEET

#: Standard deviation of a supporting foot's lowest point above the floor (metres) and the
#: softness of "lower than the other foot" (metres) in :func:`support_weights`.
SUPPORT_HEIGHT = 0.03
SUPPORT_LOWER = 0.02
#: Window of :func:`local_floor` (seconds).
FLOOR_WINDOW_S = 1.5
#: Standard deviation of a supporting point's vertical speed (m/s).
SUPPORT_VZ = 0.1
#: Scale of the Cauchy loss on a foot's residual velocity (m/s): a planted foot's estimated
#: velocity is mostly under it, a swinging foot's is 2-4 m/s off.
PATH_SLIP = 0.15
#: The smoother's ``lam`` on the camera's velocity (frames, at 25 fps).
PATH_LAMBDA = 800.0
#: A frame counts as supported when its weights sum to at least this (for the report).
MIN_SUPPORT = 0.2
#: Chosen on the responses of 4 CMU walks (07_01-07_04, ``posediff eval tracking``'s cameras, each
#: from a travelling and from a still camera; the camera's travel error per frame / the distance
#: walked, travelling / still): height 0.06 m, vertical speed 0.2 m/s, slip 0.3 m/s, lam 200, a
#: running-minimum floor and the clip's mean as the start 34.7 % at the end of the walk (travelling
#: only); the windowed-median start and the local floor's line 11.0 / 13.4 %; height 0.03 (0.02 /
#: 0.045: 11.7 / 13.0, 11.2 / 14.2); vertical speed 0.1 and slip 0.15 7.3 / 10.8 (slip 0.1 the
#: same, 0.5 16.0 %); lam 800 7.2 / 10.6 (20 / 3000: 8.0 / 11.4, 7.0 / 10.3). A cue that the
#: supporting foot moves backwards under the body (walking forwards) gave -3 points on the
#: travelling camera and was not kept (it fails a person walking backwards); nor were 6 more
#: reweighting passes, an annealed slip (0.075, then 0.0375 m/s) or a refit weighted by the
#: contacts found with the first path (7.2 / 10.6 -> 6.8 / 9.9, 6.8 / 9.6, 6.8 / 9.0 %: within
#: what four walks can tell apart).


def support_weights(world_abs: np.ndarray, fps: float) -> np.ndarray:
    """How likely each foot point carries the weight: ``[T, J, 3]`` world joints (Z up, metres) ->
    ``[T, 2, 2]`` in 0..1 (foot: left, right; point: ankle, toe).

    A foot rolls over its points (heel strike on the ankle's side, push-off on the toes), so each
    point is measured against its own height when down (the 5th percentile of its Z over the
    clip, above the floor under the person at that time, :func:`local_floor`): a point ``h`` above it, on a foot ``dh`` above the other foot (the lower of its two
    points), ``dp`` above the foot's other point, and rising or sinking at ``v_z`` (a heel coming
    down to land, an ankle lifting at push-off; no horizontal motion of the camera changes
    heights) gets ``exp(-h^2 / 2 SUPPORT_HEIGHT^2) * sigmoid(-dh / SUPPORT_LOWER) *
    sigmoid(-dp / SUPPORT_LOWER) * exp(-v_z^2 / 2 SUPPORT_VZ^2)``: both feet flat on the floor
    about a quarter each point, a raised foot about none.
    """
    pts = np.stack([np.stack([world_abs[:, ank, 2], world_abs[:, toe, 2]], -1) for _, _, _, ank, toe in FEET], 1)
    h = pts - local_floor(pts.reshape(len(pts), -1).min(1), fps)[:, None, None]
    h = h - np.percentile(h, 5, axis=0)  # [T, 2, 2] each point above its own height when down
    near = np.exp(-0.5 * (np.maximum(h, 0.0) / SUPPORT_HEIGHT) ** 2)
    foot = h.min(-1)  # [T, 2]
    lower_foot = 1.0 / (1.0 + np.exp((foot - foot[:, ::-1]) / SUPPORT_LOWER))
    lower_point = 1.0 / (1.0 + np.exp((h - h[..., ::-1]) / SUPPORT_LOWER))
    still = np.exp(-0.5 * (np.gradient(h, axis=0) * fps / SUPPORT_VZ) ** 2) if len(h) >= 2 else 1.0
    return near * lower_foot[..., None] * lower_point * still


def _half_window(seconds: float, fps: float) -> int:
    """Frames on each side of a window of ``seconds`` (at least 2)."""
    return max(2, int(round(seconds * fps / 2)))


def _windowed_median(x: np.ndarray, w: np.ndarray, half: int) -> np.ndarray:
    """Per frame, the weighted median (each axis) of the candidates ``x [T, P, 2]`` (weights ``w [T, P]``)
    of the frames within ``half`` of it: ``[T, 2]``. The supporting foot's candidates agree from frame to
    frame; a swinging foot's do not, so they rarely hold the median."""
    T = len(x)
    out = np.zeros((T, x.shape[-1]))
    for t in range(T):
        sl = slice(max(0, t - half), t + half + 1)
        xs, ws = x[sl].reshape(-1, x.shape[-1]), w[sl].reshape(-1)
        if ws.sum() <= 0:
            continue
        for a in range(x.shape[-1]):
            o = np.argsort(xs[:, a])
            c = np.cumsum(ws[o])
            out[t, a] = xs[o[np.searchsorted(c, 0.5 * c[-1])], a]
    return out


def local_floor(lowest: np.ndarray, fps: float, seconds: float = FLOOR_WINDOW_S) -> np.ndarray:
    """The floor's height under the person over time: ``[T]`` lowest foot point per frame (Z, metres) ->
    ``[T]``: about each frame, a line fitted to the lowest points of a window of ``seconds`` (a stride
    or more, so it holds a foot that is down), moved down to their 10th percentile. A floor that is
    level in the world of the camera's estimated tilt stays one height; a few degrees of tilt error
    (or a root depth that drifts) make it a slope along a walk, which this follows without the lag
    of a running minimum."""
    half = _half_window(seconds, fps)
    T = len(lowest)
    out = np.empty(T)
    for t in range(T):
        s = np.arange(max(0, t - half), min(T, t + half + 1))
        A = np.stack([np.ones(len(s)), s - t], 1)
        coef = np.linalg.lstsq(A, lowest[s], rcond=None)[0]
        out[t] = coef[0] + np.percentile(lowest[s] - A @ coef, 10)
    return out


def camera_path_from_feet(world_abs: np.ndarray, fps: float, lam: float | None = None,
                          iters: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """The camera's travel that keeps the supporting foot still (see the module docstring).

    Args:
        world_abs: ``[T, J, 3]`` absolute joints in the first frame's world frame (Z up, metres) as a
            fixed camera places them (the track's, before its feet are planted).
        fps: frames per second (> 0); ``lam`` is scaled by ``(fps / 25)^4`` (the same cut-off in Hz).
        lam: the Whittaker smoother's ``lam`` on the camera's velocity (default :data:`PATH_LAMBDA`);
            iters: reweighting passes.
    Returns:
        ``(C [T, 3]`` the camera centre's position relative to the first frame's, world frame,
        metres, ``Z = 0``; ``supported [T]`` bool, frames where a foot was found carrying the weight).
        A clip of under 3 frames, or one where no foot ever touches, gives ``C = 0``.
    Raises:
        ValueError: ``world_abs`` not ``[T, J, 3]`` or not finite, or fps not positive.
    """
    from backend.prior.track import whittaker_smooth

    X = np.asarray(world_abs, np.float64)
    if X.ndim != 3 or X.shape[-1] != 3 or not np.isfinite(X).all():
        raise ValueError(f"world_abs must be a finite [T, J, 3] array (got shape {X.shape})")
    if not fps > 0:
        raise ValueError(f"fps must be positive (got {fps})")
    T = len(X)
    C = np.zeros((T, 3))
    if T < 3:
        return C, np.zeros(T, bool)
    w0 = support_weights(X, fps).reshape(T, 4)  # left ankle, left toe, right ankle, right toe
    pts = [j for _, _, _, ank, toe in FEET for j in (ank, toe)]
    v = np.gradient(X[:, pts, :2], axis=0) * fps  # [T, 4, 2] m/s
    supported = w0.sum(1) >= MIN_SUPPORT
    if not supported.any():
        return C, supported
    lam_t = (PATH_LAMBDA if lam is None else lam) * (fps / 25.0) ** 4
    u = _windowed_median(-v, w0, _half_window(FLOOR_WINDOW_S, fps))  # the start: robust to the swing
    for _ in range(iters):
        r = np.linalg.norm(v + u[:, None], axis=-1)  # [T, 4] residual speed of each foot point
        w = w0 / (1.0 + (r / PATH_SLIP) ** 2)
        W = w.sum(1)
        target = -(w[..., None] * v).sum(1) / np.maximum(W, 1e-9)[:, None]
        u = whittaker_smooth(target, lam_t, np.maximum(W, 1e-6))
    on = np.flatnonzero(supported)  # before the first supported frame and after the last: held, not extrapolated
    u[: on[0]], u[on[-1] + 1 :] = u[on[0]], u[on[-1]]
    dt = 1.0 / fps
    C[1:, :2] = np.cumsum((u[1:] + u[:-1]) * 0.5 * dt, axis=0)
    return C, supported
