# SPDX-License-Identifier: GPL-3.0-or-later
"""Where a pose goes in the world: ground contact, pinned (keyed/fixed) joints, and the camera
that took the photo. Pure Python (no bpy), testable without Blender.

Frames: world = Blender's (Z up, metres); armature space = the armature object's local frame;
camera = OpenCV (x right, y down, z forward), pixels for image points. Matrices are row-major
nested lists (see ``retarget``).

One rule for every task (estimate, complete, variations, generate, applying a hypothesis):
what the animator keyed, pinned or fixed stays where it is in the world; the root and the
unknown bones move. Unpinned poses stand on the rig's floor (lowest foot joint at the rest
pose's lowest foot height, in world Z).
"""

from __future__ import annotations

import math

from . import linalg as la

FEET = ("left_ankle", "right_ankle", "left_toe", "right_toe")

#: Limb chains of model joints, root side first. A pinned joint is reached by moving the
#: joints between it and the previous fixed point of its chain (the chain's first joint, or
#: an earlier pinned joint). Chains start at the hip and the shoulder joint: those move with
#: the root and the spine (``reach_shift``).
LIMB_CHAINS: tuple[tuple[str, ...], ...] = tuple(
    c
    for s in ("left", "right")
    for c in ((f"{s}_hip", f"{s}_knee", f"{s}_ankle", f"{s}_toe"),
              (f"{s}_shoulder", f"{s}_elbow", f"{s}_wrist", f"{s}_hand"))
)


# ----------------------------------------------------------------------------- ground
def ground_shift(posed_feet_z: list[float], floor_z: float) -> float:
    """World-Z shift that puts the lowest of the posed foot joints on the floor.

    Args:
        posed_feet_z: world Z (metres) of the rig's posed ankle/toe joints.
        floor_z: world Z of the floor (the rest pose's lowest foot joint).
    Returns:
        metres to add to the root's world Z (0.0 without feet).
    """
    return floor_z - min(posed_feet_z) if posed_feet_z else 0.0


def unscale_about(p: list, centre: list, s: float) -> list:
    """Inverse of scaling about ``centre`` by ``s``: ``centre + (p - centre) / s``."""
    return la.add(centre, la.scale(la.sub(p, centre), 1.0 / s))


# ----------------------------------------------------------------------------- pinned joints
def two_bone_ik(base: list, goal: list, l1: float, l2: float, pole: list) -> list:
    """Middle joint of a two-segment chain ``base -> mid -> goal`` with segment lengths
    ``l1``, ``l2`` (law of cosines), bent toward ``pole`` (e.g. the current knee).

    Unreachable goals (too far or too close) give a straight or folded chain pointing at
    the goal. Units: any (consistent). Returns the middle joint position.
    """
    d = la.sub(goal, base)
    dist = la.norm(d)
    if dist < 1e-9:
        return la.add(base, la.scale(la.normalized(la.sub(pole, base)) or [0.0, 0.0, 1.0], l1))
    u = la.scale(d, 1.0 / dist)
    dist_c = min(max(dist, abs(l1 - l2) + 1e-9), l1 + l2 - 1e-9)
    a = (l1 * l1 + dist_c * dist_c - l2 * l2) / (2 * l1 * dist_c)
    a = max(-1.0, min(1.0, a))
    along, across = l1 * a, l1 * math.sqrt(max(0.0, 1 - a * a))
    pv = la.sub(pole, base)
    perp = la.sub(pv, la.scale(u, la.dot(pv, u)))
    n = la.normalized(perp) or la.perpendicular(u)
    return la.add(base, la.add(la.scale(u, along), la.scale(n, across)))


