"""Temporal filtering of 2D keypoints over a sequence, before lifting (pure numpy).

Per joint and coordinate, each frame's keypoint is replaced by the value at that frame of a
confidence-weighted least-squares polynomial fitted over a window of frames: a Savitzky-Golay
filter (Savitzky & Golay 1964, "Smoothing and differentiation of data by simplified least squares
procedures") whose samples are weighted by the detector's confidence, so a joint with confidence 0
(unseen, outside the photo) or a frame without a person (a gap) contributes nothing, and a
low-confidence detection is pulled toward its neighbours more than a confident one. As in
``scipy.signal.savgol_filter(mode="interp")``, the window stays ``window`` frames long near the ends
of the sequence (shifted inward, the polynomial evaluated off-centre) instead of shrinking.
A polynomial of degree ``order`` is reproduced exactly (uniform motion for ``order >= 1``).
Frames unevenly spaced in time (a variable-frame-rate video) give their times: the polynomial is
then fitted over the samples' times rather than their indices (uniform motion in time is kept).

Coordinates are whatever the caller passes (pixels or normalised image coordinates
``((u - cx)/fx, (v - cy)/fy)``): the filter is linear, so it commutes with the affine map between
them when all frames share one camera.

:func:`filter_keypoints` filters a whole sequence at once; :class:`KeypointFilterStream` gives the
same result frame by frame with bounded memory (a look-ahead of half a window, ``window`` frames of
history), for clips that are estimated in chunks while they are read.
"""

from __future__ import annotations

from collections import deque

import numpy as np


def _fit(offsets: np.ndarray, uv: np.ndarray, w: np.ndarray, order: int, scale: float) -> np.ndarray:
    """Weighted polynomial fit over one window, evaluated at offset 0.

    Args:
        offsets: ``[n]`` frame offsets of the window's samples from the evaluated frame.
        uv: ``[n, J, 2]`` keypoints; w: ``[n, J]`` weights (>= 0).
        order: polynomial degree (lowered per joint to the number of weighted samples - 1).
        scale: offsets are divided by this (conditioning).
    Returns:
        ``[J, 2]``; NaN for joints with no weighted sample in the window.
    """
    n, J = w.shape
    support = (w > 0).sum(0)  # [J]
    out = np.full((J, 2), np.nan)
    x = offsets / scale
    for o in range(order + 1):
        sel = np.minimum(support - 1, order) == o
        if not sel.any():
            continue
        V = np.vander(x, o + 1, increasing=True)  # [n, o+1]
        ws = w[:, sel]  # [n, j]
        G = np.einsum("nj,np,nq->jpq", ws, V, V) + 1e-12 * np.eye(o + 1)
        b = np.einsum("nj,np,njd->jpd", ws, V, uv[:, sel])
        out[sel] = np.linalg.solve(G, b)[:, 0]  # the constant term = the value at offset 0
    return out


