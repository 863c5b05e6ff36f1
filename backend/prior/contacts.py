"""Foot contacts of a track and keeping planted feet still (step 5 of :mod:`backend.prior.track`).

In the world frame (Z up, metres), a foot whose lowest point is near the floor and whose ankle
moves slower than a threshold is in contact (:func:`detect_contacts`); over each contact the ankle
is held at one point on the floor and the leg re-solved by analytic two-bone IK (hip fixed, knee
kept in its bend plane), blended in and out over a few frames (:func:`plant_feet`; as in the
foot-skate cleanup of Kovar et al. 2002, simplified). The floor the feet are put on is either level
(one height) or the plane through the contacts' footprints (:func:`contact_plane`): the clip's
camera tilt is the median of the hypotheses' tilts, drawn from a 10-degree grid, so the level floor
of that world frame can be a few degrees off the real one, and snapping every contact to it bends
the legs (measured in :class:`backend.prior.track.TrackOptions`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from backend.skeleton import BONE_LENGTHS, JOINT_INDEX

if TYPE_CHECKING:
    from backend.prior.track import TrackOptions

FEET = (("left", JOINT_INDEX["left_hip"], JOINT_INDEX["left_knee"], JOINT_INDEX["left_ankle"], JOINT_INDEX["left_toe"]),
        ("right", JOINT_INDEX["right_hip"], JOINT_INDEX["right_knee"], JOINT_INDEX["right_ankle"], JOINT_INDEX["right_toe"]))


def floor_height(world_abs: np.ndarray) -> float:
    """Floor height (world Z, metres): the 5th percentile of each frame's lowest foot point."""
    feet = [JOINT_INDEX[n] for n in ("left_ankle", "right_ankle", "left_toe", "right_toe")]
    return float(np.percentile(world_abs[:, feet, 2].min(1), 5))


def detect_contacts(world_abs: np.ndarray, fps: float, opts: "TrackOptions", floor: float | None = None,
                    times: np.ndarray | None = None) -> np.ndarray:
    """Foot contacts: ``[T, J, 3]`` world-frame absolute joints -> ``[T, 2]`` bool (left, right).

    A foot touches when its lowest point (ankle or toe) is within ``contact_height`` of the floor
    and its ankle moves slower than ``contact_speed`` (central differences; over ``times``,
    ``[T]`` seconds, where the frames are unevenly spaced); contacts shorter than 3 frames are
    dropped and one-frame breaks closed.
    """
    T = len(world_abs)
    floor = floor_height(world_abs) if floor is None else floor
    out = np.zeros((T, 2), bool)
    if T < 3:
        return out
    for f, (_, _, _, ank, toe) in enumerate(FEET):
        low = np.minimum(world_abs[:, ank, 2], world_abs[:, toe, 2]) - floor
        v = np.gradient(world_abs[:, ank], axis=0) * fps if times is None else np.gradient(world_abs[:, ank], times, axis=0)
        speed = np.linalg.norm(v, axis=-1)
        c = (low < opts.contact_height) & (speed < opts.contact_speed)
        c[1:-1] |= c[:-2] & c[2:]
        out[:, f] = _drop_short(c, 3)
    return out


def _drop_short(c: np.ndarray, n: int) -> np.ndarray:
    c = c.copy()
    for a, b in _segments(c):
        if b - a < n:
            c[a:b] = False
    return c


def _segments(c: np.ndarray) -> list[tuple[int, int]]:
    """``[a, b)`` runs of True."""
    d = np.diff(np.concatenate([[0], c.astype(int), [0]]))
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


