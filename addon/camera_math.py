# SPDX-License-Identifier: GPL-3.0-or-later
"""Blender camera <-> backend camera (OpenCV) conversions; pure Python, no bpy.

Frames: Blender camera local axes are x right, y up, looking down -Z; the backend's camera
frame is OpenCV (x right, y down, z forward), so ``opencv = diag(1, -1, -1) @ blender_local``.
World is Blender's (Z up, metres). Matrices are row-major nested lists.
"""

from __future__ import annotations

from . import linalg as la

FLIP = [[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]]


def intrinsics(lens_mm: float, sensor_width_mm: float, sensor_height_mm: float, sensor_fit: str,
               width: int, height: int, shift_x: float = 0.0, shift_y: float = 0.0) -> dict:
    """Pixel intrinsics of a Blender perspective camera rendering ``width x height`` pixels.

    Args:
        sensor_fit: ``"AUTO"`` (sensor width spans the larger image side), ``"HORIZONTAL"``
            or ``"VERTICAL"``, as ``Camera.sensor_fit``.
        shift_x, shift_y: lens shift (fraction of the larger side), as ``Camera.shift_x/y``.
    Returns:
        ``{"fx", "fy", "cx", "cy", "width", "height"}`` in pixels (square pixels).
    Raises:
        ValueError: for non-positive sizes.
    """
    if lens_mm <= 0 or width <= 0 or height <= 0:
        raise ValueError("camera: focal length and image size must be positive")
    if sensor_fit == "VERTICAL" or (sensor_fit == "AUTO" and height > width):
        span_px, sensor = (height, sensor_height_mm) if sensor_fit == "VERTICAL" else (height, sensor_width_mm)
    else:
        span_px, sensor = width, sensor_width_mm
    f = lens_mm / sensor * span_px
    big = max(width, height)
    return {"fx": f, "fy": f, "cx": width / 2.0 - shift_x * big, "cy": height / 2.0 + shift_y * big,
            "width": int(width), "height": int(height)}


def world_to_opencv_rotation(camera_matrix_world) -> list:
    """3x3 world -> OpenCV-camera rotation of a Blender camera (scale removed)."""
    r = la.orthonormalize(la.to3(camera_matrix_world))
    return la.matmul(FLIP, la.transpose(r))


def camera_points_to_world(points_cam: list, camera_matrix_world) -> list:
    """OpenCV camera-frame points (metres) -> world points through a Blender camera.

    ``world = camera_matrix_world @ diag(1, -1, -1) @ p``.
    """
    m = [list(r) for r in camera_matrix_world]
    r = la.orthonormalize(la.to3(m))
    t = la.translation(m)
    rf = la.matmul(r, FLIP)
    return [la.add(la.matvec(rf, p), t) for p in points_cam]


def camera_directions_to_world(vectors_cam: list, camera_matrix_world) -> list:
    """Like ``camera_points_to_world`` for vectors (no translation)."""
    r = la.orthonormalize(la.to3([list(x) for x in camera_matrix_world]))
    rf = la.matmul(r, FLIP)
    return [la.matvec(rf, v) for v in vectors_cam]


def turned_camera_matrix(camera_matrix_world, motion) -> list:
    """The Blender camera (4x4 ``matrix_world``) of a frame filmed after the camera turned by ``motion``.

    ``motion`` is the backend's ``sequence.camera_motion[t]``: the 3x3 rotation with ``x_t = M_t x_0``
    for a point's OpenCV camera coordinates in the first frame (``x_0``) and in frame ``t``. The camera
    keeps its position (a turn about its centre) and its scale; its local axes turn by
    ``diag(1, -1, -1) M_t^T diag(1, -1, -1)`` (the same turn in Blender's camera axes):
    ``camera_t = camera_0 @ [[F M_t^T F, 0], [0, 1]]``.
    """
    m = [list(r) for r in camera_matrix_world]
    turn = la.matmul(la.matmul(FLIP, la.transpose(motion)), FLIP)
    return la.matmul(m, la.to4(turn))


def moved_camera_matrix(camera_matrix_world, motion=None, translation=None, scale: float = 1.0) -> list:
    """The Blender camera (4x4 ``matrix_world``) of a frame filmed after the camera turned by ``motion``
    (as :func:`turned_camera_matrix`; None = no turn) and travelled by ``translation``: the backend's
    ``sequence.camera_translation[t]``, the camera centre's position relative to the first frame's in
    the first frame's OpenCV camera frame (model metres, times ``scale`` for the rig's size; None =
    in place)."""
    m = turned_camera_matrix(camera_matrix_world, motion) if motion is not None else [list(r) for r in camera_matrix_world]
    if translation is not None:
        p = camera_points_to_world([la.scale(list(translation), scale)], camera_matrix_world)[0]
        for i in range(3):
            m[i][3] = p[i]
    return m