def pin_targets(targets: dict, posed: dict, goals: dict) -> dict:
    """Target joints that make a rig reach pinned joints with its own segment lengths.

    The retargeting solve (``retarget.solve_pose``) points each mapped bone along its
    target segment, so only target *directions* matter. For each limb chain (``LIMB_CHAINS``)
    with pinned joints, the joints between fixed points are moved: one segment is aimed at
    the goal, two segments are solved by the law of cosines (bent like the current pose),
    longer runs by FABRIK (Aristidou & Lasenby 2011, "FABRIK: a fast, iterative solver for the
    inverse kinematics problem", Alg. 1). Joints beyond the last pin keep their offsets.

    Args:
        targets: model joint -> target position (armature space, rig scale).
        posed: model joint -> where the rig's joint is now after solving ``targets``
            (same space); gives chain bases and the rig's own segment lengths.
        goals: pinned joint -> position it must reach (same space).
    Returns:
        a new targets dict (input unchanged).
    """
    out = {k: list(v) for k, v in targets.items()}
    for chain in LIMB_CHAINS:
        idx = [i for i, j in enumerate(chain) if j in goals]
        if not idx or any(j not in posed or j not in targets for j in chain[: idx[-1] + 1]):
            continue
        lengths = [la.norm(la.sub(posed[chain[i + 1]], posed[chain[i]])) for i in range(len(chain) - 1)]
        new = {chain[0]: posed[chain[0]]}
        start = 0
        for end in idx:
            if end == 0:
                continue
            seg = list(range(start, end))
            base, goal = new[chain[start]], goals[chain[end]]
            if len(seg) == 1:
                new[chain[end]] = goal
            elif len(seg) == 2:
                mid = two_bone_ik(base, goal, lengths[start], lengths[start + 1], posed[chain[start + 1]])
                new[chain[start + 1]], new[chain[end]] = mid, goal
            else:
                pts = _fabrik([base] + [posed[chain[i + 1]] for i in seg], lengths[start:end], goal)
                for k, i in enumerate(seg):
                    new[chain[i + 1]] = pts[k + 1]
            for i in range(start + 1, end):
                if chain[i] not in new:
                    new[chain[i]] = posed[chain[i]]
            start = end
        last = idx[-1]
        # targets' directions := new directions, walking from the chain base
        for i in range(1, last + 1):
            j, p = chain[i], chain[i - 1]
            out[j] = la.add(out[p], la.sub(new[j], new[p]))
        shift = la.sub(out[chain[last]], targets[chain[last]])
        for j in chain[last + 1:]:
            if j in targets:
                out[j] = la.add(targets[j], shift)
    return out


def reach_shift(targets_posed: dict, goals: dict, slack: float = 0.97, iterations: int = 30) -> list:
    """Root translation that brings every pinned limb joint within its chain's reach.

    For each limb chain (``LIMB_CHAINS``) with a pinned joint, the first pinned joint must lie
    between the chain's shortest and longest reach from the chain base (the hip or shoulder,
    which move with the root): exactly one segment length for a pinned knee or elbow, up to
    the sum of the segments (times ``slack``, to keep a little bend) for an ankle or wrist.
    The base is pulled toward (or pushed away from) the goal; iterated and averaged so that
    several chains (both feet and a hand) agree as well as they can.

    Args:
        targets_posed: model joint -> the rig's posed joint (armature space).
        goals: pinned joint -> position (same space).
    Returns:
        ``[dx, dy, dz]`` to add to the root position (same space; zeros if all reachable).
    """
    chains = []
    for chain in LIMB_CHAINS:
        ends = [i for i, j in enumerate(chain) if j in goals and i > 0]
        if not ends or any(j not in targets_posed for j in chain[: ends[0] + 1]):
            continue
        e = ends[0]
        ls = [la.norm(la.sub(targets_posed[chain[i + 1]], targets_posed[chain[i]])) for i in range(e)]
        if e == 1:
            lo = hi = ls[0]
        else:
            hi = sum(ls) * slack
            lo = max(0.0, 2 * max(ls) - sum(ls)) + 0.05 * sum(ls)
        chains.append((targets_posed[chain[0]], goals[chain[e]], lo, hi))
    shift = [0.0, 0.0, 0.0]
    for _ in range(iterations):
        step, n = [0.0, 0.0, 0.0], 0
        for base, goal, lo, hi in chains:
            d = la.sub(goal, la.add(base, shift))
            dist = la.norm(d)
            if dist < 1e-12:
                continue
            if dist > hi + 1e-9:
                step = la.add(step, la.scale(d, (dist - hi) / dist))
                n += 1
            elif dist < lo - 1e-9:
                step = la.add(step, la.scale(d, (dist - lo) / dist))
                n += 1
        if not n:
            break
        shift = la.add(shift, la.scale(step, 1.0 / len(chains)))
    return shift


def _fabrik(points: list, lengths: list, goal: list, iterations: int = 20) -> list:
    pts = [list(p) for p in points]
    base = pts[0]
    for _ in range(iterations):
        pts[-1] = list(goal)
        for i in range(len(pts) - 2, -1, -1):
            d = la.normalized(la.sub(pts[i], pts[i + 1])) or [0.0, 0.0, 1.0]
            pts[i] = la.add(pts[i + 1], la.scale(d, lengths[i]))
        pts[0] = list(base)
        for i in range(1, len(pts)):
            d = la.normalized(la.sub(pts[i], pts[i - 1])) or [0.0, 0.0, 1.0]
            pts[i] = la.add(pts[i - 1], la.scale(d, lengths[i - 1]))
    return pts


# ----------------------------------------------------------------------------- the photo camera
def tilt_rotation(pitch: float, roll: float = 0.0) -> list:
    """World -> OpenCV-camera rotation of a camera looking along world +Y, tilted down by
    ``pitch`` and rolled by ``roll`` (radians): ``R_z(roll) @ R_x(pitch) @ LEVEL``.

    Mirrors ``backend/camera.py: tilt_rotation`` (the rotation behind an estimate's
    ``world_joints``, ``camera_pitch_deg`` and ``camera_roll_deg``).
    """
    cp, sp, cr, sr = math.cos(pitch), math.sin(pitch), math.cos(roll), math.sin(roll)
    level = [[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]]
    rx = [[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]]
    rz = [[cr, -sr, 0.0], [sr, cr, 0.0], [0.0, 0.0, 1.0]]
    return la.matmul(rz, la.matmul(rx, level))


