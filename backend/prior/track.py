"""A temporally coherent track through the per-frame hypotheses of a sequence.

The sampler gives each frame of a video several hypotheses (where the photo is ambiguous: a
limb's depth, front/back). Picking each frame's best on its own makes the rig jump between
hypotheses; this module chooses a consistent path and smooths it, working only on the service's
per-frame arrays (camera-frame root-relative joints, scores, root translations), never on
sampler internals:

1. **Path** (:func:`hypothesis_posterior`): a hidden Markov model whose states are the frame's
   hypotheses, unary ``score / tau`` (the service's standardised rank score) and a Gaussian motion
   model ``-|X_t^k - X_{t-1}^l|^2 / (2 J sigma_m^2 dt)`` between consecutive frames' root-relative
   poses. Viterbi (max-product, Viterbi 1967; Rabiner 1989 eq. 105) gives the single best path;
   forward-backward (sum-product, Rabiner 1989 eqs. 19-27) gives each frame's posterior over its
   hypotheses, whose mean is the minimum-mean-square-error pose. The track's pose (default) is
   the mean under the *squared* posterior, renormalised (:func:`sharpened`,
   ``TrackOptions.posterior_power``): between the posterior mean and the most probable
   hypothesis; the Viterbi path is what the response reports as each frame's hypothesis. The
   same multi-hypothesis tracking idea as MHT (Reid 1979) and as temporal selection in
   multi-hypothesis lifting (e.g. Li & Lee 2019), here on the diffusion prior's samples.
2. **Gaps** (frames without hypotheses: no person found): linear interpolation of the pose and
   the root between the nearest frames with hypotheses (held at the ends), with a warning; the
   smoother then fills the pose of an interior gap from the curve through its neighbours.
3. **Filter**: a Whittaker smoother (Whittaker 1923, Eilers 2003: least squares with a penalty
   on the second differences, i.e. on the acceleration; :func:`whittaker_smooth`) on the
   root-relative joints, then the canonical bone lengths are restored (same skeleton every
   frame). A frame whose hypothesis the animator fixed (per-frame override) is pinned in the
   smoother (:data:`FIXED_WEIGHT`), so the frames around it follow it smoothly. A Savitzky-Golay
   filter (Savitzky & Golay 1964) is the alternative (``TrackOptions.smoother``).
4. **Root trajectory**: re-solved per frame from the 2D anchors for the smoothed pose (closed form,
   ZeDO eq. 6, :func:`backend.prior.geometry.solve_root_translation`), then smoothed by the
   Whittaker smoother, depth more strongly than the image-plane position (depth is what the rays
   constrain least).
5. **Foot contact** (:mod:`backend.prior.contacts`): in the world frame (Z up, one camera tilt for the clip),
   a foot whose lowest point is near the floor and whose ankle moves slower than a threshold is
   in contact; the root is first moved along its camera ray so that the planted feet stand still
   (:func:`backend.prior.contacts.steady_root`: a planted foot is evidence of the root's depth),
   then over each contact the ankle is held at one point on the floor and the leg is
   re-solved by analytic two-bone IK (hip fixed, knee kept in its bend plane), blended in and
   out over a few frames (as in the foot-skate cleanup of Kovar et al. 2002, simplified).
   A camera that travels with the person (``moving_camera``, a tracking shot) is first given the
   path that keeps the supporting foot still (:mod:`backend.prior.camera_path`), added to the
   world frame before the contacts are found.

Frames and units: camera frame (OpenCV, metres) for ``joints`` and ``root``; world frame (Z up,
metres) from the shared world->camera rotation ``R``: ``x_world = R^T x_cam``. A camera that turns
during the clip (a handheld phone's shake, a pan; ``motion``: ``x_cam_t = M_t x_cam_0``) is undone
first: every step above then works in the first frame's camera frame, where a person standing
still stays still instead of swaying with the camera, and the result is turned back into each
frame's camera at the end (its world frame is the first frame's).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from backend.prior.camera_path import camera_path_from_feet
from backend.prior.contacts import contact_plane, detect_contacts, floor_height, plant_feet, steady_root
from backend.skeleton import NUM_JOINTS

#: The Whittaker smoother's weight on a frame whose hypothesis is fixed (per-frame override),
#: against 1 on the others: the smoothed track passes within a fraction of a millimetre of it.
#: Measured (tests/test_sequence.py's clip, an override moving its frame by 213 mm at 25 fps):
#: the frames 1 / 2 / 3 / 5 / 8 away move 92 / 79 / 61 / 23 / 1 % of that toward it.
FIXED_WEIGHT = 1e4


@dataclass
class TrackOptions:
    """Settings of :func:`solve_track`, first chosen on 4 clips x 40 frames of the training subject
    S8 (``posediff eval sequence --subjects S8``; grid over path, motion sigma 0.03-1 m, score
    temperature 0.15-3, window 9-27, order 2-3) before the 2D keypoint filter
    (``backend.sequence.FILTER_2D_WINDOW``): Viterbi 37.0 mm / 4.0 mm/frame^2 against the
    posterior mean's 44.0 / 7.2 and the 5-frame moving average of best-of-1's 44.6 / 24.0.

    Re-tuned with the 2D filter on (9 frames, order 1), 8 S8 clips x 40 frames (``--subjects S8
    --clips 8``, one cached sampling, every row from the same hypotheses; MPJPE mm / accel
    mm/frame^2 / foot sliding cm/s): the old settings 45.3 / 4.0 / 0.29 against the moving
    average's 44.1 / 16.0. The Viterbi path depends only on ``score_temperature / motion_sigma^2``:
    0.3 / 0.15^2 (13) 45.3, 0.3 / 0.27^2 (4.1) 44.0, 0.3 / 0.22^2 44.1, 0.3 / 0.35^2 44.6, a
    strong motion model (sigma 0.02-0.05 m) 47-62 (6 clips, root-relative, no feet). Feet on the
    plane through the contacts (``floor_plane``) instead of the level floor: 44.0 -> 43.2 / 4.1 /
    0.06 (the level floor of a world tilted by the 10-degree tilt grid bends the planted legs; no
    feet at all: 42.6 but 13.6 cm/s sliding). Savitzky-Golay window / order then (8 clips, full
    track): 27 / 2 43.2 / 4.1, 31 / 3 43.2 / 4.0 (kept), 35 / 3 43.6 / 3.7, 41 / 3 44.2 / 3.5,
    21 / 2 42.2 / 5.1, 31 / 2 44.2 / 3.8; root depth smoothing 0.1-0.4 s: within 0.2 mm.
    Then the hypotheses' reprojection error in the unary (``reprojection_weight``; the rank score
    standardises its evidence fit per frame, so a path gains little from frames where one
    hypothesis fits the 2D clearly better), 12 S8 clips (``--clips 12``): weight 0 40.5 / 3.8,
    0.25 40.2, 0.5 39.6 / 3.8 (kept), 0.75 39.4, 1.0 39.8 (reprojection error alone 45.6 on 8
    clips); with it, motion sigma 0.2-0.5 and windows 25-35 move MPJPE by 0.3 mm at most.
    Measured and not kept (6-7 S8 clips, against the same run's Viterbi): posterior mean +11 mm, the mean of the hypotheses within 3-12 cm of the Viterbi
    choice +0-6, the per-frame aggregate as an extra state +0-6, the per-frame consensus (top 3-10)
    + Savitzky-Golay +1-6, a longer window for depth only (41-61 frames) +1.2, windows 9-61 /
    order 1-3 +0-4, a root-translation term in the motion model or a bonus for the clip's majority
    camera pitch +0-11. After the filter most of the track's error is a per-clip constant (the
    time-mean of the error per joint: 37-55 mm of 46-58 on S8 clips, mostly depth; the hypotheses'
    camera pitch is 0 or 10 degrees where the true one is 5-18): smoothing does not remove it and
    the scores do not find the better hypotheses (the per-frame oracle's path, Savitzky-Golay
    31 / 3: 28.6 mm on 8 clips).

    Then the filter (``posediff eval sequence``, the same cached hypotheses, MPJPE mm / accel
    mm/frame^2; S8 8 clips for the choice, S9/S11 4 clips reported): Savitzky-Golay 31 / 3 with
    the feet planted 42.1 / 3.8 and 44.9 / 5.2; 41 / 3 43.6 / 3.4 and 46.5 / 4.8; a Whittaker
    smoother (:func:`whittaker_smooth`) with ``lam`` 20 / 30 (kept) / 40 / 60 / 200 / 600: S8
    40.5 / 3.7, 40.7 / 3.4, 40.8 / 3.4, 40.9 / 3.3, 41.7 / 3.2, 43.3 / 3.2; S9/S11 43.0 / 5.0,
    42.9 / 4.7, 42.9 / 4.6, 43.0 / 4.6, 44.2 / 4.5, 46.4 / 4.5; the posterior mean with it
    (``lam`` 200) 43.1 / 3.2 and 44.1 / 4.5; a robust (Huber-weighted, 5 cm) Whittaker 41.2 / 3.4
    and 43.4 / 4.6. The acceleration error has a floor: a track without any acceleration (a
    straight line per joint, ``lam`` 1e6) scores the clips' own mean acceleration, S8 3.1 and
    S9/S11 4.4 mm/frame^2 (at 52.7 / 53.2 mm MPJPE).

    Then the path (2026-12-04, the same cached hypotheses; MPJPE mm / accel mm/frame^2, the feet
    planted): Viterbi (the default before) against the mean under the posterior raised to the
    power 1 / 2 (kept) / 4, S8 8 clips lab camera 33.2 / 3.38 against 32.6 / 3.09, 32.3 / 3.13,
    32.4 / 3.20; S8 8 clips phone camera (``--protocol photo``) 31.6 / 3.22 against 31.0 / 3.02,
    30.9 / 3.09, 31.2 / 3.15. With power 2, Whittaker ``lam`` 10 / 20 / 60, score temperature 0.2 /
    0.45 and motion sigma 0.2 / 0.35 within 0.4 mm of it on S8. Held-out S9/S11 (Viterbi -> power
    2): 5 clips lab 34.4 / 3.91 -> 34.8 / 3.67, phone 42.9 / 4.58 -> 41.4 / 4.27; S9 8 clips 42.8 /
    4.73 -> 43.3 / 4.53, phone 44.4 / 4.46 -> 43.9 / 4.38; S11 8 clips 34.1 / 3.54 -> 33.0 / 3.32,
    phone 35.4 / 3.52 -> 35.3 / 3.42; 5 clips from a 24 mm phone 43.0 / 4.40 -> 43.8 / 4.29; 5
    clips away from standing, phone 46.6 / 2.77 -> 46.1 / 2.60, lab 43.9 / 2.96 -> 44.3 / 2.72; on
    the floor, phone 48.7 / 6.95 -> 49.2 / 6.80: the acceleration error lower on all ten sets,
    MPJPE level on average (-1.5 to +0.8 mm). The posterior mean was measured worse in an early
    session (+11 mm, before the 2D filter, the re-sampled flips and the clip tilt).

    Then the smoother's per-frame weights from the posterior spread (``spread_floor``, the
    frames weighted ``1 / (v_t + v_0)``: :func:`spread_weights`), same caches, frames alike ->
    weighted (``v_0`` = the clip's median spread, chosen a priori: on S8 the choice hardly
    matters, 32.3 -> 32.3 lab, 30.9 -> 30.8 phone; ``v_0`` 0.3 x the median and a weight per
    joint instead of per frame were within 0.5 mm of it on every set). Held-out: 5 clips lab 34.8 /
    3.67 -> 34.6 / 3.66, phone 41.4 / 4.27 -> **38.0 / 4.08**, 24 mm 43.8 / 4.29 -> **41.8 / 4.16**;
    S9 8 clips 43.3 / 4.53 -> 43.1 / 4.43, phone 43.9 / 4.38 -> 43.9 / 4.47; S11 8 clips 33.0 /
    3.32 -> 32.9 / 3.32, phone 35.3 / 3.42 -> 35.1 / 3.44; away from standing, phone 46.1 / 2.60
    -> 45.3 / 2.71, lab 44.3 / 2.72 -> 44.4 / 2.83; on the floor 49.2 / 6.80 -> 48.5 / 6.82: MPJPE
    lower on eight of ten sets (at most 0.1 mm higher on the others), the acceleration error
    within +-0.2 mm/frame^2.

    Where the track's error is (held-out S9 8 lab clips): mostly a per-clip constant of single
    limbs' depth, the worst joints wrists and ankles 90-155 mm off while 35-55 % of the frame's
    hypotheses hold that joint within 100 mm (the best of them 20-48 mm off) and the per-frame
    oracle is ranked 3rd-10th of 20: the right mode is there, no signal found picks it. Measured and
    not kept (2026-12-04, cached hypotheses): a path per limb (each arm and leg its own
    forward-backward and mean, motion on its joints; motion sigma 0.1-0.27, tau 0.3-1): S8 within
    0.3 mm; with a per-limb plausibility (the denoiser's agreement on the limb's joints, 8 common
    draws) in its unary, weight 0.5 / 1 / 2: S8 lab 32.3 -> 33.6 / 35.0 / 36.0; a floor term in the
    unary (the lowest foot point's height above the clip's floor, Gaussian 5 cm, weight 0.3 / 1):
    S8 lab 32.3 -> 32.0 / 31.9, phone 30.8 -> 30.7 / 30.5, but held-out 5 lab clips 34.6 -> 34.9 /
    36.0, on the floor 48.5 -> 51.9 / 53.1, the other sets within +-0.7 mm.

    Attributes:
        path: ``"posterior"`` (each frame's pose the mean of its hypotheses weighted by the
            forward-backward posterior raised to ``posterior_power``: :func:`sharpened`) or
            ``"viterbi"`` (one hypothesis per frame, the Viterbi path).
        posterior_power: the posterior's power in that mean (1 = the posterior mean).
        spread_floor: the Whittaker smoother weighs each frame by ``1 / (v_t + v_0)``, ``v_t`` the
            posterior spread of its pose and ``v_0`` this times the clip's median spread
            (:func:`spread_weights`); None = every frame alike (the Viterbi path has no spread).
        score_temperature: ``tau`` of the unary term (rank scores are standardised, ~N(0, 1)).
        motion_sigma: per-joint motion standard deviation per frame at 25 fps (metres).
        smoother: the filter of the path's root-relative joints: ``"whittaker"``
            (:func:`whittaker_smooth`), ``"savgol"`` (:func:`savgol`) or ``"none"``.
        smooth_lambda: the Whittaker smoother's ``lam`` at 25 fps (scaled by ``(fps / 25)^4`` so
            the cut-off stays ~1.7 Hz at other frame rates).
        filter_window: Savitzky-Golay window (frames at 25 fps, odd; 0 or 1 = no filter).
        filter_order: Savitzky-Golay polynomial order.
        root_lambda_xy, root_lambda_z: Whittaker ``lam`` (at 25 fps, scaled as ``smooth_lambda``)
            of the root's image-plane position and depth: cut-offs ~2.5 Hz and ~0.5 Hz; a root at
            constant velocity passes unchanged, ends included.
        feet: detect foot contacts and keep the foot planted.
        contact_speed: ankle speed below which a foot may be in contact (m/s).
        contact_height: lowest foot point at most this far above the floor (m).
        floor_plane: put planted feet on the plane through the contacts' footprints
            (:func:`backend.prior.contacts.contact_plane`) instead of the level floor.
        reprojection_weight: ``w`` of the hypotheses' mean reprojection error ``e`` (pixels) in
            the unary: ``(score - w e^2 / 2) / tau`` (0 = the rank score alone).
        steady_root: Whittaker ``lam`` (at 25 fps) of the root's offsets along its camera ray that
            keep the planted feet still (:func:`backend.prior.contacts.steady_root`) before the
            legs' IK; None = the IK alone.

    The root and the planted feet, re-tuned on the cached hypotheses of 8 S8 clips (MPJPE mm /
    accel mm/frame^2 / the root's depth standard deviation and acceleration, mm and mm/frame^2:
    the clips' root is still, so both are its error), held-out S9/S11 5 clips in brackets. The
    feet planted by IK alone cost 0.8 mm (1.1 held-out) against no feet: the planted ankle's
    world position follows the root's depth jitter (3.5-4 cm standard deviation) and the IK bends
    the leg by it (S8 discussion clip 20 -> 26 mm, ankles 16 -> 67 mm). IK alone 33.6 / 3.41 / 39.5
    / 2.71 (35.2 / 4.05 / 35.6 / 2.65); the root moved along its ray first, ``steady_root`` 3 /
    30 / 300 / 3000: 33.4 / 33.3 / 33.4 / 33.4 mm (34.5 / 34.4 / 34.4 / 34.5), 300's depth
    standard deviation 33.3 (26.4), root acceleration 2.69 (2.65); no feet 32.8 (34.1). Then the
    root's smoothing: Gaussian 0.04 s / 0.2 s (before) -> 0.08 s on the image plane 33.4 / 3.36 /
    32.8 / 1.14 (34.4 / 3.90 / 26.3 / 1.06); Whittaker (image plane / depth ``lam``) 1 / 330 33.3
    / 3.49 / 37.9 / 2.99, 9 / 330 33.2 / 3.39 / 37.4 / 1.20, 30 / 330 33.2 / 3.40, 9 / 3000
    (kept) 33.2 / 3.38 / 29.8 / 0.82 (34.4 / 3.91 / 25.5 / 0.92). Whittaker rather than Gaussian
    because a Gaussian normalised at the clip's ends drags a moving root toward the inside (0.8
    sigma of lag at the first frame: 5 cm for a walk at 1.5 m/s with 0.04 s) and the clips here,
    whose root is still, cannot show it. Contacts: speed 0.25 / 0.2 m/s, height 0.04 m within 0.2
    mm. The IK's blend (1-8 frames) within 0.3 mm.
    """

    path: str = "posterior"
    posterior_power: float = 2.0
    spread_floor: float | None = 1.0
    score_temperature: float = 0.3
    motion_sigma: float = 0.27
    smoother: str = "whittaker"
    smooth_lambda: float = 30.0
    filter_window: int = 31
    filter_order: int = 3
    root_lambda_xy: float = 9.0
    root_lambda_z: float = 3000.0
    feet: bool = True
    contact_speed: float = 0.35
    contact_height: float = 0.06
    floor_plane: bool = True
    reprojection_weight: float = 0.5
    steady_root: float | None = 300.0


@dataclass
class Track:
    """The solved track of ``T`` frames.

    Attributes:
        joints: ``[T, J, 3]`` camera frame, root-relative, metres.
        root: ``[T, 3]`` pelvis in the camera frame, metres.
        world: ``[T, J, 3]`` world frame (Z up), pelvis at the origin, metres.
        world_root: ``[T, 3]`` pelvis in the world frame (camera at the origin), metres.
        choice: ``[T]`` Viterbi hypothesis index per frame (-1 for a filled gap).
        contacts: ``[T, 2]`` bool, (left foot, right foot) planted.
        warnings: ``{frame: [message]}``.
        floor: world Z of the floor (metres; camera at the origin).
        camera: ``[T, 3]`` the camera centre's travel from the first frame's (world frame, metres) of a
            moving camera (``solve_track(moving_camera=True)``), else None (a camera in one place).
    """

    joints: np.ndarray
    root: np.ndarray
    world: np.ndarray
    world_root: np.ndarray
    choice: np.ndarray
    contacts: np.ndarray
    warnings: dict = field(default_factory=dict)
    floor: float = 0.0
    camera: np.ndarray | None = None


# ------------------------------------------------------------------------------ the path


def _pair_cost(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean squared per-joint distance between every pose of ``a`` ``[K, J, 3]`` and ``b`` ``[L, J, 3]``: ``[K, L]`` m^2."""
    fa, fb = a.reshape(len(a), -1), b.reshape(len(b), -1)
    d = (fa**2).sum(1)[:, None] + (fb**2).sum(1)[None] - 2 * fa @ fb.T
    return np.maximum(d, 0.0) / a.shape[1]


