"""Shot cuts in a clip: where an edited video changes from one camera to another between two frames.

Clips people take from the web (dance videos, sports, films) are edited: the picture jumps to
another camera, and the person with it, from one frame to the next. A track that took the clip
as one camera smoothed the pose across the jump, kept one camera tilt for both shots and spun the
person in the world by the angle between the cameras. :func:`backend.sequence.estimate_sequence`
starts a new shot at each cut found here (its own tilt, 2D filter and person search), and
:mod:`backend.prior.shots` keeps the person's motion continuous across it.

Method: the content change between consecutive frames as PySceneDetect's ``ContentDetector``
measures it (B. Castellano, PySceneDetect, https://www.scenedetect.com: the mean absolute
difference of the frames' hue, saturation and value, 0-255, averaged over the three channels),
made adaptive as its ``AdaptiveDetector`` is: a frame starts a new shot when its change is at
least :data:`CUT_THRESHOLD` *and* :data:`CUT_RATIO` times the median change of the
:data:`HISTORY` frames before (a fast pan, or a person close to the camera, changes every frame
a lot; a cut changes one), whose structure changed too (the brightness' normalised correlation
below :data:`CUT_MAX_CORRELATION`: a club's lights change the content, not the picture), at
least :data:`MIN_SHOT_FRAMES` frames after the previous cut (the first as soon as
:data:`FIRST_CUT_HISTORY` changes are measured: from the clip's 4th frame), and the frame after it differs from the frame before as much (a flash, a dropped frame or a
blank one comes back; a new shot stays; the clip's last frame is a cut on its own jump): one frame of
look-ahead, so it runs on frames as they are read.
A **fade through black** (music videos, trailers, film scenes: the picture dims to black, then the
next shot brightens out of it) changes little from one frame to the next, so it is found apart, as
PySceneDetect's ``ThresholdDetector`` finds fades: frames darker than :data:`DARK_LEVEL` are left
out of the comparison, and the first frame after them begins a new shot when its structure differs
from the last frame before them (the same view coming back after a dip to black is not a cut).
A **dissolve** (one shot blending into the next over a fraction of a second) is found at the frame
that ends a window of the last :data:`MAX_DISSOLVE` frames whose brightness variance follows a blend's
(:func:`dissolve_fit`: Alattar 1993's variance curve, ``var(a) = (1-a)^2 var(S) + a^2 var(E) +
2a(1-a) cov(S, E)`` with ``a`` the blend weight, which dips between two unlike pictures), whose
first and last frames are another view (their structure unlike, and no camera motion maps one onto
the other: :func:`same_view`, so a light that changes while the camera moves is not a dissolve)
and whose middle frame is a blend of them; the frames inside it, two pictures at once, are listed
in :attr:`ShotCuts.dissolves`. Not the library itself: its
wheel requires ``opencv-python``, the GUI build of OpenCV, which would replace the headless
build this backend installs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np

#: Frames are compared at most this wide (pixels; the change of a cut is in the whole picture).
WORK_WIDTH = 160
#: Least content change of a cut (mean |delta| of H, S and V, 0-255; PySceneDetect's default 27).
CUT_THRESHOLD = 27.0
#: A cut's change is at least this many times the median change of the frames before it.
CUT_RATIO = 3.0
#: Frames whose changes make that median.
HISTORY = 8
#: Least frames between two cuts (and before the first).
MIN_SHOT_FRAMES = 6
#: Frame-to-frame changes measured before the clip's first cut may be found (its earliest: the 4th frame).
FIRST_CUT_HISTORY = 2
#: A cut changes the picture's structure: the zero-mean normalised correlation of the two frames'
#: brightness (V) stays above this for the same view under other light (a club's lights, a flash
#: fading; measured 0.83 for a change of 63 in content) or swaying (0.79-0.93), and falls below it
#: at a cut (-0.22 to 0.14 on the tests' clips).
CUT_MAX_CORRELATION = 0.5
#: A frame whose mean brightness (HSV value, 0-255) is below this is dark: part of a fade through
#: black (PySceneDetect's ``ThresholdDetector``: 12 on the mean of R, G and B; V is their maximum).
DARK_LEVEL = 16.0
#: Dissolves searched: windows of MIN_DISSOLVE..MAX_DISSOLVE frames between their two ends
#: (0.12-1.2 s at 25 fps).
MIN_DISSOLVE, MAX_DISSOLVE = 3, 30
#: The window's variances are a blend's (:func:`dissolve_fit`): mean |var - model| / linear
#: interpolation of the ends' at most this (synthetic dissolves of 4-20 frames 0.00-0.08, pans,
#: sways, a person moving 0.18 and up) ...
DISSOLVE_FIT = 0.08
#: ... and dip below the line between the ends' to this fraction somewhere (at most 0.75 for
#: unlike pictures; a change of light that only dims or brightens does not dip).
DISSOLVE_DIP = 0.85
#: The window's middle frame is a blend of its ends: at least this share of its brightness variance
#: explained by ``a S + b E + c`` (dissolves 0.29-0.99, pans 0.08-0.14).
DISSOLVE_BLEND_R2 = 0.25
#: Two frames are one view when a homography (RANSAC) maps at least this share of the first's
#: corners, followed by Lucas-Kanade flow, onto the second (the camera moved, the view did not;
#: measured: a swaying room 15 frames apart under other light 0.50-0.58, the ends of dissolves 0-0.20).
SAME_VIEW_INLIERS = 0.35


def structure_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """The zero-mean normalised cross-correlation of two frames' value (brightness) channels, ``a``,
    ``b``: ``[H, W, 3]`` uint8 HSV of one size; 1 = the same picture up to gain and offset (light)."""
    x, y = (np.asarray(im[..., 2], np.float64) for im in (a, b))
    x, y = x - x.mean(), y - y.mean()
    d = math.sqrt(float((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / d) if d > 0 else 1.0


def dissolve_fit(var: np.ndarray, cov: float) -> tuple[float, float]:
    """How well a window's frame variances follow a dissolve between its first and last frame.

    Args:
        var: ``[N + 1]`` brightness variances of the window's frames (first ``S`` to last ``E``).
        cov: the covariance of ``S``'s and ``E``'s brightness.
    Returns:
        ``(error, dip)``: the mean of ``|var - model| / line`` over the inner frames, with ``model =
        (1-a)^2 var_S + a^2 var_E + 2a(1-a) cov`` (a = 0..1 evenly over the window: the variance of
        the blend ``(1-a) S + a E``; Alattar 1993, "Detecting and compressing dissolve regions in
        video sequences with a DVI multimedia image compression algorithm") and ``line`` the linear
        interpolation of the ends' variances; and the least ``var / line`` (below 1: a dip).
    """
    n = len(var) - 1
    a = np.arange(n + 1) / n
    model = (1 - a) ** 2 * var[0] + a * a * var[-1] + 2 * a * (1 - a) * cov
    line = np.maximum((1 - a) * var[0] + a * var[-1], 1e-9)
    inner = slice(1, n)
    return float(np.mean(np.abs(var - model)[inner] / line[inner])), float((var / line)[inner].min())


def blend_share(middle: np.ndarray, first: np.ndarray, last: np.ndarray) -> float:
    """The share of ``middle``'s variance explained by ``a first + b last + c`` (least squares; all
    ``[H, W]`` float brightness of one size): near 1 for a frame of a dissolve between them."""
    m = middle.ravel()
    A = np.stack([first.ravel(), last.ravel(), np.ones_like(m)], 1)
    coef, *_ = np.linalg.lstsq(A, m, rcond=None)
    return float(1.0 - (m - A @ coef).var() / max(float(m.var()), 1e-9))


def _contrast_normalised(v: np.ndarray) -> np.ndarray:
    """``[H, W]`` uint8 brightness with its mean at 128 and its standard deviation 40 (a light that
    dims or changes colour changes neither)."""
    x = v.astype(np.float64)
    return np.ascontiguousarray(np.clip((x - x.mean()) / max(float(x.std()), 1e-6) * 40.0 + 128.0, 0, 255).astype(np.uint8))


def same_view(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether ``b`` shows ``a``'s view, the camera perhaps turned (``[H, W, 3]`` uint8 HSV, one size):
    at least :data:`SAME_VIEW_INLIERS` of ``a``'s corners (``cv2.goodFeaturesToTrack``), followed into
    ``b`` by pyramidal Lucas-Kanade flow and back (Bouguet 2000), fit one homography (RANSAC). A
    picture with too few corners to tell is taken as another view."""
    from backend.vision.camera_motion import follow_corners

    ga, gb = (_contrast_normalised(x[..., 2]) for x in (a, b))  # the flow assumes constant brightness
    found, pa, pb = follow_corners(ga, gb, 200, 0.01, 4, 15, 1.0, 12)
    if found < 12 or len(pa) < 12:
        return False
    _, inliers = cv2.findHomography(pa, pb, cv2.RANSAC, 1.5)
    return inliers is not None and float(inliers.sum()) >= SAME_VIEW_INLIERS * found


