"""Pose error metrics (millimetres in, millimetres out when given millimetres).

MPJPE: mean per-joint position error after aligning the roots (Ionescu et al. 2014).
PA-MPJPE: the same after a similarity Procrustes alignment (rotation, translation, scale).
"""

from __future__ import annotations

import numpy as np


def mpjpe(pred: np.ndarray, gt: np.ndarray, root: int | None = 0) -> np.ndarray:
    """Mean per-joint position error.

    Args:
        pred, gt: ``[..., J, 3]`` (same units); root: joint subtracted from both first (None = no alignment).
    Returns:
        ``[...]`` mean Euclidean error per pose.
    """
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    if root is not None:
        pred = pred - pred[..., root : root + 1, :]
        gt = gt - gt[..., root : root + 1, :]
    return np.linalg.norm(pred - gt, axis=-1).mean(-1)


def procrustes_align(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Similarity transform of each ``pred`` ``[..., J, 3]`` that best matches ``gt`` (Umeyama 1991)."""
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    mp, mg = pred.mean(-2, keepdims=True), gt.mean(-2, keepdims=True)
    p, g = pred - mp, gt - mg
    H = np.swapaxes(p, -1, -2) @ g
    U, S, Vt = np.linalg.svd(H)
    d = np.sign(np.linalg.det(np.swapaxes(Vt, -1, -2) @ np.swapaxes(U, -1, -2)))
    D = np.zeros(U.shape)
    D[..., 0, 0] = 1
    D[..., 1, 1] = 1
    D[..., 2, 2] = d
    R = np.swapaxes(Vt, -1, -2) @ D @ np.swapaxes(U, -1, -2)
    scale = (S * np.diagonal(D, axis1=-2, axis2=-1)).sum(-1) / (p**2).sum((-1, -2))
    return scale[..., None, None] * (p @ np.swapaxes(R, -1, -2)) + mg


def pa_mpjpe(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """MPJPE after Procrustes (similarity) alignment; ``[..., J, 3] -> [...]``."""
    return mpjpe(procrustes_align(pred, gt), gt, root=None)
