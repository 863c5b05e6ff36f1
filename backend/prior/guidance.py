"""Guidance terms: what steers the unconditional prior at sampling time.

Snelgar et al. 2026 guide an unconditional pose diffusion model with geometric evidence: the 2D
keypoint detector's heatmaps at the projected joints (estimation), known 3D joints (completion),
nothing (generation). Here every term works on an x0 estimate ``X`` (``[B, J, 3]``, metres) in a
*working frame* (the camera frame when there is 2D evidence, else the pose's world frame) and
returns, per joint, a target displacement and a precision (inverse variance, 1/m^2):

    delta_j = sum_k a_kj * d_kj / (b + sum_k a_kj)

which is one Gauss-Newton step of the MAP problem ``min_X sum_k a_k ||d_k||^2 + b ||X - X_hat||^2``
around the denoiser's estimate X_hat (precision ``b`` from the noise level, see
:func:`prior_precision`). This is the "refine x0 with a few inner steps" form of guidance
(Platypose, Shan et al. 2023 DiffPose-style), with the gradient of the log-likelihood
``grad_uv log p(uv)`` of each 2D term pulled back through the perspective projection.

2D likelihoods (:class:`KeypointEvidence`, :class:`HeatmapEvidence`) are expressed in
*normalised image coordinates* ``((u - cx)/fx, (v - cy)/fy)`` so step sizes do not depend on the
image size or focal length (NOTES.md pitfall). The root translation is solved in closed form from
the camera rays (:func:`solve_root_translation`, as in ZeDO) and kept in front of the camera.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from backend.camera import Intrinsics
from backend.skeleton import BONE_LENGTHS, NUM_JOINTS, PARENTS

MIN_DEPTH = 0.5  # metres: the pelvis is kept at least this far in front of the camera


# ------------------------------------------------------------------------------------ 2D terms


class Evidence2D:
    """Per-joint 2D log-likelihood ``log p_j(uv)`` in normalised image coordinates.

    Subclasses provide :meth:`value_and_grad`; ``anchor_uv`` (``[J, 2]``) and ``weight``
    (``[J]``, 0 where a joint has no evidence) feed the closed-form root solve, ``sigma``
    (``[J]``, normalised units) is the evidence's spatial uncertainty.
    """

    anchor_uv: torch.Tensor
    weight: torch.Tensor
    sigma: torch.Tensor
    focal_px: float

    def value_and_grad(self, uv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``uv`` ``[B, J, 2]`` normalised -> (log-likelihood ``[B, J]``, its gradient ``[B, J, 2]``)."""
        raise NotImplementedError

    def target(self, uv: torch.Tensor) -> torch.Tensor:
        """Where each projected joint should move: one Gauss-Newton step on the log-likelihood,
        ``uv + sigma^2 grad log p(uv)`` (``[B, J, 2]`` normalised; joints without evidence stay)."""
        _, g = self.value_and_grad(uv)
        return uv + g * (self.sigma**2 / self.weight.clamp(min=1e-6))[:, None]

    @property
    def num_visible(self) -> int:
        return int((self.weight > 0).sum())


class KeypointEvidence(Evidence2D):
    """Keypoints as heatmap-like Gaussian likelihoods.

    ``log p_j(uv) = -|uv - k_j|^2 / (2 sigma_j^2)`` with ``sigma_j = sigma_px / f / sqrt(c_j)``
    (confidence ``c_j`` narrows the Gaussian), weight ``c_j``.

    Args:
        uv_px: ``[J, 2]`` pixels (NaN rows = unseen joints).
        conf: ``[J]`` confidences 0..1 (0 = unseen).
        K: camera intrinsics (pixels).
        sigma_px: standard deviation of a confident keypoint, pixels.
    """

    def __init__(self, uv_px: np.ndarray, conf: np.ndarray, K: Intrinsics, sigma_px: float = 4.0, device="cpu"):
        uv_px = np.asarray(uv_px, np.float64)
        conf = np.where(np.isfinite(uv_px).all(-1), np.asarray(conf, np.float64), 0.0)
        uv_n = np.stack([(uv_px[:, 0] - K.cx) / K.fx, (uv_px[:, 1] - K.cy) / K.fy], -1)
        uv_n = np.nan_to_num(uv_n)
        f = math.sqrt(K.fx * K.fy)
        self.anchor_uv = torch.tensor(uv_n, dtype=torch.float32, device=device)
        self.weight = torch.tensor(conf, dtype=torch.float32, device=device)
        self.sigma = torch.tensor(sigma_px / f / np.sqrt(np.clip(conf, 0.05, 1.0)), dtype=torch.float32, device=device)
        self.focal_px = f

    def value_and_grad(self, uv):
        d = uv - self.anchor_uv
        inv = self.weight / self.sigma**2
        return -0.5 * (d**2).sum(-1) * inv, -d * inv[:, None]


