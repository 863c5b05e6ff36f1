# SPDX-License-Identifier: GPL-3.0-or-later
"""Limb angles of a pose, to check that a keyed rig reproduces the hypothesis it was given.

Angles depend only on bone directions, so they can be compared between frames (camera or
world) and scales (model skeleton or a bigger rig). Pure Python.
"""

from __future__ import annotations

import math

#: name -> (a, b, c, d): the angle between vectors b - a and d - c, in degrees.
#: Flexion is 0 for a straight limb; spread is the angle between the left and right segment.
ANGLES: dict[str, tuple[str, str, str, str]] = {
    "left_knee_flexion": ("left_hip", "left_knee", "left_knee", "left_ankle"),
    "right_knee_flexion": ("right_hip", "right_knee", "right_knee", "right_ankle"),
    "left_elbow_flexion": ("left_shoulder", "left_elbow", "left_elbow", "left_wrist"),
    "right_elbow_flexion": ("right_shoulder", "right_elbow", "right_elbow", "right_wrist"),
    "hip_spread": ("left_hip", "left_knee", "right_hip", "right_knee"),
    "shoulder_spread": ("left_shoulder", "left_elbow", "right_shoulder", "right_elbow"),
    "left_shoulder_abduction": ("thorax", "pelvis", "left_shoulder", "left_elbow"),
    "right_shoulder_abduction": ("thorax", "pelvis", "right_shoulder", "right_elbow"),
}


def _angle_deg(u, v) -> float:
    cx = u[1] * v[2] - u[2] * v[1]
    cy = u[2] * v[0] - u[0] * v[2]
    cz = u[0] * v[1] - u[1] * v[0]
    d = u[0] * v[0] + u[1] * v[1] + u[2] * v[2]
    n = math.sqrt(cx * cx + cy * cy + cz * cz)
    if n == 0.0 and d == 0.0:
        raise ValueError("limb angle of a zero-length segment")
    return math.degrees(math.atan2(n, d))


def limb_angles(joints: dict[str, list[float]]) -> dict[str, float]:
    """Knee/elbow flexion, hip/shoulder spread and shoulder abduction of a pose.

    Args:
        joints: model joint name -> ``[x, y, z]`` (any frame, any scale; metres in practice).
    Returns:
        angle name (``ANGLES``) -> degrees, 0..180, for the angles whose joints are present.
    """
    out = {}
    for name, (a, b, c, d) in ANGLES.items():
        if all(j in joints for j in (a, b, c, d)):
            u = [joints[b][i] - joints[a][i] for i in range(3)]
            v = [joints[d][i] - joints[c][i] for i in range(3)]
            out[name] = _angle_deg(u, v)
    return out


def compare_angles(rig: dict[str, list[float]], hypothesis: dict[str, list[float]],
                   tolerance_deg: float = 5.0) -> dict:
    """Limb angles of the posed rig against those of the hypothesis it was keyed from.

    Args:
        rig: model joints read back from the posed rig (any frame/scale).
        hypothesis: the hypothesis' joints (any frame/scale).
        tolerance_deg: largest acceptable absolute difference, degrees.
    Returns:
        ``{"angles_deg": {name: {"rig", "hypothesis", "diff"}}, "max_abs_diff_deg",
        "tolerance_deg", "ok"}``; ``diff`` = rig - hypothesis, degrees.
    Raises:
        ValueError: if no angle can be measured on both poses.
    """
    ra, ha = limb_angles(rig), limb_angles(hypothesis)
    names = [n for n in ANGLES if n in ra and n in ha]
    if not names:
        raise ValueError("no limb angle could be measured on both the rig and the hypothesis "
                         "(are hips, knees, ankles, shoulders, elbows and wrists mapped?)")
    rows = {n: {"rig": round(ra[n], 2), "hypothesis": round(ha[n], 2), "diff": round(ra[n] - ha[n], 2)}
            for n in names}
    worst = max(abs(ra[n] - ha[n]) for n in names)
    return {"angles_deg": rows, "max_abs_diff_deg": round(worst, 3), "tolerance_deg": tolerance_deg,
            "ok": worst <= tolerance_deg}


def format_table(check: dict) -> str:
    """The comparison of ``compare_angles`` as a fixed-width text table."""
    lines = [f"{'angle (deg)':<26}{'rig':>8}{'hypothesis':>12}{'diff':>8}"]
    for n, r in check["angles_deg"].items():
        lines.append(f"{n:<26}{r['rig']:>8.1f}{r['hypothesis']:>12.1f}{r['diff']:>+8.2f}")
    lines.append(f"max |diff| {check['max_abs_diff_deg']:.2f} deg (tolerance {check['tolerance_deg']:g}): "
                 f"{'OK' if check['ok'] else 'FAILED'}")
    return "\n".join(lines)
