"""Kinematic flips: a hypothesis' limb bones turned to their other depth along the camera rays.

A bone of known length whose parent joint is placed has two positions for its child joint that
project to the same pixel: the camera ray through the child meets the sphere of the bone's length
around the parent twice, once nearer and once farther (the forward/backward depth ambiguity of
monocular pose; Taylor 2000, "Reconstruction of articulated objects from point correspondences in
a single uncalibrated image"). Sminchisescu & Triggs (2003, "Kinematic jump processes for
monocular 3D human tracking") jump between these "kinematic flips" to explore the modes a
monocular likelihood cannot tell apart. Here they widen a photo's candidate pool after the
guided sampler: the sampler's candidates share their limb depths more than the photo warrants
(its guidance and the prior pull the same way), while each flip fits the 2D exactly as well as
its source, so the prior's plausibility alone decides between them (issue 13).

For each chosen joint ``j`` the child is moved to the other intersection ``s' = 2 (d . P) - s``
(``d`` the unit ray through the child, ``P`` the parent, ``s`` the child's distance along ``d``);
every joint below ``j`` is re-solved on its own ray, keeping the side of its parent it was on,
so the whole variant projects where its source did and keeps its bone lengths. A joint whose ray
no longer reaches its bone's sphere (the parent moved too far from it) takes the ray's point
nearest the sphere; variants where one misses by more than ``MAX_MISS`` are left out.

Pure numpy on camera-frame absolute joints (OpenCV camera, metres).
"""

from __future__ import annotations

import numpy as np

from backend.skeleton import JOINT_INDEX, PARENTS

#: The joints whose bone is flipped, one per variant: knees, ankles, elbows, wrists (the thigh,
#: shin, upper arm and forearm). Flipping two at once (both bones of a limb) was measured too and
#: gave no more (see ``backend.service.PoseService._with_flips``).
FLIP_JOINTS: tuple[int, ...] = tuple(JOINT_INDEX[n] for n in (
    "right_knee", "right_ankle", "left_knee", "left_ankle",
    "left_elbow", "left_wrist", "right_elbow", "right_wrist"))
#: A variant is kept only where every re-solved joint's ray comes this close to its bone's sphere
#: (metres): the bone lengths then change by at most this.
MAX_MISS = 0.005
#: Variants with a joint nearer the camera than this (metres; on the ray's far side of the
#: camera centre a point projects to the same pixel) are left out.
MIN_DEPTH = 0.05


def resolve_along_rays(X: np.ndarray, flip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Re-place each pose's joints on their own camera rays, the bones in ``flip`` at their other depth.

    Args:
        X: ``[N, J, 3]`` camera-frame absolute joints (metres, in front of the camera), joint
            order of :data:`backend.skeleton.PARENTS` (parents before children).
        flip: ``[N, J]`` bool, the joints whose bone (from the parent) takes the other
            intersection of its ray with the bone's sphere.
    Returns:
        (``[N, J, 3]``: the same projections, each joint on the ray of the same joint of ``X``, and
        bone lengths; the root and every joint whose bone and ancestors are not flipped unchanged;
        ``[N]`` metres, the most any joint's ray missed its bone's sphere, 0 where all reach).
    Raises:
        ValueError: ``X`` and ``flip`` shapes disagree.
    """
    X = np.asarray(X, np.float64)
    flip = np.asarray(flip, bool)
    if X.ndim != 3 or flip.shape != X.shape[:2]:
        raise ValueError(f"resolve_along_rays: X {X.shape} and flip {flip.shape} must be [N, J, 3] and [N, J]")
    Y = X.copy()
    miss = np.zeros(len(X))
    for j in range(1, X.shape[1]):
        p = PARENTS[j]
        d = X[:, j] / np.linalg.norm(X[:, j], axis=-1, keepdims=True)
        L2 = ((X[:, j] - X[:, p]) ** 2).sum(-1)
        side = np.sign(np.linalg.norm(X[:, j], axis=-1) - (d * X[:, p]).sum(-1))  # farther (+) or nearer (-) than the parent
        side = np.where(side == 0, 1.0, side) * np.where(flip[:, j], -1.0, 1.0)
        b = (d * Y[:, p]).sum(-1)
        disc = b * b - (Y[:, p] ** 2).sum(-1) + L2  # L^2 - (distance of the parent from the ray)^2
        miss = np.maximum(miss, np.sqrt(np.maximum(L2 - disc, 0.0)) - np.sqrt(L2))
        Y[:, j] = (b + side * np.sqrt(np.maximum(disc, 0.0)))[:, None] * d
    return Y, miss


def kinematic_flips(camera_abs: np.ndarray, joints: tuple[int, ...] = FLIP_JOINTS, min_move: float = 1e-3):
    """One variant per pose and flipped joint (:func:`resolve_along_rays` with that bone flipped).

    Args:
        camera_abs: ``[B, J, 3]`` camera-frame absolute joints (metres).
        joints: the joints whose bone is flipped, one variant each.
        min_move: variants that move no joint farther than this (metres; a bone across its ray,
            whose two intersections coincide) are left out, and those whose re-solved joints miss
            their bones' spheres by more than :data:`MAX_MISS`, or put a joint within
            :data:`MIN_DEPTH` of the camera plane or behind it (or not finite).
    Returns:
        (``[N, J, 3]`` variants, camera-frame absolute; ``[N]`` int, the index of each one's source
        pose in ``camera_abs``); ``N <= B * len(joints)``.
    """
    X = np.asarray(camera_abs, np.float64)
    B, J, _ = X.shape
    src = np.repeat(np.arange(B), len(joints))
    flip = np.zeros((len(src), J), bool)
    flip[np.arange(len(src)), np.tile(np.asarray(joints), B)] = True
    Y, miss = resolve_along_rays(X[src], flip)
    with np.errstate(invalid="ignore"):
        keep = (np.abs(Y - X[src]).max(axis=(1, 2)) > min_move) & (miss <= MAX_MISS) \
            & np.isfinite(Y).all(axis=(1, 2)) & (Y[..., 2] > MIN_DEPTH).all(-1)
    return Y[keep], src[keep]