def _window(t: int, T: int, window: int) -> tuple[int, int]:
    """Frames ``[lo, hi)`` of frame ``t``'s window in a sequence of ``T`` frames (shifted inward at the ends)."""
    lo = min(max(t - window // 2, 0), max(T - window, 0))
    return lo, min(lo + window, T)


def _check(window: int, order: int) -> None:
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be odd and >= 1, got {window}")
    if order < 0:
        raise ValueError(f"order must be >= 0, got {order}")


def filter_keypoints(uv: np.ndarray, w: np.ndarray, window: int = 9, order: int = 2) -> np.ndarray:
    """Confidence-weighted Savitzky-Golay filter of a keypoint sequence (see the module docstring).

    Args:
        uv: ``[T, J, 2]`` keypoints (any units; rows with weight 0 may be anything finite or NaN).
        w: ``[T, J]`` weights, the detector confidences 0..1 (0 = unseen joint or no person).
        window: frames in the fit (odd; 1 = no filtering).
        order: degree of the local polynomial (2 = quadratic, as Savitzky-Golay's usual choice).
    Returns:
        ``[T, J, 2]`` filtered keypoints; a joint with no weighted sample in its window keeps its
        input value.
    Raises:
        ValueError: an even or non-positive window, a negative order, mismatched shapes.
    """
    _check(window, order)
    uv = np.asarray(uv, np.float64)
    w = np.asarray(w, np.float64)
    if uv.ndim != 3 or uv.shape[-1] != 2 or w.shape != uv.shape[:2]:
        raise ValueError(f"keypoints [T, J, 2] and weights [T, J] expected, got {uv.shape} and {w.shape}")
    w = np.where(np.isfinite(uv).all(-1), np.clip(w, 0.0, None), 0.0)
    y = np.nan_to_num(uv)
    T = len(uv)
    out = uv.copy()
    if window == 1:
        return out
    for t in range(T):
        lo, hi = _window(t, T, window)
        f = _fit(np.arange(lo, hi) - t, y[lo:hi], w[lo:hi], order, window / 2)
        ok = np.isfinite(f).all(-1)
        out[t, ok] = f[ok]
    return out


class KeypointFilterStream:
    """:func:`filter_keypoints` frame by frame, with bounded memory.

    :meth:`push` one frame at a time (``None`` for a frame without a person); it returns the frames
    whose filtered keypoints are now known, in order, as ``(index, uv [J, 2] or None)``: frame ``t``
    once frame ``max(t - window // 2, 0) + window - 1`` has been pushed (half a window of look-ahead,
    a full window at the start). :meth:`finish` returns the rest. The results equal
    :func:`filter_keypoints` over the whole sequence, gaps as weight-0 frames (returned as None).
    Holds the last ``window`` frames (and none of the frames' evidence beyond their keypoints).
    """

    def __init__(self, window: int = 9, order: int = 2):
        _check(window, order)
        self.window, self.order = int(window), int(order)
        self.h = self.window // 2
        self.frames: deque = deque()  # (index, uv [J, 2] or None, w [J] or None, time), oldest first
        self.count = 0  # frames pushed
        self.next_out = 0  # first frame not yet returned

    def push(self, uv: np.ndarray | None, w: np.ndarray | None = None,
             time: float | None = None) -> list[tuple[int, np.ndarray | None]]:
        """Add the next frame (``uv [J, 2]``, ``w [J]``; None = no person; ``time``: its time in
        frames, where the frames are unevenly spaced, given for every frame or none); returns
        frames now ready."""
        if uv is not None:
            uv = np.asarray(uv, np.float64)
            w = np.ones(len(uv)) if w is None else np.asarray(w, np.float64)
        self.frames.append((self.count, uv, w, self.count if time is None else float(time)))
        self.count += 1
        out = []
        while self.next_out < self.count and max(self.next_out - self.h, 0) + self.window <= self.count:
            out.append(self._emit(self.next_out, None))
        self._trim()
        return out

    def finish(self) -> list[tuple[int, np.ndarray | None]]:
        """The frames not yet returned, now that the sequence has ended."""
        out = [self._emit(t, self.count) for t in range(self.next_out, self.count)]
        self.frames.clear()
        return out

    def _emit(self, t: int, T: int | None) -> tuple[int, np.ndarray | None]:
        self.next_out = t + 1
        frame = self._frame(t)
        if frame[1] is None:
            return t, None
        if T is None:  # mid-stream: the window is complete and centred (shifted right at the start)
            lo = max(t - self.h, 0)
            hi = lo + self.window
        else:
            lo, hi = _window(t, T, self.window)
        if self.window == 1:
            return t, frame[1].copy()
        J = len(frame[1])
        rows = [self._frame(s) for s in range(lo, hi)]
        y = np.stack([np.zeros((J, 2)) if r[1] is None else np.nan_to_num(r[1]) for r in rows])
        ws = np.stack([np.zeros(J) if r[1] is None else np.where(np.isfinite(r[1]).all(-1), np.clip(r[2], 0.0, None), 0.0)
                       for r in rows])
        f = _fit(np.array([r[3] for r in rows]) - frame[3], y, ws, self.order, self.window / 2)
        res = frame[1].copy()
        ok = np.isfinite(f).all(-1)
        res[ok] = f[ok]
        return t, res

    def _frame(self, t: int):
        return self.frames[t - self.frames[0][0]]

    def _trim(self) -> None:
        # keep what a pending frame's window may still need: from the next output's window start, or
        # the last full window (the windows of the last frames shift inward once the sequence ends)
        keep_from = max(min(self.next_out - self.h, self.count - self.window), 0)
        while self.frames and self.frames[0][0] < keep_from:
            self.frames.popleft()
