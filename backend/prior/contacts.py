"""Foot contacts of a track and keeping planted feet still (step 5 of :mod:`backend.prior.track`).

In the world frame (Z up, metres), a foot whose lowest point is near the floor and whose ankle
moves slower than a threshold is in contact (:func:`detect_contacts`); over each contact the ankle
is held at one point on the floor and the leg re-solved by analytic two-bone IK (hip fixed, knee
kept in its bend plane), blended in and out over a few frames (:func:`plant_feet`; as in the
foot-skate cleanup of Kovar et al. 2002, simplified).
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


def detect_contacts(world_abs: np.ndarray, fps: float, opts: "TrackOptions", floor: float | None = None) -> np.ndarray:
    """Foot contacts: ``[T, J, 3]`` world-frame absolute joints -> ``[T, 2]`` bool (left, right).

    A foot touches when its lowest point (ankle or toe) is within ``contact_height`` of the floor
    and its ankle moves slower than ``contact_speed`` (central differences); contacts shorter than
    3 frames are dropped and one-frame breaks closed.
    """
    T = len(world_abs)
    floor = floor_height(world_abs) if floor is None else floor
    out = np.zeros((T, 2), bool)
    if T < 3:
        return out
    for f, (_, _, _, ank, toe) in enumerate(FEET):
        low = np.minimum(world_abs[:, ank, 2], world_abs[:, toe, 2]) - floor
        v = np.gradient(world_abs[:, ank], axis=0) * fps
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


def plant_feet(world_abs: np.ndarray, contacts: np.ndarray, floor: float, blend: int = 3) -> np.ndarray:
    """Keep each foot still and on the floor during its contacts (see the module docstring).

    Args:
        world_abs: ``[T, J, 3]`` world frame, absolute joints (metres).
        contacts: ``[T, 2]`` from :func:`detect_contacts`; floor: world Z of the floor.
        blend: frames over which the correction fades in and out at each contact's ends.
    Returns:
        ``[T, J, 3]`` corrected copy (hips and upper body unchanged).
    """
    out = np.array(world_abs, np.float64)
    T = len(out)
    for f, (_, hip, knee, ank, toe) in enumerate(FEET):
        target = out[:, ank].copy()
        weight = np.zeros(T)
        for a, b in _segments(contacts[:, f]):
            seg = out[a:b]
            p = seg[:, ank].mean(0)
            low = np.minimum(seg[:, ank, 2], seg[:, toe, 2]).mean()
            p[2] -= low - floor  # lowest foot point onto the floor
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
