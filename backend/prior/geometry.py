"""Geometry shared by the sampler and the guidance terms: camera tilt, root solve, yaw fit, tree.

Pure torch, no model: the closed-form root translation from camera rays (ZeDO), the 2D Kabsch
yaw + translation fit to known world joints, the world->camera rotation of a pitched and rolled
camera, the precision of the denoiser's x0 estimate and the kinematic tree split by depth.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch

from backend.skeleton import BONE_LENGTHS, NUM_JOINTS, PARENTS

MIN_DEPTH = 0.5  # metres: the pelvis is kept at least this far in front of the camera


def solve_root_translation(X: torch.Tensor, uv: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Closed-form root (pelvis) translation from camera rays (ZeDO, Jiang et al. 2023, eq. 6).

    Minimises ``sum_j w_j [((X_jx + Tx) - u_j (X_jz + Tz))^2 + ((X_jy + Ty) - v_j (X_jz + Tz))^2]``,
    linear in ``T``; the pelvis is then kept at least :data:`MIN_DEPTH` in front of the camera
    and every joint at least 0.1 m.

    Args:
        X: ``[B, J, 3]`` root-relative joints, camera frame, metres.
        uv: ``[J, 2]`` normalised image coordinates of the evidence (or ``[B, J, 2]``, one row each:
            several frames in one batch, :mod:`backend.prior.batch`).
        w: ``[J]`` weights (0 = unused) (or ``[B, J]``).
    Returns:
        ``[B, 3]`` root translation, camera frame, metres.
    """
    u, v = uv[..., 0], uv[..., 1]
    B = X.shape[0]
    # rows: [1, 0, -u] T = u X_z - X_x ; [0, 1, -v] T = v X_z - X_y
    A11 = w.sum(-1)
    A13 = -(w * u).sum(-1)
    A23 = -(w * v).sum(-1)
    A33 = (w * (u * u + v * v)).sum(-1)
    z = torch.zeros_like(A11)
    A = torch.stack([torch.stack([A11, z, A13], -1), torch.stack([z, A11, A23], -1),
                     torch.stack([A13, A23, A33], -1)], -2).expand(B, 3, 3)
    r1 = u * X[..., 2] - X[..., 0]  # [B, J]
    r2 = v * X[..., 2] - X[..., 1]
    rhs = torch.stack([(w * r1).sum(-1), (w * r2).sum(-1), (w * (-u * r1 - v * r2)).sum(-1)], -1)
    A = A + 1e-6 * torch.eye(3, device=X.device)
    T = torch.linalg.solve(A, rhs.unsqueeze(-1)).squeeze(-1)
    min_z = torch.maximum(torch.full_like(T[:, 2], MIN_DEPTH), (0.1 - X[..., 2]).amax(-1))
    return torch.cat([T[:, :2], torch.maximum(T[:, 2], min_z)[:, None]], -1)


def yaw_align(src: torch.Tensor, dst: torch.Tensor, w: torch.Tensor,
              vec_src: torch.Tensor | None = None, vec_dst: torch.Tensor | None = None, vec_w: torch.Tensor | None = None):
    """Best rotation about Z plus translation taking ``src`` points onto ``dst`` (2D Kabsch).

    Args:
        src: ``[B, J, 3]`` model-frame points; dst: ``[J, 3]`` targets (world); w: ``[J]`` weights.
        vec_src, vec_dst, vec_w: optional direction correspondences (``[B, V, 3]``, ``[V, 3]``, ``[V]``)
            that constrain the rotation only.
    Returns:
        (R ``[B, 3, 3]``, t ``[B, 3]``) with ``dst ~= src @ R^T + t``.
    """
    B = src.shape[0]
    ws = w.sum().clamp(min=1e-8)
    has_pts = bool((w > 0).sum() >= 1)
    cs = (src * w[:, None]).sum(1) / ws if has_pts else src.new_zeros(B, 3)
    cd = (dst * w[:, None]).sum(0) / ws if has_pts else dst.new_zeros(3)
    a = src - cs[:, None]
    b = (dst - cd)[None].expand_as(a)
    S_cos = (w * (a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1])).sum(-1)
    S_sin = (w * (a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0])).sum(-1)
    if vec_src is not None and vec_w is not None and vec_w.numel():
        vb = vec_dst[None].expand_as(vec_src)
        S_cos = S_cos + (vec_w * (vec_src[..., 0] * vb[..., 0] + vec_src[..., 1] * vb[..., 1])).sum(-1)
        S_sin = S_sin + (vec_w * (vec_src[..., 0] * vb[..., 1] - vec_src[..., 1] * vb[..., 0])).sum(-1)
    th = torch.atan2(S_sin, S_cos)
    c, s = torch.cos(th), torch.sin(th)
    z, o = torch.zeros_like(c), torch.ones_like(c)
    R = torch.stack([torch.stack([c, -s, z], -1), torch.stack([s, c, z], -1), torch.stack([z, z, o], -1)], -2)
    t = cd[None] - torch.einsum("bij,bj->bi", R, cs)
    return R, t