class HeatmapEvidence(Evidence2D):
    """Detector heatmaps sampled bilinearly at the projected joints (the paper's guidance).

    The probability maps are blurred (1 cell) and floored, and a wide Gaussian around the
    peak keeps a gradient far from it:
    ``log p_j(h) = log(blur(P_j)(h) + eps) - |h - peak_j|^2 / (2 * 8^2)`` in heatmap cells ``h``.

    Args:
        log_heatmaps: ``[K, H, W]`` log-probabilities for joints ``joint_idx`` (``[K]``).
        image_to_heatmap: ``[2, 3]`` affine, original-image pixels -> heatmap (column, row).
        conf: ``[K]`` per-joint confidences 0..1 (visibility).
        K: camera intrinsics of the original image.
    """

    def __init__(self, log_heatmaps: np.ndarray, joint_idx, image_to_heatmap: np.ndarray, conf, K: Intrinsics, device="cpu"):
        import cv2

        hm = np.exp(np.asarray(log_heatmaps, np.float32))
        hm = np.stack([cv2.GaussianBlur(h, (0, 0), 1.0) for h in hm])
        hm = hm / np.maximum(hm.sum((1, 2), keepdims=True), 1e-12)
        self.logp = torch.tensor(np.log(hm + 1e-4), device=device)  # [K, H, W]
        self.prob = torch.tensor(hm, device=device)
        kh, H, W = hm.shape
        self.H, self.W = H, W
        A = np.asarray(image_to_heatmap, np.float64)
        # normalised uv -> pixels -> heatmap cells: h = A[:, :2] @ (diag(f) uv + c) + A[:, 2]
        M = A[:, :2] @ np.diag([K.fx, K.fy])
        b = A[:, :2] @ np.array([K.cx, K.cy]) + A[:, 2]
        self.M = torch.tensor(M, dtype=torch.float32, device=device)
        self.M_inv = torch.tensor(np.linalg.inv(M), dtype=torch.float32, device=device)
        self.b = torch.tensor(b, dtype=torch.float32, device=device)
        self.idx = torch.tensor(list(joint_idx), dtype=torch.long, device=device)
        flat = hm.reshape(kh, -1).argmax(1)
        peaks_h = np.stack([flat % W, flat // W], -1).astype(np.float64)
        # peak back to normalised image coords
        peaks_uv = np.linalg.solve(M, (peaks_h - b).T).T
        anchor = np.zeros((NUM_JOINTS, 2))
        weight = np.zeros(NUM_JOINTS)
        anchor[list(joint_idx)] = peaks_uv
        weight[list(joint_idx)] = np.clip(np.asarray(conf, np.float64), 0, 1)
        self.peaks_h = torch.tensor(peaks_h, dtype=torch.float32, device=device)
        self.anchor_uv = torch.tensor(anchor, dtype=torch.float32, device=device)
        self.weight = torch.tensor(weight, dtype=torch.float32, device=device)
        cell = 1.0 / math.sqrt(abs(np.linalg.det(M)))  # one heatmap cell in normalised units
        self.sigma = torch.full((NUM_JOINTS,), 1.0 * cell, device=device)
        self.focal_px = math.sqrt(K.fx * K.fy)
        self.wide = 8.0

    def target(self, uv: torch.Tensor, bandwidth: float = 3.0) -> torch.Tensor:
        """Mean-shift step on the heatmap: the heatmap-weighted mean position in a Gaussian window
        (``bandwidth`` cells) around the current projection; the peak when the window is empty.

        For a unimodal heatmap this is the Gauss-Newton step of the heatmap log-likelihood
        (Comaniciu & Meer 2002: mean shift follows the gradient of the kernel density).
        Returns ``[B, J, 2]`` normalised image coordinates.
        """
        h = uv[:, self.idx] @ self.M.T + self.b  # [B, K, 2] cells
        xs = torch.arange(self.W, device=uv.device, dtype=uv.dtype)
        ys = torch.arange(self.H, device=uv.device, dtype=uv.dtype)
        kx = torch.exp(-0.5 * ((xs - h[..., :1]) / bandwidth) ** 2)  # [B, K, W]
        ky = torch.exp(-0.5 * ((ys - h[..., 1:]) / bandwidth) ** 2)  # [B, K, H]
        # contract the columns first (one batched matmul per joint), then the rows
        A = torch.einsum("kyx,bkcx->bkcy", self.prob, torch.stack([kx, kx * xs], 2))  # [B, K, 2, H]
        mass = (A[:, :, 0] * ky).sum(-1)
        mx = (A[:, :, 1] * ky).sum(-1) / mass.clamp(min=1e-12)
        my = (A[:, :, 0] * ky * ys).sum(-1) / mass.clamp(min=1e-12)
        # an (almost) empty window falls back smoothly to the peak: mass-weighted blend, eps = 1 %
        eps = 0.01
        lam = (mass / (mass + eps))[..., None]
        tgt_h = lam * torch.stack([mx, my], -1) + (1 - lam) * self.peaks_h[None]
        tgt = uv.clone()
        tgt[:, self.idx] = (tgt_h - self.b) @ self.M_inv.T
        return tgt

    def value_and_grad(self, uv):
        B = uv.shape[0]
        h = uv[:, self.idx] @ self.M.T + self.b  # [B, K, 2] cells
        x = h[..., 0].clamp(0, self.W - 1.001)
        y = h[..., 1].clamp(0, self.H - 1.001)
        x0, y0 = x.floor().long(), y.floor().long()
        fx, fy = x - x0, y - y0
        k = torch.arange(len(self.idx), device=uv.device).expand(B, -1)
        L = self.logp
        v00, v01 = L[k, y0, x0], L[k, y0, x0 + 1]
        v10, v11 = L[k, y0 + 1, x0], L[k, y0 + 1, x0 + 1]
        val = (1 - fy) * ((1 - fx) * v00 + fx * v01) + fy * ((1 - fx) * v10 + fx * v11)
        gx = (1 - fy) * (v01 - v00) + fy * (v11 - v10)
        gy = (1 - fx) * (v10 - v00) + fx * (v11 - v01)
        # outside the map: quadratic pull back in; everywhere: wide Gaussian around the peak
        out = torch.stack([h[..., 0] - x, h[..., 1] - y], -1)
        dp = h - self.peaks_h
        g_h = torch.stack([gx, gy], -1) - out - dp / self.wide**2
        val = val - 0.5 * (out**2).sum(-1) - 0.5 * (dp**2).sum(-1) / self.wide**2
        w = self.weight[self.idx]
        g_uv = (g_h @ self.M) * w[..., None]
        ll = torch.zeros(B, NUM_JOINTS, device=uv.device)
        grad = torch.zeros(B, NUM_JOINTS, 2, device=uv.device)
        ll[:, self.idx] = val * w
        grad[:, self.idx] = g_uv
        return ll, grad


# ------------------------------------------------------------------------------------ geometry


def solve_root_translation(X: torch.Tensor, uv: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Closed-form root (pelvis) translation from camera rays (ZeDO, Jiang et al. 2023, eq. 6).

    Minimises ``sum_j w_j [((X_jx + Tx) - u_j (X_jz + Tz))^2 + ((X_jy + Ty) - v_j (X_jz + Tz))^2]``,
    linear in ``T``; the pelvis is then kept at least :data:`MIN_DEPTH` in front of the camera
    and every joint at least 0.1 m.

    Args:
        X: ``[B, J, 3]`` root-relative joints, camera frame, metres.
        uv: ``[J, 2]`` normalised image coordinates of the evidence (or ``[B, J, 2]``, one row each).
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


_PAR = torch.tensor([max(p, 0) for p in PARENTS])
_HAS_PARENT = torch.tensor([p >= 0 for p in PARENTS])
_LEN = torch.tensor(BONE_LENGTHS)


def bone_pull(X: torch.Tensor) -> torch.Tensor:
    """Displacements that restore canonical bone lengths, split half to child and half to parent.

    Args:
        X: ``[B, J, 3]`` metres. Returns ``[B, J, 3]`` metres.
    """
    par = _PAR.to(X.device)
    d = X - X[:, par]
    n = d.norm(dim=-1, keepdim=True).clamp(min=1e-6)
    e = (n - _LEN.to(X.device)[:, None]) * _HAS_PARENT.to(X.device)[:, None]
    corr = -0.5 * e * d / n  # move child toward the right length
    out = corr.clone()
    out.index_add_(1, par, -corr)
    return out


@dataclass
class GuidanceWeights:
    """Precisions (1/m^2 unless noted) and step controls of the guidance.

    ``scale`` multiplies every evidence precision (the "guidance scale"). ``bone_sigma`` (m) is the
    tolerated bone-length deviation; ``known_sigma`` (m) that of known joints.
    """

    scale: float = 1.0
    bone_sigma: float = 0.01
    known_sigma: float = 0.005
    direction_sigma: float = 0.01
    inner_steps: int = 2
    step: float = 0.8
    prior_cap: float = 300.0  # max precision of the denoiser's x0 (1/m^2): r_t >= 6 cm
    polish_steps: int = 2  # extra inner steps on the final x0 with the prior at ``polish_prior``
    polish_prior: float = 400.0  # 1/m^2 (r = 5 cm)
    dps_scale: float = 1.0  # DPS step on x_t toward the refined x0 of known joints/directions (0 = off)
    ramp: float = 0.0  # the 2D precision grows linearly over this fraction of the steps (0 = full from the start)
    retilt_at: tuple = (0.5, 1.0)  # fractions of the DDIM steps where camera pitch/roll are re-estimated
    ray_mode: str = "nearest"  # 2D target on the camera ray: "nearest" to the prior's joint, or "intersect" at bone length