def two_bone_ik(hip: np.ndarray, knee: np.ndarray, target: np.ndarray, l1: float, l2: float) -> tuple[np.ndarray, np.ndarray]:
    """Analytic two-bone IK: knee and ankle ``[3]`` reaching ``target`` from ``hip`` with bone lengths
    ``l1`` (thigh) and ``l2`` (shin), the knee kept in the plane of hip, target and the old knee.
    Targets out of reach are pulled in to 1 mm inside reach."""
    d = target - hip
    n = np.linalg.norm(d)
    n_c = float(np.clip(n, abs(l1 - l2) + 1e-3, l1 + l2 - 1e-3))
    u = d / max(n, 1e-9)
    ank = hip + u * n_c
    a = (l1 * l1 - l2 * l2 + n_c * n_c) / (2 * n_c)
    r = np.sqrt(max(l1 * l1 - a * a, 0.0))
    pole = knee - hip
    pole = pole - u * (pole @ u)
    pn = np.linalg.norm(pole)
    if pn < 1e-6:
        pole = np.cross(u, [1.0, 0.0, 0.0])
        pn = np.linalg.norm(pole)
    return hip + u * a + pole / pn * r, ank


def _footprints(world_abs: np.ndarray, contacts: np.ndarray) -> list[tuple[int, int, int, np.ndarray, float]]:
    """Each contact as (foot, first frame, end frame, mean ankle ``[3]``, mean lowest foot point Z)."""
    out = []
    for f, (_, _, _, ank, toe) in enumerate(FEET):
        for a, b in _segments(contacts[:, f]):
            seg = world_abs[a:b]
            out.append((f, a, b, seg[:, ank].mean(0), float(np.minimum(seg[:, ank, 2], seg[:, toe, 2]).mean())))
    return out


def contact_plane(world_abs: np.ndarray, contacts: np.ndarray, floor: float, max_slope: float = 0.18,
                  ridge: float = 0.02) -> np.ndarray:
    """The floor as the contacts see it: ``(a, b, c)`` of ``z = a + b x + c y`` (world frame, metres).

    Least squares through each contact's footprint (mean ankle X, Y; mean lowest foot point Z),
    the slopes pulled toward level by a ridge of ``ridge`` m^2 (a short clip's footprints are often
    nearly on one line) and clipped to ``max_slope`` (0.18 = about 10 degrees, the tilt grid's
    step); with fewer than two footprints the level ``floor``.
    """
    fp = _footprints(np.asarray(world_abs, np.float64), contacts)
    if len(fp) < 2:
        return np.array([floor, 0.0, 0.0])
    xy = np.array([p[3][:2] for p in fp])
    z = np.array([p[4] for p in fp])
    c = xy.mean(0)
    d = xy - c
    slope = np.linalg.solve(d.T @ d + ridge * np.eye(2), d.T @ (z - z.mean()))
    slope = np.clip(slope, -max_slope, max_slope)
    a = z.mean() - slope @ c
    return np.array([a, slope[0], slope[1]])