def _logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    return (m + np.log(np.exp(a - m).sum(axis=axis, keepdims=True))).squeeze(axis)


def sharpened(post: np.ndarray, power: float) -> np.ndarray:
    """A frame's posterior over its hypotheses raised to ``power`` and renormalised (``[K]`` -> ``[K]``).

    The weights of the track's pose (``TrackOptions.path = "posterior"``): ``power`` 1 gives the
    posterior mean (the minimum-mean-square-error pose), larger powers lean toward the most
    probable hypothesis (the marginal's mode as ``power`` grows), the annealed or "tempered"
    posterior of deterministic annealing (Rose 1998), here applied after forward-backward.
    """
    logp = np.log(np.clip(np.asarray(post, np.float64), 1e-300, None)) * float(power)
    return np.exp(logp - _logsumexp(logp, 0))


def spread_weights(spread: np.ndarray, have: list[int], floor: float) -> np.ndarray:
    """Per-frame weights of the track's smoother from the posterior spread of each frame's pose.

    The Whittaker smoother is the MAP estimate under a Gaussian observation model with one noise
    variance for every frame; here frame ``t``'s variance is ``v_t + v_0``: ``v_t`` the posterior
    variance of its pose (``sum_k w_k |X_k - mean|^2`` per joint, the hypotheses' disagreement,
    large where a limb's depth is ambiguous), ``v_0 = floor * median(v)`` the noise of a frame
    whose hypotheses agree. The weights ``1 / (v_t + v_0)`` (Eilers 2003 sec. 4: weighted
    Whittaker smoothing; a Kalman smoother's per-step measurement covariance plays the same part)
    let the curve lean on the confident neighbours of an ambiguous frame.

    Args:
        spread: ``[T]`` posterior variance of each frame's pose (m^2 per joint; 0 where unknown).
        have: the frames with hypotheses (the others get weight 0 from the caller anyway).
        floor: ``v_0`` as a multiple of the median spread over ``have`` (> 0).
    Returns:
        ``[T]`` weights, mean 1 over ``have``.
    """
    v = np.asarray(spread, np.float64)
    v0 = float(floor) * max(float(np.median(v[have])), 1e-10)
    w = 1.0 / (v + v0)
    return w / w[have].mean()


