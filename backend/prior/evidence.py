"""2D evidence: per-joint log-likelihoods of a projected pose in normalised image coordinates.

:class:`KeypointEvidence` (keypoints as Gaussians) and :class:`HeatmapEvidence` (the detector's
heatmaps, the guidance of Snelgar et al. 2026) are expressed in *normalised image coordinates*
``((u - cx)/fx, (v - cy)/fy)`` so step sizes do not depend on the image size or focal length
(NOTES.md pitfall). They are used by :class:`backend.prior.guidance.Evidence2DTerm`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from backend.camera import Intrinsics
from backend.skeleton import NUM_JOINTS


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
    #: Joints known to lie *outside* the photo (a truncated person): per joint the box their
    #: projection must keep to, ``out_lo <= uv <= out_hi`` (``[J, 2]`` normalised; +-inf where
    #: no side is crossed), or None when no joint is outside (see :meth:`set_outside`).
    out_lo: torch.Tensor | None = None
    out_hi: torch.Tensor | None = None

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

    def set_outside(self, uv_px: np.ndarray, outside: np.ndarray, K: Intrinsics,
                    band_px: tuple[float, float] = (0.0, 0.0)) -> None:
        """Mark joints as outside the photo: a joint reported beyond an image border (a truncated
        person: the detector extrapolates past the border) must project beyond that border too.

        The evidence is the *side* only, not the reported position (extrapolated landmarks are
        rough): for ``u < 0`` the projection must satisfy ``u <= 0``, for ``u > width`` ``u >= width``,
        the same for ``v``. A joint reported inside the photo but within ``band_px`` of a border
        (a cut-off landmark the detector puts at the edge,
        :func:`backend.vision.visibility.at_border`) must project at least that far out: for
        ``width - band <= u <= width``, ``u >= width - band``. Used by
        :class:`backend.prior.terms.Evidence2DTerm` as a one-sided (hinge) Gaussian on the distance
        into the photo.

        Args:
            uv_px: ``[J, 2]`` reported pixel positions (NaN rows ignored).
            outside: ``[J]`` bool, joints to constrain (those without 2D evidence of their own).
            K: the photo's intrinsics (its width and height are the borders).
            band_px: ``(u, v)`` width of the border band (pixels).
        """
        uv_px = np.asarray(uv_px, np.float64)
        out = np.asarray(outside, bool) & np.isfinite(uv_px).all(-1)
        lo = np.full((len(uv_px), 2), -np.inf)
        hi = np.full((len(uv_px), 2), np.inf)
        with np.errstate(invalid="ignore"):
            for c, (size, centre, f) in enumerate(((K.width, K.cx, K.fx), (K.height, K.cy, K.fy))):
                band = float(band_px[c])
                before = out & (uv_px[:, c] < band)
                after = out & (uv_px[:, c] > size - band)
                hi[before, c] = (np.where(uv_px[before, c] < 0, 0.0, band) - centre) / f
                lo[after, c] = (np.where(uv_px[after, c] > size, size, size - band) - centre) / f
        if not (np.isfinite(lo).any() or np.isfinite(hi).any()):
            self.out_lo = self.out_hi = None
            return
        dev = self.anchor_uv.device
        self.out_lo = torch.tensor(lo, dtype=torch.float32, device=dev)
        self.out_hi = torch.tensor(hi, dtype=torch.float32, device=dev)

    def outside_target(self, uv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """For joints outside the photo: the nearest point of their allowed region and the distance
        to it (``[B, J, 2]``, ``[B, J]`` normalised; 0 where the projection already complies or the
        joint has no such constraint), or None when no joint is outside (:meth:`set_outside`)."""
        if self.out_lo is None:
            return None
        tgt = torch.maximum(torch.minimum(uv, self.out_hi), self.out_lo)
        return tgt, (tgt - uv).norm(dim=-1)

    def shift(self, offset) -> None:
        """Move the evidence of each joint by ``offset`` (``[J, 2]`` normalised image coordinates), in
        place: the likelihood becomes ``log p_j(uv - offset_j)`` and the anchors move with it (used to
        put temporally filtered keypoints in place of a frame's raw ones, :mod:`backend.sequence`)."""
        self.anchor_uv = self.anchor_uv + torch.as_tensor(np.asarray(offset), dtype=self.anchor_uv.dtype, device=self.anchor_uv.device)


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

    def shift(self, offset) -> None:
        """Move joint ``j``'s heatmap by ``offset_j`` (normalised image coordinates, ``[J, 2]``): the
        image -> heatmap map gets a per-joint translation, ``h = M (uv - offset_j) + b``, so the
        likelihood, its gradient, the mean-shift target and the peak all move with the anchor."""
        off = torch.as_tensor(np.asarray(offset), dtype=self.anchor_uv.dtype, device=self.anchor_uv.device)
        super().shift(off)
        self.b = self.b - off[self.idx] @ self.M.T  # [K, 2]: one translation per heatmap joint

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
