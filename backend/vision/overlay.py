"""Pictures of poses (OpenCV): detections and projected hypotheses over a photo, pose thumbnails.

All functions take and return RGB ``uint8`` arrays ``[H, W, 3]``; pixel coordinates follow the
contract (top-left corner of the image at (0, 0)). Left-side bones are drawn in one hue and
right-side bones in another, so that a left/right swap is visible at a glance.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from backend.skeleton import JOINT_NAMES

# RGB colours
_BEST = ((255, 140, 0), (0, 170, 255), (235, 235, 235))  # left, right, centre bones of the best hypothesis
_OTHER = (150, 150, 150)
_KEYPOINT = (255, 40, 40)
_KEYPOINT_RING = (255, 255, 255)
_SHIFT = 4  # sub-pixel drawing: coordinates are multiplied by 2**_SHIFT


def _side(name: str) -> int:
    return 0 if name.startswith("left_") else 1 if name.startswith("right_") else 2


def _pt(p) -> tuple[int, int]:
    return int(round(float(p[0]) * (1 << _SHIFT))), int(round(float(p[1]) * (1 << _SHIFT)))


def _finite(p) -> bool:
    return bool(np.all(np.isfinite(np.asarray(p, np.float64))) and np.all(np.abs(np.asarray(p, np.float64)) < 1e6))


def _draw_skeleton(img: np.ndarray, uv: np.ndarray, joint_names: Sequence[str], parents: Sequence[int],
                   thickness: int, colours: tuple | None) -> None:
    """Lines parent -> joint; ``colours`` = (left, right, centre) or None for the grey of other hypotheses."""
    for j, p in enumerate(parents):
        if p < 0 or j >= len(uv) or p >= len(uv) or not (_finite(uv[j]) and _finite(uv[p])):
            continue
        col = _OTHER if colours is None else colours[_side(joint_names[j])]
        cv2.line(img, _pt(uv[p]), _pt(uv[j]), col, thickness, cv2.LINE_AA, _SHIFT)


def draw_overlay(rgb: np.ndarray, keypoints: dict, projections: list[np.ndarray] | None,
                 joint_names: Sequence[str] = JOINT_NAMES, parents: Sequence[int] | None = None,
                 side_poses: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """Detected keypoints and projected hypotheses drawn over a photo (and the hypotheses from the side).

    Args:
        rgb: ``[H, W, 3]`` uint8 photo (not modified).
        keypoints: name -> ``(u, v[, confidence])`` in pixels of ``rgb``; drawn as dots whose
            opacity follows the confidence.
        projections: hypotheses projected to ``rgb``'s pixels, each ``[J, 2]`` in the order of
            ``joint_names``, best first: the first is drawn in colour (left/right hues) on top,
            the others thin and grey. None or empty for keypoints only.
        joint_names: ``J`` names (for left/right colours).
        parents: ``J`` parent indices (-1 for the root); required when ``projections`` are given.
        side_poses: the same hypotheses as 3D poses (``[J, 3]`` upright frame, Z up, the level camera
            looking along +Y, metres), best first: drawn from the side in a panel right of the photo
            (:func:`side_panel`), so depth and lean differences that the projections hide are visible.
    Returns:
        ``[H, W, 3]`` uint8 RGB picture, ``[H, W + H // 2, 3]`` with ``side_poses``.
    Raises:
        ValueError: ``rgb`` is not an RGB image, or projections are given without ``parents``.
    """
    img = np.ascontiguousarray(np.asarray(rgb, np.uint8)).copy()
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"draw_overlay: expected an RGB image [H, W, 3], got {img.shape}")
    h, w = img.shape[:2]
    unit = max(1, round(max(h, w) / 400))
    if projections:
        if parents is None:
            raise ValueError("draw_overlay: parents are needed to draw projected skeletons")
        for uv in list(projections)[1:][::-1]:
            _draw_skeleton(img, np.asarray(uv, np.float64), joint_names, parents, unit, None)
        _draw_skeleton(img, np.asarray(projections[0], np.float64), joint_names, parents, 2 * unit, _BEST)
    layer = img.copy()
    for kp in (keypoints or {}).values():
        if len(kp) < 2 or not _finite(kp[:2]):
            continue
        cv2.circle(layer, _pt(kp), (3 * unit + 1) << _SHIFT, _KEYPOINT_RING, -1, cv2.LINE_AA, _SHIFT)
        cv2.circle(layer, _pt(kp), (2 * unit + 1) << _SHIFT, _KEYPOINT, -1, cv2.LINE_AA, _SHIFT)
    # blend the dots by confidence (one blend per distinct confidence level, 10 levels)
    out = img
    levels: dict[int, list] = {}
    for kp in (keypoints or {}).values():
        if len(kp) >= 2 and _finite(kp[:2]):
            c = float(kp[2]) if len(kp) > 2 else 1.0
            levels.setdefault(int(round(np.clip(c, 0.0, 1.0) * 10)), []).append(kp)
    for lvl, kps in levels.items():
        alpha = 0.3 + 0.7 * lvl / 10
        mask = np.zeros((h, w), np.uint8)
        for kp in kps:
            cv2.circle(mask, _pt(kp), (3 * unit + 1) << _SHIFT, 255, -1, cv2.LINE_AA, _SHIFT)
        m = (mask.astype(np.float32) / 255.0 * alpha)[..., None]
        out = (out.astype(np.float32) * (1 - m) + layer.astype(np.float32) * m).round().astype(np.uint8)
    if side_poses is not None and len(side_poses):
        if parents is None:
            raise ValueError("draw_overlay: parents are needed to draw the side view")
        out = np.concatenate([out, side_panel(side_poses, h, parents, joint_names)], axis=1)
    return out


def encode_png(rgb: np.ndarray) -> bytes:
    """PNG file bytes of an RGB ``[H, W, 3]`` uint8 image.

    Raises:
        ValueError: not an RGB image, or encoding failed.
    """
    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"encode_png: expected an RGB image [H, W, 3], got {a.shape}")
    ok, buf = cv2.imencode(".png", cv2.cvtColor(a.astype(np.uint8), cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("encode_png: OpenCV could not encode the image")
    return buf.tobytes()


#: Views of :func:`skeleton_preview` / :func:`side_panel`: world (Z up) -> picture axes (right, down).
#: ``front`` looks along world +Y (the direction a level camera of an estimate looks), ``side``
#: along world -X with the camera on the picture's left (right = +Y = away from the camera, so
#: depth and lean show as horizontal offsets), ``top`` down world -Z with the camera at the bottom.
VIEWS = {"front": ((0, 1.0), (2, -1.0)), "side": ((1, 1.0), (2, -1.0)), "top": ((0, 1.0), (1, -1.0))}
_CAMERA_MARK = (250, 220, 90)
_SEPARATOR = (70, 70, 70)


def view_coords(joints_world: np.ndarray, view: str) -> np.ndarray:
    """Orthographic picture coordinates (right, down), metres, of ``[..., J, 3]`` world joints in ``view``."""
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}; valid: {', '.join(VIEWS)}")
    (a, sa), (b, sb) = VIEWS[view]
    p = np.asarray(joints_world, np.float64)
    return np.stack([sa * p[..., a], sb * p[..., b]], -1)


def _camera_mark(img: np.ndarray, view: str, x0: int, width: int, size: int) -> None:
    """A small triangle on the panel's edge pointing the way the camera looks (side: from the left; top: from below)."""
    r = max(3, size // 32)
    if view == "side":
        c = (x0 + r + 1, size // 2)
        pts = np.array([[c[0] - r, c[1] - r], [c[0] + r, c[1]], [c[0] - r, c[1] + r]])
    elif view == "top":
        c = (x0 + width // 2, size - r - 2)
        pts = np.array([[c[0] - r, c[1] + r], [c[0], c[1] - r], [c[0] + r, c[1] + r]])
    else:
        return
    cv2.fillPoly(img, [pts.astype(np.int32)], _CAMERA_MARK, cv2.LINE_AA)


def skeleton_preview(joints_world: np.ndarray, parents: Sequence[int], size: int = 128,
                     joint_names: Sequence[str] | None = None, views: Sequence[str] = ("front", "side")) -> np.ndarray:
    """Small pictures of a 3D pose, for thumbnails: a front view and a side view next to each other.

    ``front`` looks along world +Y (the camera stands in front of a body facing -Y, as the rest
    pose does; for an estimate's upright pose it is the view from the level camera): picture
    right = world +X, up = world +Z. ``side`` (see :data:`VIEWS`) shows the same pose turned 90
    degrees, the camera on the left (marked by a small yellow triangle), so hypotheses that look
    alike from the camera show their different depths and leans. All views share one scale and
    one vertical placement; the pose is fitted with a margin, keeping its proportions.

    Args:
        joints_world: ``[J, 3]`` world frame (Z up), metres.
        parents: ``J`` parent indices (-1 for the root).
        size: side of the square picture, pixels, split into ``len(views)`` equal panels side by side.
        joint_names: ``J`` names for left/right colours (default: the model skeleton's when ``J`` matches).
        views: names from :data:`VIEWS`, left to right.
    Returns:
        ``[size, size, 3]`` uint8 RGB picture on a dark background.
    Raises:
        ValueError: ``joints_world`` is not ``[J, 3]`` with ``J == len(parents)``, or an unknown view.
    """
    p = np.asarray(joints_world, np.float64)
    if p.ndim != 2 or p.shape[1] != 3 or len(p) != len(parents):
        raise ValueError(f"skeleton_preview: expected joints [J, 3] with J = {len(parents)}, got {p.shape}")
    views = list(views) or ["front"]
    names = list(joint_names) if joint_names is not None else (list(JOINT_NAMES) if len(p) == len(JOINT_NAMES) else [""] * len(p))
    img = np.full((size, size, 3), 30, np.uint8)
    ok = np.isfinite(p).all(-1)
    if not ok.any():
        return img
    bounds = [size * v // len(views) for v in range(len(views) + 1)]
    xys = [view_coords(p, v) for v in views]
    # one scale for every panel: the largest extent of any view fits its panel
    s = np.inf
    for xy, x0, x1 in zip(xys, bounds[:-1], bounds[1:]):
        lo, hi = xy[ok].min(0), xy[ok].max(0)
        s = min(s, (x1 - x0) * 0.85 / max(float(hi[0] - lo[0]), 1e-6), size * 0.85 / max(float(hi[1] - lo[1]), 1e-6))
    ys = np.concatenate([xy[ok][:, 1] for xy in xys])
    ymid = (ys.min() + ys.max()) / 2
    for v, xy, x0, x1 in zip(views, xys, bounds[:-1], bounds[1:]):
        xmid = (xy[ok][:, 0].min() + xy[ok][:, 0].max()) / 2
        uv = np.stack([(xy[:, 0] - xmid) * s + (x0 + x1) / 2, (xy[:, 1] - ymid) * s + size / 2], -1)
        if x0 > 0:
            cv2.line(img, (x0, 0), (x0, size - 1), _SEPARATOR, 1)
        _camera_mark(img, v, x0, x1 - x0, size)
        _draw_skeleton(img, uv, names, parents, max(1, round(size / 64)), _BEST)
        for j in np.flatnonzero(ok):
            cv2.circle(img, _pt(uv[j]), max(1, round(size / 100)) << _SHIFT, (255, 255, 255), -1, cv2.LINE_AA, _SHIFT)
    return img


def side_panel(poses_world: Sequence[np.ndarray], height: int, parents: Sequence[int],
               joint_names: Sequence[str] = JOINT_NAMES, view: str = "side") -> np.ndarray:
    """Hypotheses drawn from the side (or the top), to put next to a photo overlay.

    The poses (upright frame of the estimate, Z up, the level camera looking along +Y) are
    aligned at the pelvis and drawn in one orthographic ``view`` at one scale: the best in colour
    on top, the others thin and grey; the camera side is marked (see :func:`skeleton_preview`).

    Args:
        poses_world: hypotheses ``[J, 3]`` (metres), best first.
        height: picture height in pixels (the photo's); the panel is ``height // 2`` wide.
    Returns:
        ``[height, height // 2, 3]`` uint8 RGB picture on a dark background.
    """
    w = max(16, height // 2)
    img = np.full((height, w, 3), 30, np.uint8)
    P = [np.asarray(q, np.float64) - np.asarray(q, np.float64)[:1] for q in poses_world]
    P = [q for q in P if np.isfinite(q).all()]
    if not P:
        return img
    xy = [view_coords(q, view) for q in P]
    allxy = np.concatenate(xy)
    lo, hi = allxy.min(0), allxy.max(0)
    s = min(w * 0.85 / max(float(hi[0] - lo[0]), 1e-6), height * 0.85 / max(float(hi[1] - lo[1]), 1e-6))
    mid = (lo + hi) / 2
    unit = max(1, round(height / 400))
    uvs = [(q - mid) * s + np.array([w / 2, height / 2]) for q in xy]
    for uv in uvs[1:][::-1]:
        _draw_skeleton(img, uv, joint_names, parents, unit, None)
    _draw_skeleton(img, uvs[0], joint_names, parents, 2 * unit, _BEST)
    _camera_mark(img, view, 0, w, height)
    return img