def hypothesis_posterior(poses: list[np.ndarray], scores: list[np.ndarray], gaps: np.ndarray, opts: TrackOptions,
                         fps: float, fixed: dict[int, int] | None = None) -> tuple[list[int], list[np.ndarray]]:
    """Viterbi path and forward-backward posteriors over the hypotheses of the frames with any.

    Args:
        poses: per frame with hypotheses, ``[K_t, J, 3]`` root-relative (metres).
        scores: per such frame, ``[K_t]`` rank scores (higher better).
        gaps: ``[N]`` frames elapsed since the previous such frame (1 = consecutive).
        opts: motion and score settings; fps: frame rate (scales the motion model).
        fixed: ``{i: k}`` frame i (index into ``poses``) must take hypothesis k.
    Returns:
        (path ``[N]`` hypothesis indices, posteriors: per frame ``[K_t]`` summing to 1).
    """
    fixed = fixed or {}
    N = len(poses)
    sig2 = (opts.motion_sigma * 25.0 / max(fps, 1e-6)) ** 2
    unary = []
    for i, s in enumerate(scores):
        u = np.asarray(s, np.float64) / max(opts.score_temperature, 1e-6)
        if i in fixed:
            u = np.full(len(s), -np.inf)
            u[fixed[i]] = 0.0
        unary.append(u)
    trans = [None] + [-_pair_cost(poses[i], poses[i - 1]) / (2 * sig2 * gaps[i]) for i in range(1, N)]  # [K_i, K_{i-1}]
    # Viterbi (max-product)
    delta, back = unary[0].copy(), [None]
    for i in range(1, N):
        m = trans[i] + delta[None]
        back.append(np.argmax(m, 1))
        delta = unary[i] + m.max(1)
    path = [int(np.argmax(delta))]
    for i in range(N - 1, 0, -1):
        path.append(int(back[i][path[-1]]))
    path = path[::-1]
    # forward-backward (sum-product, log domain)
    fwd = [unary[0] - _logsumexp(unary[0], 0)]
    for i in range(1, N):
        a = unary[i] + _logsumexp(trans[i] + fwd[-1][None], 1)
        fwd.append(a - _logsumexp(a, 0))
    bwd = [np.zeros(len(unary[-1]))]
    for i in range(N - 1, 0, -1):
        b = _logsumexp(trans[i] + (unary[i] + bwd[0])[:, None], 0)
        bwd.insert(0, b - _logsumexp(b, 0))
    post = []
    for f, b in zip(fwd, bwd):
        g = f + b
        g = np.exp(g - _logsumexp(g, 0))
        post.append(g / g.sum())
    return path, post