def prior_precision(abar: float, data_scale: float) -> float:
    """Precision (1/m^2) of the denoiser's x0 estimate at noise level ``abar``.

    Under a Gaussian approximation of ``p(x0 | x_t)`` (Song et al. 2023, "Pseudoinverse-guided
    diffusion", eq. 8), ``r_t^2 = sigma_data^2 (1 - abar) / (abar sigma_data^2 + 1 - abar)``
    in model units; converted to metres with ``data_scale``.
    """
    r2 = (1 - abar) / (abar + (1 - abar))
    r2 = max(r2, 1e-6) * data_scale**2
    return 1.0 / r2


def tilt_batch(pitch: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """``[B]`` pitch, roll (radians) -> ``[B, 3, 3]`` world->camera rotations (see camera.tilt_rotation)."""
    cp, sp, cr, sr = pitch.cos(), pitch.sin(), roll.cos(), roll.sin()
    z, o = torch.zeros_like(cp), torch.ones_like(cp)
    rx = torch.stack([torch.stack([o, z, z], -1), torch.stack([z, cp, -sp], -1), torch.stack([z, sp, cp], -1)], -2)
    rz = torch.stack([torch.stack([cr, -sr, z], -1), torch.stack([sr, cr, z], -1), torch.stack([z, z, o], -1)], -2)
    level = torch.tensor([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]], device=pitch.device)
    return rz @ rx @ level


def pitch_roll_of(R: np.ndarray) -> tuple[float, float]:
    """Pitch and roll (radians) of a world->camera rotation ``[3, 3]``: from the image of world up."""
    up = np.asarray(R) @ np.array([0.0, 0.0, 1.0])
    pitch = math.asin(float(np.clip(-up[2], -1, 1)))
    roll = math.atan2(float(up[0]), float(-up[1]))
    return pitch, roll


def unit(v: torch.Tensor) -> torch.Tensor:
    """Unit vectors along the last axis (zero vectors stay finite)."""
    return v / v.norm(dim=-1, keepdim=True).clamp(min=1e-8)


class TreeLevel(NamedTuple):
    """One depth of the kinematic tree: ``joints`` ``[n]``, their ``parents`` ``[n]`` and canonical
    bone ``lengths`` ``[1, n, 1]`` (metres)."""

    joints: torch.Tensor
    parents: torch.Tensor
    lengths: torch.Tensor


_LEVELS: dict = {}


def tree_levels(device) -> list[TreeLevel]:
    """The kinematic tree by depth, root excluded, outward (6 levels for 21 joints), on ``device``."""
    key = str(device)
    if key not in _LEVELS:
        depth = [0] * NUM_JOINTS
        for j, p in enumerate(PARENTS):
            depth[j] = 0 if p < 0 else depth[p] + 1
        levels = []
        for d in range(1, max(depth) + 1):
            js = [j for j in range(NUM_JOINTS) if depth[j] == d]
            levels.append(TreeLevel(torch.tensor(js, device=device), torch.tensor([PARENTS[j] for j in js], device=device),
                                    torch.tensor(BONE_LENGTHS[js], dtype=torch.float32, device=device)[None, :, None]))
        _LEVELS[key] = levels
    return _LEVELS[key]
