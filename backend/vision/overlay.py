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
                 joint_names: Sequence[str] = JOINT_NAMES, parents: Sequence[int] | None = None) -> np.ndarray:
    """Detected keypoints and projected hypotheses drawn over a photo.

    Args:
        rgb: ``[H, W, 3]`` uint8 photo (not modified).
        keypoints: name -> ``(u, v[, confidence])`` in pixels of ``rgb``; drawn as dots whose
            opacity follows the confidence.
        projections: hypotheses projected to ``rgb``'s pixels, each ``[J, 2]`` in the order of
            ``joint_names``, best first: the first is drawn in colour (left/right hues) on top,
            the others thin and grey. None or empty for keypoints only.
        joint_names: ``J`` names (for left/right colours).
        parents: ``J`` parent indices (-1 for the root); required when ``projections`` are given.
    Returns:
        ``[H, W, 3]`` uint8 RGB picture.
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


def skeleton_preview(joints_world: np.ndarray, parents: Sequence[int], size: int = 128,
                     joint_names: Sequence[str] | None = None) -> np.ndarray:
    """Small front view of a 3D pose, for thumbnails.

    The view looks along world +Y (the camera stands in front of a body facing -Y, as the
    rest pose does): image right = world +X, image up = world +Z. The pose is centred and
    scaled to fit with a margin, keeping its proportions.

    Args:
        joints_world: ``[J, 3]`` world frame (Z up), metres.
        parents: ``J`` parent indices (-1 for the root).
        size: side of the square picture, pixels.
        joint_names: ``J`` names for left/right colours (default: the model skeleton's when ``J`` matches).
    Returns:
        ``[size, size, 3]`` uint8 RGB picture on a dark background.
    Raises:
        ValueError: ``joints_world`` is not ``[J, 3]`` with ``J == len(parents)``.
    """
    p = np.asarray(joints_world, np.float64)
    if p.ndim != 2 or p.shape[1] != 3 or len(p) != len(parents):
        raise ValueError(f"skeleton_preview: expected joints [J, 3] with J = {len(parents)}, got {p.shape}")
    names = list(joint_names) if joint_names is not None else (list(JOINT_NAMES) if len(p) == len(JOINT_NAMES) else [""] * len(p))
    img = np.full((size, size, 3), 30, np.uint8)
    xy = np.stack([p[:, 0], -p[:, 2]], -1)
    ok = np.isfinite(xy).all(-1)
    if not ok.any():
        return img
    lo, hi = xy[ok].min(0), xy[ok].max(0)
    extent = max(float((hi - lo).max()), 1e-6)
    s = size * 0.85 / extent
    uv = (xy - (lo + hi) / 2) * s + size / 2
    _draw_skeleton(img, uv, names, parents, max(1, round(size / 64)), _BEST)
    for j in np.flatnonzero(ok):
        cv2.circle(img, _pt(uv[j]), max(1, round(size / 100)) << _SHIFT, (255, 255, 255), -1, cv2.LINE_AA, _SHIFT)
    return img