# ------------------------------------------------------------------------------ filters


def savgol(x: np.ndarray, window: int, order: int = 2) -> np.ndarray:
    """Savitzky-Golay smoothing along axis 0 (Savitzky & Golay 1964).

    Each sample becomes the value at its centre of the least-squares polynomial of ``order`` over
    ``window`` samples; near the ends the polynomial of the first/last full window is evaluated
    (no padding artefacts). ``x``: ``[T, ...]``; returns the same shape. Windows longer than the
    sequence shrink to it (odd).
    """
    x = np.asarray(x, np.float64)
    T = len(x)
    w = min(int(window), T if T % 2 else T - 1)
    if w <= order or w < 3:
        return x.copy()
    h = w // 2
    t = np.arange(-h, h + 1, dtype=np.float64)
    V = np.vander(t, order + 1, increasing=True)  # [w, order+1]
    P = np.linalg.pinv(V)  # coefficients = P @ y
    flat = x.reshape(T, -1)
    out = np.empty_like(flat)
    c0 = P[0]
    for i in range(h, T - h):
        out[i] = c0 @ flat[i - h : i + h + 1]
    head = P @ flat[:w]
    tail = P @ flat[T - w :]
    for i in range(h):
        out[i] = np.vander(np.array([i - h], float), order + 1, increasing=True)[0] @ head
        out[T - 1 - i] = np.vander(np.array([h - i], float), order + 1, increasing=True)[0] @ tail
    return out.reshape(x.shape)


