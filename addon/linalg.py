# SPDX-License-Identifier: GPL-3.0-or-later
"""Small linear algebra for retargeting: 3-vectors, row-major ``[3][3]`` / ``[4][4]`` matrices,
swing/twist frames, quaternion and Euler conversions.

Pure Python (no bpy, no mathutils, no numpy) so that the retargeting math imports and is
unit-tested without Blender; :mod:`blender_rig` uses ``mathutils`` where Blender's own Euler
compatibility matters.
"""

from __future__ import annotations

import math

Vec = list
Mat = list


def sub(a, b):
    return [a[0] - b[0], a[1] - b[1], a[2] - b[2]]


def add(a, b):
    return [a[0] + b[0], a[1] + b[1], a[2] + b[2]]


def scale(a, s):
    return [a[0] * s, a[1] * s, a[2] * s]


def dot(a, b):
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def cross(a, b):
    return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]


def norm(a):
    return math.sqrt(dot(a, a))


def normalized(a, eps: float = 1e-12):
    """Unit vector along ``a``, or None if ``a`` is (nearly) zero."""
    n = norm(a)
    return None if n < eps else [a[0] / n, a[1] / n, a[2] / n]


def angle_between(a, b) -> float:
    """Angle between two 3-vectors, radians (0..pi)."""
    na, nb = norm(a), norm(b)
    if na < 1e-12 or nb < 1e-12:
        raise ValueError("angle_between: zero-length vector")
    return math.atan2(norm(cross(a, b)), dot(a, b))


def matmul(a: Mat, b: Mat) -> Mat:
    """Product of two square matrices of the same size (3x3 or 4x4)."""
    n = len(a)
    return [[sum(a[i][k] * b[k][j] for k in range(n)) for j in range(n)] for i in range(n)]


def matvec(a: Mat, v: Vec) -> Vec:
    """``a @ v`` for a 3x3 ``a``, or the affine transform of point ``v`` for a 4x4 ``a``."""
    if len(a) == 4:
        return [a[i][0] * v[0] + a[i][1] * v[1] + a[i][2] * v[2] + a[i][3] for i in range(3)]
    return [a[i][0] * v[0] + a[i][1] * v[1] + a[i][2] * v[2] for i in range(3)]


def transpose(a: Mat) -> Mat:
    return [list(r) for r in zip(*a)]


def identity(n: int = 3) -> Mat:
    return [[1.0 if i == j else 0.0 for j in range(n)] for i in range(n)]


def to3(m: Mat) -> Mat:
    return [list(m[i][:3]) for i in range(3)]


def to4(r: Mat, t: Vec | None = None) -> Mat:
    t = t or [0.0, 0.0, 0.0]
    return [list(r[0]) + [t[0]], list(r[1]) + [t[1]], list(r[2]) + [t[2]], [0.0, 0.0, 0.0, 1.0]]


def translation(m: Mat) -> Vec:
    return [m[0][3], m[1][3], m[2][3]]


def column(m: Mat, j: int) -> Vec:
    return [m[0][j], m[1][j], m[2][j]]


def rigid_inverse(m: Mat) -> Mat:
    """Inverse of a 4x4 rotation+translation matrix (no scale)."""
    rt = transpose(to3(m))
    return to4(rt, scale(matvec(rt, translation(m)), -1.0))


def orthonormalize(r: Mat) -> Mat:
    """Closest-ish rotation to ``r`` (Gram-Schmidt on the columns, Y first); removes scale."""
    y = normalized(column(r, 1)) or [0.0, 1.0, 0.0]
    z = cross(column(r, 0), y)
    z = normalized(z) or perpendicular(y)
    x = cross(y, z)
    return [[x[i], y[i], z[i]] for i in range(3)]


def perpendicular(v: Vec) -> Vec:
    """Some unit vector perpendicular to unit ``v``."""
    a = [1.0, 0.0, 0.0] if abs(v[0]) < 0.9 else [0.0, 1.0, 0.0]
    return normalized(cross(v, a))


def axis_angle_matrix(axis: Vec, angle: float) -> Mat:
    """Rotation matrix of ``angle`` radians about unit ``axis`` (right hand)."""
    x, y, z = axis
    c, s = math.cos(angle), math.sin(angle)
    t = 1.0 - c
    return [
        [t * x * x + c, t * x * y - s * z, t * x * z + s * y],
        [t * x * y + s * z, t * y * y + c, t * y * z - s * x],
        [t * x * z - s * y, t * y * z + s * x, t * z * z + c],
    ]


def swing(a: Vec, b: Vec) -> Mat:
    """The smallest rotation taking direction ``a`` to direction ``b`` (both non-zero)."""
    a, b = normalized(a), normalized(b)
    ax = cross(a, b)
    s, c = norm(ax), dot(a, b)
    if s < 1e-9:
        if c > 0:
            return identity()
        return axis_angle_matrix(perpendicular(a), math.pi)
    return axis_angle_matrix(scale(ax, 1.0 / s), math.atan2(s, c))