def solve_camera_position(world_to_cam: list, points_world: list, pixels: list, K: dict) -> list:
    """Camera centre (world, metres) that makes ``points_world`` project onto ``pixels``
    through a camera of rotation ``world_to_cam`` and intrinsics ``K`` (linear least squares
    on the pinhole equations ``(u - cx) / fx * z_c = x_c``, ``(v - cy) / fy * z_c = y_c``,
    the same closed form as the backend's root-translation solve).

    Args:
        world_to_cam: ``[3][3]`` world -> OpenCV camera rotation.
        points_world: ``[N][3]`` world points; pixels: ``[N][2]`` image points (pixels).
        K: ``{"fx", "fy", "cx", "cy"}`` pixels.
    Raises:
        ValueError: fewer than 2 points or a degenerate configuration.
    """
    if len(points_world) < 2 or len(points_world) != len(pixels):
        raise ValueError("solve_camera_position: need at least 2 points with pixels")
    # unknown c = R @ C (camera centre in camera axes): x_c = q - c, q = R @ P
    ata = [[0.0] * 3 for _ in range(3)]
    atb = [0.0] * 3
    for p, (u, v) in zip(points_world, pixels):
        q = la.matvec(world_to_cam, p)
        a, b = (u - K["cx"]) / K["fx"], (v - K["cy"]) / K["fy"]
        for row, rhs in (([1.0, 0.0, -a], q[0] - a * q[2]), ([0.0, 1.0, -b], q[1] - b * q[2])):
            for i in range(3):
                atb[i] += row[i] * rhs
                for j in range(3):
                    ata[i][j] += row[i] * row[j]
    c = _solve3(ata, atb)
    return la.matvec(la.transpose(world_to_cam), c)


def _solve3(a: list, b: list) -> list:
    det = (a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1]) - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
           + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0]))
    if abs(det) < 1e-12:
        raise ValueError("solve_camera_position: degenerate points (all on one ray?)")
    out = []
    for k in range(3):
        m = [[b[i] if j == k else a[i][j] for j in range(3)] for i in range(3)]
        out.append((m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
                    + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])) / det)
    return out


def project(world_to_cam: list, centre: list, K: dict, p: list) -> list:
    """Pixel of world point ``p`` through the camera (OpenCV pinhole)."""
    x = la.matvec(world_to_cam, la.sub(p, centre))
    if x[2] <= 1e-9:
        raise ValueError("project: point behind the camera")
    return [K["fx"] * x[0] / x[2] + K["cx"], K["fy"] * x[1] / x[2] + K["cy"]]


def photo_in_render(K: dict, width: int, height: int) -> dict:
    """A photo's intrinsics ``K`` (pixels of the photo, ``K["width"] x K["height"]``) as seen in a
    render of ``width x height`` pixels that shows the photo fitted inside it, centred (Blender's
    camera background ``frame_method`` 'FIT'): scaled by ``s = min(width / w, height / h)`` about
    the centres, so ``fx, fy`` times ``s`` and the principal point moved with the picture. ``K``
    itself where the sizes are equal; pure math.
    """
    w, h = float(K["width"]), float(K["height"])
    s = min(width / w, height / h)
    return {"fx": K["fx"] * s, "fy": K["fy"] * s, "cx": width / 2.0 + s * (K["cx"] - w / 2.0),
            "cy": height / 2.0 + s * (K["cy"] - h / 2.0), "width": int(width), "height": int(height)}


def blender_camera(world_to_cam: list, centre: list, K: dict, sensor_mm: float = 36.0) -> dict:
    """Blender camera settings that reproduce an OpenCV camera.

    Returns:
        ``{"matrix_world": [4][4], "lens": mm, "sensor_width": mm, "sensor_fit": "AUTO",
        "shift_x", "shift_y", "width", "height"}``; the sensor width spans the larger image
        side (``sensor_fit`` AUTO), square pixels assumed (fx used). Inverse of
        ``camera_math.intrinsics`` + ``camera_math.world_to_opencv_rotation``.
    """
    w, h = int(K["width"]), int(K["height"])
    big = max(w, h)
    r = la.matmul(la.transpose(world_to_cam), [[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])
    return {"matrix_world": la.to4(r, list(centre)), "lens": K["fx"] * sensor_mm / big, "sensor_width": sensor_mm,
            "sensor_fit": "AUTO", "shift_x": (w / 2.0 - K["cx"]) / big, "shift_y": (K["cy"] - h / 2.0) / big,
            "width": w, "height": h}