def whittaker_smooth(x: np.ndarray, lam: float, weights: np.ndarray | None = None,
                     times: np.ndarray | None = None) -> np.ndarray:
    """Whittaker smoothing along axis 0: the ``z`` minimising ``sum_t w_t |z_t - x_t|^2 + lam |D2 z|^2``.

    The penalised least-squares smoother of Whittaker (1923, "On a new method of graduation") in
    the form of Eilers (2003, "A perfect smoother", Anal. Chem. 75): ``D2`` is the second
    difference, so the penalty is the track's acceleration itself and a constant-velocity
    trajectory passes unchanged; there are no end effects (no window runs off the clip). The
    normal equations ``(W + lam D2^T D2) z = W x`` are pentadiagonal, solved by a banded Cholesky
    factorisation in ``O(T)`` (long clips stay cheap). Its cut-off (gain 1/2) is where
    ``lam (2 - 2 cos w)^2 = 1``: ``lam = 30`` at 25 fps passes motion below ~1.7 Hz. Weights
    (Eilers 2003, sec. 4) pin samples (a large ``w_t``: the curve passes through them and their
    neighbours follow smoothly) or leave them out (``w_t = 0``: filled by the curve).

    Samples unevenly spaced in time (a variable-frame-rate video) take ``times``: ``D2`` is then
    the second divided difference over each three samples (``2 / (h1 (h1 + h2))``, ``-2 / (h1 h2)``,
    ``2 / (h2 (h1 + h2))`` with their spacings ``h1``, ``h2``; ``1, -2, 1`` for unit spacing) and
    each row weighs the time it spans (``(h1 + h2) / 2``), so the penalty is the integral of the
    squared acceleration whatever the spacing (Eilers 2003, sec. 6, uneven sampling).

    Args:
        x: ``[T, ...]`` samples (any units); lam: ``>= 0`` smoothness weight (0: unchanged).
        weights: ``[T]`` ``w_t >= 0`` (default all 1); at least two samples need ``w_t > 0``.
        times: ``[T]`` increasing sample times in frames (default ``0, 1, 2, ...``).
    Returns:
        The same shape, float64.
    Raises:
        ValueError: ``weights`` of the wrong shape, negative, or with fewer than two positive;
            ``times`` of the wrong shape or not increasing.
    """
    x = np.asarray(x, np.float64)
    T = len(x)
    w = np.ones(T) if weights is None else np.asarray(weights, np.float64)
    if w.shape != (T,) or (w < 0).any() or (T >= 2 and (w > 0).sum() < 2):
        raise ValueError(f"whittaker_smooth: weights must be [T] = [{T}], >= 0, at least two positive")
    if times is not None:
        times = np.asarray(times, np.float64)
        if times.shape != (T,) or (T >= 2 and not (np.diff(times) > 0).all()):
            raise ValueError(f"whittaker_smooth: times must be [T] = [{T}] and increasing")
    if lam <= 0 or T < 3:
        return x.copy()
    # bands of A = W + lam D2^T D2: a0[i] = A[i, i], a1[i] = A[i, i-1], a2[i] = A[i, i-2]
    a0, a1, a2 = w.copy(), np.zeros(T), np.zeros(T)
    if times is None:
        c = [np.full(T - 2, v) for v in (1.0, -2.0, 1.0)]
        span = np.ones(T - 2)
    else:
        h1, h2 = np.diff(times)[:-1], np.diff(times)[1:]
        c = [2.0 / (h1 * (h1 + h2)), -2.0 / (h1 * h2), 2.0 / (h2 * (h1 + h2))]
        span = (h1 + h2) / 2.0
    for r in range(3):
        a0[r : T - 2 + r] += lam * span * c[r] ** 2
    for r in range(1, 3):
        a1[r : T - 2 + r] += lam * span * c[r] * c[r - 1]
    a2[2:] += lam * span * c[2] * c[0]
    l0, l1, l2 = np.zeros(T), np.zeros(T), np.zeros(T)  # A = L L^T, L lower with bandwidth 2
    for i in range(T):
        if i >= 2:
            l2[i] = a2[i] / l0[i - 2]
        if i >= 1:
            l1[i] = (a1[i] - l2[i] * l1[i - 1]) / l0[i - 1]
        l0[i] = np.sqrt(a0[i] - l1[i] ** 2 - l2[i] ** 2)
    y = x.reshape(T, -1) * w[:, None]
    for i in range(T):  # L y = W x
        if i >= 1:
            y[i] -= l1[i] * y[i - 1]
        if i >= 2:
            y[i] -= l2[i] * y[i - 2]
        y[i] /= l0[i]
    for i in range(T - 1, -1, -1):  # L^T z = y
        if i + 1 < T:
            y[i] -= l1[i + 1] * y[i + 1]
        if i + 2 < T:
            y[i] -= l2[i + 2] * y[i + 2]
        y[i] /= l0[i]
    return y.reshape(x.shape)


