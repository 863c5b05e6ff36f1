"""BlazePose decoding on numpy: SSD anchors, weighted non-maximum suppression, the crop and
letterbox affines, and the landmark refinement from heatmaps (MediaPipe's pose pipeline
re-implemented; :mod:`backend.vision.detector` runs the two TFLite models around them).

Conventions as in :mod:`backend.vision.detector`: image pixels with (0, 0) at the top-left
corner; heatmap cells with centres at integer coordinates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# ---- person detector settings (MediaPipe pose_detection_cpu.pbtxt) ----
DET_SIZE = 224
DET_STRIDES = (8, 16, 32, 32, 32)
DET_SCORE_THRESHOLD = 0.5
DET_NMS_IOU = 0.3
#: ROI: side = ROI_SCALE * 2 * |k1 - k0| (MediaPipe: box 2x the alignment distance, then 1.25x).
ROI_SCALE = 1.25

# ---- landmark model ----
LM_SIZE = 256
HM_SIZE = 64
HM_STRIDE = LM_SIZE // HM_SIZE
#: Landmark refinement from the heatmaps (MediaPipe ``RefineLandmarksFromHeatmapCalculator``):
#: window side in cells, and the least sigmoid(logit) peak in the window that allows it.
REFINE_KERNEL = 7
REFINE_MIN_CONFIDENCE = 0.5


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.clip(x, -80.0, 80.0)))


def ssd_anchors() -> np.ndarray:
    """Anchor centres of the pose detector, ``[2254, 2]`` normalised (x, y) in the 224x224 input.

    MediaPipe ``SsdAnchorsCalculator`` with ``fixed_anchor_size``: anchors have size 1, so only
    centres matter; consecutive layers with the same stride share one grid (2 anchors per
    location per layer: aspect ratio 1 plus the interpolated scale).
    """
    out = []
    i = 0
    while i < len(DET_STRIDES):
        s = DET_STRIDES[i]
        n_layers = 0
        while i < len(DET_STRIDES) and DET_STRIDES[i] == s:
            n_layers += 1
            i += 1
        g = math.ceil(DET_SIZE / s)
        ys, xs = np.meshgrid((np.arange(g) + 0.5) / g, (np.arange(g) + 0.5) / g, indexing="ij")
        centres = np.stack([xs.ravel(), ys.ravel()], -1)
        out.append(np.repeat(centres, 2 * n_layers, axis=0))
    return np.concatenate(out).astype(np.float32)


def letterbox_matrix(w: int, h: int, size: int) -> tuple[np.ndarray, float, float, float]:
    """Affine image pixels -> letterboxed ``size`` x ``size`` input (keep aspect, centred)."""
    s = size / max(w, h)
    ox, oy = (size - w * s) / 2.0, (size - h * s) / 2.0
    return np.array([[s, 0, ox], [0, s, oy]], np.float64), s, ox, oy


def to_index_affine(A: np.ndarray) -> np.ndarray:
    """Affine between corner-origin continuous coordinates -> the same between pixel indices."""
    A = np.asarray(A, np.float64).copy()
    A[:, 2] += A[:, :2] @ np.array([0.5, 0.5]) - 0.5
    return A


def crop_matrix(centre, size: float, rotation: float, out: int) -> np.ndarray:
    """Affine crop pixels (continuous, 0..out) -> image pixels for a rotated square ROI."""
    c, s = math.cos(rotation), math.sin(rotation)
    k = size / out
    R = np.array([[c, -s], [s, c]]) * k
    t = np.asarray(centre, np.float64) - R @ np.array([out / 2.0, out / 2.0])
    return np.concatenate([R, t[:, None]], 1)


def refine_from_heatmaps(xy: np.ndarray, logits: np.ndarray, kernel: int = REFINE_KERNEL,
                         min_confidence: float = REFINE_MIN_CONFIDENCE) -> np.ndarray:
    """Refine landmarks with their heatmaps (MediaPipe ``RefineLandmarksFromHeatmapCalculator``).

    Args:
        xy: ``[L, 2]`` landmarks in crop pixels (0..256).
        logits: ``[L, 64, 64]`` heatmap logits of the same landmarks.
    Returns:
        ``[L, 2]`` crop pixels: the sigmoid-weighted mean cell of a ``kernel`` x ``kernel`` window
        around each landmark (cell centre c <-> crop pixel 4c), where the window's peak
        probability is at least ``min_confidence``; other landmarks are unchanged.
    """
    out = np.asarray(xy, np.float64).copy()
    n, hh, ww = logits.shape
    half = (kernel - 1) // 2
    for j in range(n):
        if not np.isfinite(out[j]).all():
            continue
        c, r = int(out[j, 0] / HM_STRIDE), int(out[j, 1] / HM_STRIDE)
        r0, r1, c0, c1 = max(0, r - half), min(hh, r + half + 1), max(0, c - half), min(ww, c + half + 1)
        if r0 >= r1 or c0 >= c1:
            continue
        p = sigmoid(logits[j, r0:r1, c0:c1].astype(np.float64))
        if p.max() < min_confidence or p.sum() <= 0:
            continue
        rr, cc = np.mgrid[r0:r1, c0:c1]
        out[j] = [(p * cc).sum() / p.sum() * HM_STRIDE, (p * rr).sum() / p.sum() * HM_STRIDE]
    return out


@dataclass
class PersonROI:
    """A detected person: detector score, face/body box, and the rotated square crop.

    ``centre`` and ``size`` in image pixels, ``rotation`` in radians (the angle by which the
    crop is rotated in the image; MediaPipe's convention), ``box`` ``[x0, y0, x1, y1]`` pixels,
    ``keypoints`` ``[4, 2]`` the detector's keypoints in image pixels (a crop predicted from the
    landmarks, :mod:`backend.vision.follow`, has its two alignment points there).
    """

    score: float
    box: np.ndarray
    keypoints: np.ndarray
    centre: np.ndarray
    size: float
    rotation: float

    def square(self) -> np.ndarray:
        """``[x0, y0, x1, y1]`` of the crop's axis-aligned square (pixels, rotation ignored)."""
        return np.concatenate([self.centre - self.size / 2.0, self.centre + self.size / 2.0])