def frame(y: Vec, ref: Vec) -> Mat | None:
    """Orthonormal frame (columns x, y, z) with Y along ``y`` and X toward ``ref``'s part
    perpendicular to ``y``; None if ``ref`` is (nearly) parallel to ``y``."""
    y = normalized(y)
    if y is None:
        return None
    p = sub(ref, scale(y, dot(ref, y)))
    n = norm(p)
    if n < TWIST_MIN_SIN * max(norm(ref), 1e-12):
        return None
    x = scale(p, 1.0 / n)
    z = cross(x, y)
    return [[x[i], y[i], z[i]] for i in range(3)]


#: A twist reference is used only if at least this sine of the angle to the bone (~8.6 deg).
TWIST_MIN_SIN = 0.15


# --- rotation conversions (pure fallbacks; blender_rig uses mathutils for Euler compatibility)
def quaternion_from_matrix(r: Mat) -> list[float]:
    """Unit quaternion ``[w, x, y, z]`` of a rotation matrix (w >= 0)."""
    tr = r[0][0] + r[1][1] + r[2][2]
    if tr > 0:
        s = math.sqrt(tr + 1.0) * 2
        q = [0.25 * s, (r[2][1] - r[1][2]) / s, (r[0][2] - r[2][0]) / s, (r[1][0] - r[0][1]) / s]
    elif r[0][0] > r[1][1] and r[0][0] > r[2][2]:
        s = math.sqrt(1.0 + r[0][0] - r[1][1] - r[2][2]) * 2
        q = [(r[2][1] - r[1][2]) / s, 0.25 * s, (r[0][1] + r[1][0]) / s, (r[0][2] + r[2][0]) / s]
    elif r[1][1] > r[2][2]:
        s = math.sqrt(1.0 + r[1][1] - r[0][0] - r[2][2]) * 2
        q = [(r[0][2] - r[2][0]) / s, (r[0][1] + r[1][0]) / s, 0.25 * s, (r[1][2] + r[2][1]) / s]
    else:
        s = math.sqrt(1.0 + r[2][2] - r[0][0] - r[1][1]) * 2
        q = [(r[1][0] - r[0][1]) / s, (r[0][2] + r[2][0]) / s, (r[1][2] + r[2][1]) / s, 0.25 * s]
    n = math.sqrt(sum(c * c for c in q))
    q = [c / n for c in q]
    return q if q[0] >= 0 else [-c for c in q]


def matrix_from_quaternion(q) -> Mat:
    """Rotation matrix of quaternion ``[w, x, y, z]`` (normalised first)."""
    n = math.sqrt(sum(c * c for c in q))
    if n < 1e-12:
        raise ValueError("matrix_from_quaternion: zero quaternion")
    w, x, y, z = (c / n for c in q)
    return [
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ]


def _axis_rot(axis: str, a: float) -> Mat:
    c, s = math.cos(a), math.sin(a)
    if axis == "X":
        return [[1, 0, 0], [0, c, -s], [0, s, c]]
    if axis == "Y":
        return [[c, 0, s], [0, 1, 0], [-s, 0, c]]
    return [[c, -s, 0], [s, c, 0], [0, 0, 1]]


def matrix_from_euler(angles, order: str = "XYZ") -> Mat:
    """Rotation of Blender Euler ``angles`` (x, y, z radians) in ``order`` (e.g. ``"XYZ"``:
    X applied first, i.e. ``R = Rz @ Ry @ Rx``)."""
    idx = {"X": 0, "Y": 1, "Z": 2}
    r = identity()
    for ax in order:
        r = matmul(_axis_rot(ax, angles[idx[ax]]), r)
    return r


def euler_from_matrix(r: Mat, order: str = "XYZ") -> list[float]:
    """Euler angles ``[x, y, z]`` (radians) with ``matrix_from_euler(angles, order) == r``."""
    idx = {"X": 0, "Y": 1, "Z": 2}
    i, j, k = (idx[c] for c in order)
    # R = R_k(c) R_j(b) R_i(a); parity +1 for cyclic orders (XYZ, YZX, ZXY).
    par = 1.0 if (j - i) % 3 == 1 else -1.0
    sb = -par * r[k][i]
    sb = max(-1.0, min(1.0, sb))
    b = math.asin(sb)
    if abs(sb) < 1 - 1e-9:
        a = math.atan2(par * r[k][j], r[k][k])
        c = math.atan2(par * r[j][i], r[i][i])
    else:  # gimbal lock: put everything in a
        c = 0.0
        a = math.atan2(-par * r[j][k], r[j][j])
    out = [0.0, 0.0, 0.0]
    out[i], out[j], out[k] = a, b, c
    return out