def canonical_bones(poses: np.ndarray) -> np.ndarray:
    """Restore the canonical bone lengths (directions kept): ``[..., J, 3]`` root-relative, metres."""
    from backend.mocap.datasets import normalise_bone_lengths

    p = np.asarray(poses, np.float64)
    shp = p.shape
    return normalise_bone_lengths(p.reshape(-1, shp[-2], 3)).astype(np.float64).reshape(shp)


# ------------------------------------------------------------------------------ the track


def solve_track(joints: list[np.ndarray | None], scores: list[np.ndarray | None], roots: list[np.ndarray | None],
                fps: float, rotation: np.ndarray | None = None, anchors: list | None = None,
                fixed: dict[int, int] | None = None, opts: TrackOptions | None = None,
                reprojection: list[np.ndarray | None] | None = None, motion: np.ndarray | None = None,
                breaks: set[int] | None = None, moving_camera: bool = False,
                times: np.ndarray | None = None) -> Track:
    """Solve the track of a sequence from its per-frame hypotheses.

    Args:
        joints: per frame ``[K_t, J, 3]`` hypotheses (camera frame, root-relative, metres), or None
            / an empty array for a frame without any (no person): that frame is filled.
        scores: per frame ``[K_t]`` rank scores (higher better).
        roots: per frame ``[K_t, 3]`` root translations (camera frame, metres).
        fps: frames per second (> 0).
        rotation: ``[3, 3]`` world->camera rotation shared by the clip (default: a level camera);
            with ``motion``, the first frame's.
        anchors: optional per frame ``(uv [J, 2] normalised image coordinates, weight [J])`` of the
            2D evidence, to re-solve the root for the smoothed pose (None entries allowed).
        fixed: ``{frame: hypothesis index}`` choices the path must take (per-frame override).
        opts: :class:`TrackOptions`.
        reprojection: optional per frame ``[K_t]`` mean reprojection error of each hypothesis
            against the frame's 2D evidence (pixels; None entries or NaN = not known), weighted
            by ``opts.reprojection_weight`` in the path's unary.
        motion: optional ``[T, 3, 3]`` camera motion of a camera turning about its centre (handheld
            shake, a pan): ``x_cam_t = motion[t] @ x_cam_0``. The path, the smoother, the root
            trajectory and the feet then work in the first frame's camera frame, where a still
            person stays still (:func:`to_first_camera`); ``joints`` and ``root`` of the track are
            returned in each frame's own camera frame, ``world`` in the clip's (first frame's).
        breaks: frames where another person may begin (the person followed was lost and someone was
            picked again): the smoothers do not cross them, and a gap before one is held from the
            frame before it instead of interpolated toward the other person.
        moving_camera: the camera travels (a tracking shot): its path is recovered from the person's
            supporting foot (:func:`backend.prior.camera_path.camera_path_from_feet`) and added to
            the world frame (``world_root``, ``Track.camera``), where the feet are then planted; the
            camera-frame ``joints`` and ``root`` stay each frame's own camera's. The root's steadying
            along its ray (``opts.steady_root``) is skipped: a travelling camera moves it too.
        times: optional ``[T]`` each frame's time in frames at ``fps`` (increasing; a
            variable-frame-rate video's are unevenly spaced): the motion model's variance grows with
            the time between frames, the smoothers penalise acceleration in time
            (:func:`whittaker_smooth`) and the feet's speed is taken over it. Default: evenly spaced.
    Returns:
        :class:`Track`.
    Raises:
        ValueError: no frame has a hypothesis, fps not positive, a fixed choice out of range, or
            an unknown ``opts.smoother``.
    """
    from backend.camera import LEVEL_WORLD_TO_CAMERA

    opts = opts or TrackOptions()
    if not fps > 0:
        raise ValueError(f"fps must be positive (got {fps})")
    if opts.smoother not in ("whittaker", "savgol", "none"):
        raise ValueError(f"unknown smoother {opts.smoother!r} (whittaker, savgol or none)")
    R = np.asarray(rotation if rotation is not None else LEVEL_WORLD_TO_CAMERA, np.float64)
    T = len(joints)
    have = [i for i in range(T) if joints[i] is not None and len(joints[i]) > 0]
    if not have:
        raise ValueError("no frame of the sequence has a pose hypothesis")
    fixed = dict(fixed or {})
    for t, k in fixed.items():
        if t not in have or not 0 <= k < len(joints[t]):
            raise ValueError(f"fixed choice frame {t} hypothesis {k} does not exist")
    pos = {t: i for i, t in enumerate(have)}
    M = None if motion is None else np.asarray(motion, np.float64)
    if M is not None and M.shape != (T, 3, 3):
        raise ValueError(f"motion must be [T, 3, 3] for the {T} frames (got {M.shape})")
    P = [to_first_camera(joints[t], M, t) for t in have]
    S = [np.asarray(scores[t], np.float64) for t in have]
    if opts.reprojection_weight and reprojection is not None:
        for i, t in enumerate(have):
            e = reprojection[t] if t < len(reprojection) else None
            if e is not None and len(e) == len(S[i]):
                e = np.nan_to_num(np.asarray(e, np.float64), nan=0.0)
                S[i] = S[i] - opts.reprojection_weight * e**2 / 2
    ft = np.arange(T, dtype=np.float64) if times is None else np.asarray(times, np.float64)
    if ft.shape != (T,) or (T >= 2 and not (np.diff(ft) > 0).all()):
        raise ValueError(f"times must be [T] = [{T}] increasing frame times (got {ft.shape})")
    gaps = np.diff(ft[[have[0]] + have])
    gaps[0] = 1
    path, post = hypothesis_posterior(P, S, gaps, opts, fps, {pos[t]: k for t, k in fixed.items()})

    pose = np.zeros((T, NUM_JOINTS, 3))
    root = np.zeros((T, 3))
    choice = np.full(T, -1)
    spread = np.zeros(T)  # the posterior's spread of each frame's pose (m^2 per joint)
    for i, t in enumerate(have):
        k = path[i]
        choice[t] = k
        rt = to_first_camera(roots[t], M, t)
        if opts.path == "viterbi" or t in fixed:
            pose[t], root[t] = P[i][k], rt[k]
        else:
            w = sharpened(post[i], opts.posterior_power)
            pose[t], root[t] = np.einsum("k,kjc->jc", w, P[i]), w @ rt
            spread[t] = w @ ((P[i] - pose[t]) ** 2).sum(-1).mean(-1)
    warnings: dict[int, list[str]] = {}
    breaks = sorted(b for b in (breaks or ()) if 0 < b < T)
    held = _fill_gaps(pose, root, have, warnings, breaks)
    segments = [slice(a, b) for a, b in zip([0, *breaks], [*breaks, T])]

    rate = (fps / 25.0) ** 4  # Whittaker lam scaling: the same cut-off in Hz at any frame rate

    def tt(sg: slice) -> np.ndarray | None:  # a segment's frame times (None: evenly spaced)
        return None if times is None else ft[sg]

    if opts.smoother == "whittaker":
        # frames without a person are filled by the curve; a fixed choice (per-frame override)
        # pins it, so the neighbouring frames follow it instead of jumping on that frame
        wt = np.ones(T)
        if len(have) >= 2:  # interior gaps only: the ends stay held (no extrapolation)
            wt[have[0] : have[-1] + 1] = 0.0
            wt[have] = 1.0
        wt[held] = 1.0  # held before another person: kept, not filled by the curve
        if opts.spread_floor is not None:
            wt = wt * spread_weights(spread, have, opts.spread_floor)
        wt[list(fixed)] = FIXED_WEIGHT
        pose = np.concatenate([whittaker_smooth(pose[sg], opts.smooth_lambda * rate,
                                                wt[sg] if (wt[sg] > 0).sum() >= 2 else None, times=tt(sg)) for sg in segments])
    elif opts.smoother == "savgol" and (win := int(round(opts.filter_window * fps / 25.0)) | 1) >= 3:
        pose = np.concatenate([savgol(pose[sg], win, opts.filter_order) for sg in segments])
    pose = canonical_bones(pose)
    for t in fixed:
        pose[t] = P[pos[t]][fixed[t]]
    root = _solve_roots(pose, root, anchors, have, M)
    root = np.concatenate([np.concatenate([whittaker_smooth(root[sg, :2], opts.root_lambda_xy * rate, times=tt(sg)),
                                           whittaker_smooth(root[sg, 2:], opts.root_lambda_z * rate, times=tt(sg))], 1)
                           for sg in segments])

    world_abs = (pose + root[:, None]) @ R  # x_world = R^T x_cam (row vectors)
    contacts = np.zeros((T, 2), bool)
    floor = floor_height(world_abs)
    camera = None
    if moving_camera:  # the camera's travel, from the supporting foot (X_world = X_fixed + C_t)
        camera, _ = camera_path_from_feet(world_abs, fps)
        world_abs = world_abs + camera[:, None]
    if opts.feet and T >= 3:
        contacts = detect_contacts(world_abs, fps, opts, floor, times=None if times is None else ft / fps)
        if opts.steady_root is not None and camera is None:
            root = steady_root(pose, root, R, contacts, opts.steady_root * rate, times=tt(slice(None)))
            world_abs = (pose + root[:, None]) @ R
        plane = contact_plane(world_abs, contacts, floor) if opts.floor_plane else None
        world_abs = plant_feet(world_abs, contacts, floor, plane=plane)
        cam = (world_abs if camera is None else world_abs - camera[:, None]) @ R.T
        pose = cam - root[:, None]
    world_root = world_abs[:, 0].copy()
    world = world_abs - world_root[:, None]
    if M is not None:  # back to each frame's own camera (row vectors: x_t = M_t x_0)
        pose, root = np.einsum("tjc,tdc->tjd", pose, M), np.einsum("tc,tdc->td", root, M)
    return Track(joints=pose, root=root, world=world, world_root=world_root, choice=choice, contacts=contacts,
                 warnings=warnings, floor=floor, camera=camera)