def alignment_roi(k0, k1, scale: float = ROI_SCALE) -> tuple[np.ndarray, float, float]:
    """The rotated square crop of a person from two alignment points (MediaPipe
    ``AlignmentPointsRectsCalculator`` + ``RectTransformationCalculator``, as in
    ``pose_detection_to_roi`` and ``pose_landmarks_to_roi``).

    Args:
        k0: ``[2]`` the hip centre, image pixels (the detector's keypoint 0, or the landmark
            model's auxiliary landmark 33).
        k1: ``[2]`` the point whose distance gives the body size and whose direction its rotation
            (keypoint 1 / auxiliary landmark 34).
        scale: side of the square over twice ``|k1 - k0|``.
    Returns:
        ``(centre [2] pixels, side in pixels, rotation in radians)``: centred on ``k0``, rotated so
        that ``k0 -> k1`` points up in the crop (y down in images).
    """
    k0, k1 = np.asarray(k0, np.float64), np.asarray(k1, np.float64)
    v = k1 - k0
    rot = math.pi / 2 - math.atan2(-v[1], v[0])
    rot = (rot + math.pi) % (2 * math.pi) - math.pi
    return k0.copy(), 2.0 * float(np.hypot(*v)) * scale, rot


def box_intersection(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Area shared by one box ``[4]`` and each of ``boxes`` ``[N, 4]`` (``[x0, y0, x1, y1]``)."""
    box, boxes = np.asarray(box, np.float64), np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.prod(np.clip(np.minimum(box[2:], boxes[:, 2:]) - np.maximum(box[:2], boxes[:, :2]), 0, None), axis=1)


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one box ``[4]`` with each of ``boxes`` ``[N, 4]`` (``[x0, y0, x1, y1]``)."""
    box, boxes = np.asarray(box, np.float64), np.asarray(boxes, np.float64).reshape(-1, 4)
    inter = box_intersection(box, boxes)
    area = lambda b: np.maximum(b[..., 2] - b[..., 0], 0) * np.maximum(b[..., 3] - b[..., 1], 0)  # noqa: E731
    return inter / np.maximum(area(box) + area(boxes) - inter, 1e-9)


def weighted_nms(scores: np.ndarray, boxes: np.ndarray, kps: np.ndarray, iou_thr: float):
    """MediaPipe's weighted non-maximum suppression.

    Candidates overlapping the best remaining one by IoU > ``iou_thr`` are merged into it
    (score-weighted mean of boxes and keypoints; the best score is kept).

    Yields:
        ``(score, box [4], keypoints [4, 2])`` per kept detection.
    """
    order = np.argsort(-scores)
    scores, boxes, kps = scores[order], boxes[order], kps[order]
    alive = np.ones(len(scores), bool)
    for i in range(len(scores)):
        if not alive[i]:
            continue
        group = alive & (box_iou(boxes[i], boxes) > iou_thr)
        group[i] = True
        wts = scores[group][:, None]
        box = (boxes[group] * wts).sum(0) / wts.sum()
        kp = (kps[group] * wts[:, :, None]).sum(0) / wts.sum()
        alive &= ~group
        yield float(scores[i]), box, kp