def content_change(a: np.ndarray, b: np.ndarray) -> float:
    """PySceneDetect's content value of two frames: the mean absolute difference of their hue,
    saturation and value channels (0-255 each; hue's 0-179 as OpenCV stores it), averaged over
    the channels. ``a``, ``b``: ``[H, W, 3]`` uint8 HSV images of one size."""
    d = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return float(d.reshape(-1, 3).mean(0).mean())


@dataclass
class _Seen:
    """A lit frame kept for the dissolve search: its index, HSV frame, brightness ``[H, W]``, that
    brightness' variance, zero-mean ``[H*W]`` and zero-mean unit-norm ``[H*W]`` copies."""

    index: int
    frame: np.ndarray
    value: np.ndarray
    var: float
    centred: np.ndarray
    unit: np.ndarray

    @classmethod
    def of(cls, index: int, frame: np.ndarray) -> _Seen:
        value = frame[..., 2].astype(np.float64)
        centred = (value - value.mean()).ravel()
        norm = float(np.linalg.norm(centred))
        return cls(index, frame, value, float(value.var()), centred, centred / norm if norm > 0 else centred)


class ShotCuts:
    """Shot cuts of one clip, a frame at a time, with one frame of look-ahead (see the module docstring).

    :meth:`decide` each frame in order with the frame after it; it returns whether that frame
    begins a new shot. A frame unlike the one before *and* the one after (a flash, a dropped or
    blank frame, someone passing right in front of the lens for a frame) is not a cut and is left
    out of the comparison; so are dark frames (a fade through black), after which the first lit
    frame is a cut if it shows another view. :attr:`cuts` lists the cut frames (indices in order of
    :meth:`decide`; the first frame is never one, nor a dark one); :attr:`dissolves`
    ``(first, cut)`` the frames of each dissolve found: those strictly between show two pictures.
    """

    def __init__(self, threshold: float = CUT_THRESHOLD, ratio: float = CUT_RATIO, min_shot: int = MIN_SHOT_FRAMES):
        self.threshold, self.ratio, self.min_shot = float(threshold), float(ratio), int(min_shot)
        self._last: np.ndarray | None = None  # the last frame compared (HSV, small)
        self._changes: list[float] = []
        self._dark = 0  # dark frames since the last lit one (a fade through black)
        self._recent: list[_Seen] = []  # the last lit frames (dissolves)
        self.frame = -1  # the index of the last frame decided
        self.cuts: list[int] = []
        self.dissolves: list[tuple[int, int]] = []

    @staticmethod
    def small(rgb: np.ndarray | None) -> np.ndarray | None:
        """A frame (``[H, W, 3]`` uint8 RGB, or None for one that could not be read) as compared: HSV
        at most :data:`WORK_WIDTH` wide."""
        if rgb is None:
            return None
        h, w = rgb.shape[:2]
        s = min(1.0, WORK_WIDTH / max(w, 1))
        im = rgb if s == 1.0 else cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(np.ascontiguousarray(im), cv2.COLOR_RGB2HSV)

    def decide(self, frame: np.ndarray | None, after: np.ndarray | None) -> bool:
        """Whether ``frame`` (:meth:`small`; None: no image, never a cut) begins a new shot, given the
        frame ``after`` it (None at the clip's end: no cut there)."""
        self.frame += 1
        if frame is None:
            return False
        if float(frame[..., 2].mean()) < DARK_LEVEL:  # a fade through black: compared across
            self._dark += 1
            self._recent = []
            return False
        last = self._last
        if last is None or last.shape != frame.shape:
            self._last, self._dark = frame, 0
            return False
        # frames since the last cut; before the first, a cut may come as soon as the clip's changes
        # have a median to be compared with (a clip trimmed just before one: its first frames are
        # another camera's; a fast pan changes every frame a lot from the first)
        since = (self.frame - self.cuts[-1] if self.cuts else
                 self.min_shot if len(self._changes) >= FIRST_CUT_HISTORY else 0)
        if self._dark:  # lit again after a fade: another view, and one that stays, begins a new shot
            self._dark = 0
            self._last = frame
            self._recent = [_Seen.of(self.frame, frame)]
            if (since >= self.min_shot and after is not None and after.shape == frame.shape
                    and structure_correlation(last, frame) < CUT_MAX_CORRELATION
                    and structure_correlation(frame, after) >= CUT_MAX_CORRELATION):
                self.cuts.append(self.frame)
                self._changes = []
                return True
            return False
        change = content_change(last, frame)
        typical = float(np.median(self._changes[-HISTORY:])) if self._changes else 0.0
        jump = (change >= self.threshold and change >= self.ratio * typical
                and structure_correlation(last, frame) < CUT_MAX_CORRELATION)  # not the same view in other light
        if jump and after is not None and (after.shape != last.shape or content_change(last, after) < self.threshold):
            return False  # the picture comes back: a flash or a dropped frame, not another shot
        # (the clip's last frame has nothing after it: a jump there is another picture either way, as
        # a white flash is flat and so never a jump)
        self._last = frame
        seen = _Seen.of(self.frame, frame)
        if jump and since >= self.min_shot:
            self.cuts.append(self.frame)
            self._changes = [typical]  # the new shot's changes are measured afresh
            self._recent = [seen]
            return True
        self._changes.append(change)
        self._recent = [*self._recent[-MAX_DISSOLVE:], seen]
        first = self._dissolve(after) if since >= self.min_shot else None
        if first is not None:
            self.cuts.append(self.frame)
            self.dissolves.append((first, self.frame))
            self._changes = []
            self._recent = [self._recent[-1]]
            return True
        return False

    def _dissolve(self, after: np.ndarray | None) -> int | None:
        """The first frame of a dissolve that ends at the last frame of :attr:`_recent` (see the
        module docstring), or None."""
        end = self._recent[-1]
        if after is None or after.shape != end.frame.shape or structure_correlation(end.frame, after) < CUT_MAX_CORRELATION:
            return None  # the picture after it must stay
        var = np.array([r.var for r in self._recent])
        best = None
        for i in range(len(self._recent) - 1 - MIN_DISSOLVE, -1, -1):
            start = self._recent[i]
            if self.frame - start.index != len(self._recent) - 1 - i or start.frame.shape != end.frame.shape:
                break  # a frame left out in between (a flash): the window stops there
            if start.var == 0 or end.var == 0 or float(start.unit @ end.unit) >= CUT_MAX_CORRELATION:
                continue  # structure_correlation (1 for a flat frame), precomputed
            err, dip = dissolve_fit(var[i:], float(start.centred @ end.centred) / start.centred.size)
            if err < DISSOLVE_FIT and dip < DISSOLVE_DIP and (best is None or err < best[0]):
                middle = self._recent[(i + len(self._recent) - 1) // 2].value
                if blend_share(middle, start.value, end.value) >= DISSOLVE_BLEND_R2 and not same_view(start.frame, end.frame):
                    best = (err, start.index)
        return None if best is None else best[1]


def mark_cuts(items: Iterable[tuple], detector: ShotCuts) -> Iterator[tuple]:
    """``(index, frame, photo)`` items of a clip (``photo``: a :class:`backend.vision.photo.Photo`
    or None) -> ``(index, frame, photo, new_shot)``, deciding each frame's cut with the next one
    read (one decoded frame held ahead)."""
    held = None
    for item in items:
        small = ShotCuts.small(item[2].rgb if item[2] is not None else None)
        if held is not None:
            yield (*held[0], detector.decide(held[1], small))
        held = (item, small)
    if held is not None:
        yield (*held[0], detector.decide(held[1], None))