def _fill_gaps(pose: np.ndarray, root: np.ndarray, have: list[int], warnings: dict, breaks=()) -> list[int]:
    """Linear interpolation of frames without hypotheses between their nearest neighbours (in place); a
    gap that ends at one of ``breaks`` (another person from there) is held from the frame before it.
    Returns the frames so held."""
    T = len(pose)
    hv = np.asarray(have)
    held = []
    for t in range(T):
        if t in set(have):
            continue
        after = hv[hv > t]
        before = hv[hv < t]
        if len(before) and len(after) and any(t < b <= after[0] for b in breaks):
            n = int(before[-1])
            pose[t], root[t] = pose[n], root[n]
            held.append(t)
            warnings.setdefault(t, []).append(f"the person followed was not found in this frame: pose held from frame "
                                              f"{n} (someone else may be estimated from frame {int(after[0])})")
            continue
        if len(before) and len(after):
            a, b = int(before[-1]), int(after[0])
            w = (t - a) / (b - a)
            pose[t] = (1 - w) * pose[a] + w * pose[b]
            root[t] = (1 - w) * root[a] + w * root[b]
            msg = f"no person in this frame: pose interpolated between frames {a} and {b}"
        else:
            n = int(before[-1]) if len(before) else int(after[0])
            pose[t], root[t] = pose[n], root[n]
            msg = f"no person in this frame: pose held from frame {n}"
        warnings.setdefault(t, []).append(msg)
    return held


