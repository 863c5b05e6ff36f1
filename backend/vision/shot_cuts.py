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
least :data:`MIN_SHOT_FRAMES` frames after the previous cut, and
the frame after it differs from the frame before as much (a flash, a dropped frame or a blank one
comes back; a new shot stays): one frame of look-ahead, so it runs on frames as they are read.
A **fade through black** (music videos, trailers, film scenes: the picture dims to black, then the
next shot brightens out of it) changes little from one frame to the next, so it is found apart, as
PySceneDetect's ``ThresholdDetector`` finds fades: frames darker than :data:`DARK_LEVEL` are left
out of the comparison, and the first frame after them begins a new shot when its structure differs
from the last frame before them (the same view coming back after a dip to black is not a cut). Not
the library itself: its
wheel requires ``opencv-python``, the GUI build of OpenCV, which would replace the headless
build this backend installs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

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
#: A cut changes the picture's structure: the zero-mean normalised correlation of the two frames'
#: brightness (V) stays above this for the same view under other light (a club's lights, a flash
#: fading; measured 0.83 for a change of 63 in content) or swaying (0.79-0.93), and falls below it
#: at a cut (-0.22 to 0.14 on the tests' clips).
CUT_MAX_CORRELATION = 0.5
#: A frame whose mean brightness (HSV value, 0-255) is below this is dark: part of a fade through
#: black (PySceneDetect's ``ThresholdDetector``: 12 on the mean of R, G and B; V is their maximum).
DARK_LEVEL = 16.0


def structure_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """The zero-mean normalised cross-correlation of two frames' value (brightness) channels, ``a``,
    ``b``: ``[H, W, 3]`` uint8 HSV of one size; 1 = the same picture up to gain and offset (light)."""
    x, y = (np.asarray(im[..., 2], np.float64) for im in (a, b))
    x, y = x - x.mean(), y - y.mean()
    d = math.sqrt(float((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / d) if d > 0 else 1.0


def content_change(a: np.ndarray, b: np.ndarray) -> float:
    """PySceneDetect's content value of two frames: the mean absolute difference of their hue,
    saturation and value channels (0-255 each; hue's 0-179 as OpenCV stores it), averaged over
    the channels. ``a``, ``b``: ``[H, W, 3]`` uint8 HSV images of one size."""
    d = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return float(d.reshape(-1, 3).mean(0).mean())


class ShotCuts:
    """Shot cuts of one clip, a frame at a time, with one frame of look-ahead (see the module docstring).

    :meth:`decide` each frame in order with the frame after it; it returns whether that frame
    begins a new shot. A frame unlike the one before *and* the one after (a flash, a dropped or
    blank frame, someone passing right in front of the lens for a frame) is not a cut and is left
    out of the comparison; so are dark frames (a fade through black), after which the first lit
    frame is a cut if it shows another view. :attr:`cuts` lists the cut frames (indices in order of
    :meth:`decide`; the first frame is never one, nor the last, nor a dark one).
    """

    def __init__(self, threshold: float = CUT_THRESHOLD, ratio: float = CUT_RATIO, min_shot: int = MIN_SHOT_FRAMES):
        self.threshold, self.ratio, self.min_shot = float(threshold), float(ratio), int(min_shot)
        self._last: np.ndarray | None = None  # the last frame compared (HSV, small)
        self._changes: list[float] = []
        self._dark = 0  # dark frames since the last lit one (a fade through black)
        self.frame = -1  # the index of the last frame decided
        self.cuts: list[int] = []

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
            return False
        last = self._last
        if last is None or last.shape != frame.shape:
            self._last, self._dark = frame, 0
            return False
        since = self.frame - (self.cuts[-1] if self.cuts else 0)
        if self._dark:  # lit again after a fade: another view, and one that stays, begins a new shot
            self._dark = 0
            self._last = frame
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
        if jump and (after is None or after.shape != last.shape or content_change(last, after) < self.threshold):
            return False  # the picture comes back (or the clip ends): a flash or a dropped frame, not another shot
        self._last = frame
        if jump and since >= self.min_shot:
            self.cuts.append(self.frame)
            self._changes = [typical]  # the new shot's changes are measured afresh
            return True
        self._changes.append(change)
        return False


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