def steady_root(pose: np.ndarray, root: np.ndarray, rotation: np.ndarray, contacts: np.ndarray, lam: float,
                iters: int = 8, rest_weight: float = 0.01, times: np.ndarray | None = None) -> np.ndarray:
    """Move the root along its camera ray so that the planted feet stand still: ``[T, 3]`` new root.

    The root's depth is what the 2D rays constrain least (ZeDO's closed form per frame, then
    smoothed), so during a contact the planted ankle's world position jitters with it;
    holding the ankle still by IK alone (:func:`plant_feet`) then bends the leg by that jitter.
    Here the whole body moves instead: each frame's root ``r_t`` becomes ``r_t + d_t u_t`` with
    ``u_t = r_t / |r_t|`` (the pelvis stays on its ray, so its projection is unchanged and the
    other joints move by ``d_t`` times their angle off it), minimising

    ``sum_c sum_{t in c} |a_t + d_t R^T u_t - p_c|^2 + lam |D2 d|^2 + rest_weight sum_t d_t^2``

    over the offsets ``d`` and each contact's footprint ``p_c`` (world frame; ``a_t`` the planted
    ankle of the contact): a least-squares problem solved by block coordinate descent, footprints
    as the contacts' mean ankles given ``d``, then ``d`` by a weighted Whittaker smoother
    (:func:`backend.prior.track.whittaker_smooth`; weight = the feet planted in the frame,
    ``rest_weight`` elsewhere, so frames between contacts follow the curve and the ends return to
    no offset). The residual motion is left to :func:`plant_feet`. The root-relative pose is not
    changed. As the root trajectory smoothing in foot-skate cleanup (Kovar et al. 2002, sec. 4:
    the root is adjusted before the legs' IK).

    Args:
        pose: ``[T, J, 3]`` root-relative joints, camera frame (metres); root: ``[T, 3]`` camera frame.
        rotation: ``[3, 3]`` world->camera; contacts: ``[T, 2]`` from :func:`detect_contacts`.
        lam: smoothness of the offsets (Whittaker ``lam``, frames); iters: descent sweeps.
        times: optional ``[T]`` frame times in frames (unevenly spaced frames; default evenly).
    Returns:
        ``[T, 3]`` root translations (camera frame, metres); a copy of ``root`` when no foot is planted
        in the clip (or ``T < 3``).
    """
    from backend.prior.track import whittaker_smooth

    root = np.asarray(root, np.float64)
    T = len(root)
    segs = [(f, a, b) for f in range(len(FEET)) for a, b in _segments(contacts[:, f])]
    if not segs or T < 3:
        return root.copy()
    R = np.asarray(rotation, np.float64)
    u = root / np.maximum(np.linalg.norm(root, axis=-1, keepdims=True), 1e-9)
    w = u @ R  # the ray direction in the world frame (x_world = R^T x_cam)
    pose = np.asarray(pose, np.float64)
    ank = [(pose[:, FEET[f][3]] + root) @ R for f in range(len(FEET))]
    d = np.zeros(T)
    for _ in range(iters):
        num, cnt = np.zeros(T), np.zeros(T)
        for f, a, b in segs:
            p = (ank[f][a:b] + d[a:b, None] * w[a:b]).mean(0)
            num[a:b] += ((p - ank[f][a:b]) * w[a:b]).sum(-1)
            cnt[a:b] += 1
        d = whittaker_smooth(np.where(cnt > 0, num / np.maximum(cnt, 1), 0.0), lam, np.where(cnt > 0, cnt, rest_weight),
                             times=times)
    return root + d[:, None] * u


def plant_feet(world_abs: np.ndarray, contacts: np.ndarray, floor: float, blend: int = 3,
               plane: np.ndarray | None = None) -> np.ndarray:
    """Keep each foot still and on the floor during its contacts (see the module docstring).

    Args:
        world_abs: ``[T, J, 3]`` world frame, absolute joints (metres).
        contacts: ``[T, 2]`` from :func:`detect_contacts`; floor: world Z of the level floor.
        blend: frames over which the correction fades in and out at each contact's ends.
        plane: ``(a, b, c)`` of a floor plane ``z = a + b x + c y`` (:func:`contact_plane`) to put
            the feet on instead of the level floor.
    Returns:
        ``[T, J, 3]`` corrected copy (hips and upper body unchanged).
    """
    out = np.array(world_abs, np.float64)
    T = len(out)
    plane = np.array([floor, 0.0, 0.0]) if plane is None else np.asarray(plane, np.float64)
    prints = _footprints(out, contacts)  # one leg's IK does not move the other foot
    for f, (_, hip, knee, ank, toe) in enumerate(FEET):
        target = out[:, ank].copy()
        weight = np.zeros(T)
        for _, a, b, p, low in (fp for fp in prints if fp[0] == f):
            p[2] -= low - (plane[0] + plane[1] * p[0] + plane[2] * p[1])  # lowest foot point onto the floor
            target[a:b] = p
            weight[a:b] = 1.0
            for k in range(1, blend + 1):  # fade in / out toward the held point
                wk = 1.0 - k / (blend + 1)
                for i in (a - k, b - 1 + k):
                    if 0 <= i < T and wk > weight[i]:
                        target[i] = p
                        weight[i] = wk
        l1, l2 = float(BONE_LENGTHS[knee]), float(BONE_LENGTHS[ank])
        for i in np.flatnonzero(weight > 0):
            goal = (1 - weight[i]) * out[i, ank] + weight[i] * target[i]
            k_new, a_new = two_bone_ik(out[i, hip], out[i, knee], goal, l1, l2)
            out[i, toe] = a_new + (out[i, toe] - out[i, ank])
            out[i, knee], out[i, ank] = k_new, a_new
    return out