def to_first_camera(x, motion: np.ndarray | None, t: int) -> np.ndarray:
    """Frame ``t``'s camera-frame vectors ``[..., 3]`` in the first frame's camera frame
    (``x_0 = motion[t]^T x_t``; unchanged without ``motion``)."""
    x = np.asarray(x, np.float64)
    return x if motion is None else x @ motion[t]


def _solve_roots(pose: np.ndarray, root: np.ndarray, anchors: list | None, have: list[int],
                 motion: np.ndarray | None = None) -> np.ndarray:
    """Per-frame closed-form root translation for the smoothed pose from the frame's 2D anchors (ZeDO eq. 6);
    with ``motion``, solved in each frame's own camera (where its anchors are) and returned in the first's."""
    if anchors is None:
        return root
    import torch

    from backend.prior.geometry import solve_root_translation

    out = root.copy()
    for t in have:
        a = anchors[t] if t < len(anchors) else None
        if a is None:
            continue
        uv, w = (torch.as_tensor(np.asarray(x, np.float64)) for x in a)
        if float(w.sum()) <= 0 or int((w > 0).sum()) < 2:
            continue
        X = torch.as_tensor(pose[t : t + 1] if motion is None else pose[t : t + 1] @ motion[t].T)
        out[t] = to_first_camera(solve_root_translation(X, uv, w)[0].numpy(), motion, t)
    return out

