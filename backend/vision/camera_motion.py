"""How a handheld camera turns during a clip, from the background of its frames.

A phone held in the hand sways and shakes; a camera that pans follows the person. Both turn the
camera about (nearly) its own centre, which moves the whole image: a person standing still
seems to sway, and a track that takes the camera as fixed makes them sway too (and their feet
slide). For a camera turning about its centre, background points of frame ``t-1`` and ``t`` are
related by a rotation of their viewing rays, ``r_t = Q_t r_{t-1}`` (the infinite homography
``H = K Q K^-1``; Hartley & Zisserman 2004, sec. 8.4.2 and 13.4): so

1. corners are found on the previous frame away from the person (Shi & Tomasi 1994,
   ``cv2.goodFeaturesToTrack``, the person's box masked out) and followed into this frame by
   pyramidal Lucas-Kanade optical flow (Bouguet 2000, ``cv2.calcOpticalFlowPyrLK``, checked
   forwards and backwards);
2. RANSAC on the homography (``cv2.findHomography``) drops what moves on its own (other
   people, cars) and points too close for the rotation model;
3. the rotation is the least-squares fit of the inliers' rays (Kabsch 1976 / Umeyama 1991: the
   SVD of their correlation), and the turns are chained, ``M_t = Q_t M_{t-1}``
   (``x_cam_t = M_t x_cam_0``, what :func:`backend.prior.track.solve_track` undoes);
4. a zoom (the focal length changing: a phone's pinch zoom, a broadcast camera) is fitted with
   the rotation: the focal-length ratio of the two frames whose rays that fit explains best
   (:attr:`CameraMotion.zoom`, chained; :meth:`CameraMotion.zoom_result`). A camera that moves
   forward through a scene can read partly as a zoom (its background's parallax), as a travelling
   camera's reads as a turn.

Every person seen is left out. A frame whose background gives too few points (a plain wall, a
green screen, motion blur), whose points bunch in one place (:data:`MIN_SPREAD`) or mostly move on
their own (:data:`MIN_INLIER_SHARE`), or that would turn implausibly far
(:data:`MAX_TURN_PER_FRAME_DEG`) is taken as not turning, with a count in :attr:`CameraMotion.unsure`; a clip whose camera never
turns by more than :data:`MIN_TURN_DEG` is reported as fixed (None), so a camera on a tripod is
estimated exactly as before.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from backend.camera import Intrinsics

#: Corners looked for per frame (the background's strongest), and the least inliers that give a turn.
MAX_CORNERS = 400
MIN_INLIERS = 25
#: Corners kept down to this fraction of the strongest one's score (low: one strong corner, such as a
#: picture frame's, must not leave the rest of the background unused).
CORNER_QUALITY = 0.002
#: RANSAC reprojection threshold of the homography (pixels of the processed frame).
RANSAC_PX = 2.0
#: Forward-backward optical flow disagreement above which a point is dropped (pixels).
FB_MAX_PX = 1.0
#: Frames are processed at most this wide (pixels; corners and flow need no more).
WORK_WIDTH = 640
#: Least share of the followed points the turn must explain (a background mostly of other moving
#: people or cars gives no turn), and the most a camera turns between two frames (degrees; a
#: whip pan at 25 fps turns about 5): beyond, the frame is taken as not turning.
MIN_INLIER_SHARE = 0.5
MAX_TURN_PER_FRAME_DEG = 10.0
#: The turn's points must spread over at least this fraction of the frame's width and of its height
#: (the corners of one unmasked moving thing, say a second person on a plain wall, do not).
MIN_SPREAD = 0.3
#: A clip whose camera never turns more than this from its first frame is a fixed camera (degrees).
MIN_TURN_DEG = 0.25
#: Margin around the person's box left out of the background (fraction of the box's larger side).
PERSON_MARGIN = 0.15
#: A zoom (the focal length changing during the clip: a phone's pinch zoom, a broadcast camera) is
#: fitted with the turn between two frames, within this factor a frame; a frame's zoom closer to 1
#: than :data:`ZOOM_DEADBAND` is taken as none (so a fixed lens does not drift by noise over a long
#: clip), and a clip whose focal length stays within :data:`MIN_ZOOM` of its first frame's has none.
MAX_ZOOM_PER_FRAME = 1.1
ZOOM_DEADBAND = 0.003
MIN_ZOOM = 0.02


def follow_corners(prev: np.ndarray, gray: np.ndarray, max_corners: int, quality: float, min_distance: float,
                   window: int, fb_max_px: float, min_corners: int, mask: np.ndarray | None = None):
    """Shi-Tomasi corners of ``prev`` (``cv2.goodFeaturesToTrack``) followed into ``gray`` by pyramidal
    Lucas-Kanade flow (Bouguet 2000, ``cv2.calcOpticalFlowPyrLK``, ``window`` px, 3 levels) and back,
    kept where the flow back returns within ``fb_max_px`` (the forward-backward check, Kalal et al.
    2010). ``prev``, ``gray``: ``[H, W]`` uint8 of one size; ``mask``: where corners may lie.

    Returns:
        ``(found, a, b)``: the corners found, and the kept ones ``[N, 2]`` in ``prev`` and ``gray``
        (pixels); ``a`` and ``b`` empty without following when fewer than ``min_corners`` are found.
    """
    p0 = cv2.goodFeaturesToTrack(prev, max_corners, quality, min_distance, mask=mask)
    found = 0 if p0 is None else len(p0)
    if found < min_corners:
        return found, np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32)
    lk = {"winSize": (window, window), "maxLevel": 3, "criteria": (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01)}
    p1, st, _ = cv2.calcOpticalFlowPyrLK(prev, gray, p0, None, **lk)
    back, st2, _ = cv2.calcOpticalFlowPyrLK(gray, prev, p1, None, **lk)
    ok = (st.ravel() == 1) & (st2.ravel() == 1) & (np.linalg.norm((back - p0).reshape(-1, 2), axis=1) < fb_max_px)
    return found, p0.reshape(-1, 2)[ok], p1.reshape(-1, 2)[ok]


def kabsch_rotation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The rotation ``Q`` (``[3, 3]``) minimising ``sum |Q a_i - b_i|^2`` over unit rays ``a``, ``b`` ``[N, 3]``
    (Kabsch 1976; a reflection is turned into the nearest rotation)."""
    H = np.asarray(b, np.float64).T @ np.asarray(a, np.float64)
    U, _, Vt = np.linalg.svd(H)
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt)) or 1.0])
    return U @ D @ Vt


def turn_deg(R: np.ndarray) -> float:
    """The angle of a rotation ``[3, 3]`` (degrees)."""
    return math.degrees(math.acos(float(np.clip((np.trace(R) - 1.0) / 2.0, -1.0, 1.0))))


class CameraMotion:
    """The turn of the camera through a clip, one frame at a time (see the module docstring).

    :meth:`push` each frame in order; :attr:`motion` is then ``[T, 3, 3]``
    (``x_cam_t = M_t x_cam_0``, ``M_0 = I``), :meth:`result` the same or None for a fixed camera.
    """

    def __init__(self):
        self._prev: np.ndarray | None = None
        self._scale = 1.0
        self.motion: list[np.ndarray] = []
        self.unsure = 0  # frames taken as not turning for want of background points
        self.inliers: list[int] = []
        self.zoom: list[float] = []  # each frame's focal length over the first frame's
        self._lens_reset = False  # a cut: the next frame's focal length is the clip's own again

    def push(self, rgb: np.ndarray, K: Intrinsics, person_box=None) -> np.ndarray:
        """Add the next frame; returns its ``M_t`` (``[3, 3]``).

        Args:
            rgb: ``[H, W, 3]`` uint8 frame (the pixels ``K`` is for).
            K: the frame's intrinsics (pixels).
            person_box: ``[x0, y0, x1, y1]`` pixels of the person, or a list of such boxes (every
                person seen: all are left out of the background, which must not move on its own), or None.
        """
        h, w = rgb.shape[:2]
        s = min(1.0, WORK_WIDTH / max(w, 1))
        gray = cv2.cvtColor(rgb if s == 1.0 else cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))),
                                                          interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
        z = self.zoom[-1] if self.zoom and not self._lens_reset else 1.0
        self._lens_reset = False
        if self._prev is None or self._prev.shape != gray.shape:
            M = np.eye(3) if not self.motion else self.motion[-1]
        else:
            Qz = self._turn(self._prev, gray, K, s, self._mask(gray.shape, person_box, s), z)
            M = (np.eye(3) if Qz is None else Qz[0]) @ self.motion[-1]
            z = z if Qz is None else z * Qz[1]
            self.unsure += Qz is None
        self._prev = gray
        self.motion.append(M)
        self.zoom.append(z)
        return M

    def new_shot(self) -> None:
        """The next frame begins another shot (a cut): it is not compared with the frame before, whose
        background is another camera's (its turn is held; :mod:`backend.prior.shots` places the new
        camera), and its focal length is the clip's own again (another camera's zoom is not this one's)."""
        self._prev = None
        self._lens_reset = True

    def hold(self) -> np.ndarray:
        """A frame without an image to look at (it could not be read): taken as not turning since the
        last one; the next frame is compared with that last one."""
        M = np.eye(3) if not self.motion else self.motion[-1]
        self.motion.append(M)
        self.zoom.append(self.zoom[-1] if self.zoom and not self._lens_reset else 1.0)
        self.unsure += 1
        return M

    def result(self) -> np.ndarray | None:
        """``[T, 3, 3]``, or None when the camera never turned by :data:`MIN_TURN_DEG` (a fixed camera)."""
        if not self.motion or max(turn_deg(m) for m in self.motion) < MIN_TURN_DEG:
            return None
        return np.stack(self.motion)

    def zoom_result(self) -> np.ndarray | None:
        """``[T]`` each frame's focal length over the first frame's, or None when it stays within
        :data:`MIN_ZOOM` of it (a fixed lens)."""
        if not self.zoom or max(abs(z - 1.0) for z in self.zoom) < MIN_ZOOM:
            return None
        return np.asarray(self.zoom, np.float64)

    @staticmethod
    def _mask(shape, boxes, s: float) -> np.ndarray:
        mask = np.full(shape, 255, np.uint8)
        boxes = [] if boxes is None else np.asarray(boxes, np.float64).reshape(-1, 4)
        for box in boxes:
            if not np.isfinite(box).all():
                continue
            x0, y0, x1, y1 = (float(v) * s for v in box)
            m = PERSON_MARGIN * max(x1 - x0, y1 - y0)
            mask[max(0, int(y0 - m)) : max(0, int(math.ceil(y1 + m))), max(0, int(x0 - m)) : max(0, int(math.ceil(x1 + m)))] = 0
        return mask

    def _turn(self, prev: np.ndarray, gray: np.ndarray, K: Intrinsics, s: float, mask: np.ndarray,
              zoom: float = 1.0) -> tuple[np.ndarray, float] | None:
        """``(Q, k)``: the turn ``r_t = Q r_{t-1}`` and the zoom ``k = f_t / f_{t-1}`` from the background's
        points (the previous frame's focal length ``zoom`` times ``K``'s), or None (too few).

        A zoom about the principal point scales the pixels' offsets from it, ``x_t = K_t Q K_{t-1}^-1
        x_{t-1}`` (Hartley & Zisserman 2004, sec. 8.4.2): ``k`` is the factor whose rays, with ``Q``
        from them by Kabsch, fit best (a golden-section search in ``log k``); closer to 1 than
        :data:`ZOOM_DEADBAND`, it is 1."""
        found, a, b = follow_corners(prev, gray, MAX_CORNERS, CORNER_QUALITY, 8, 21, FB_MAX_PX, MIN_INLIERS, mask=mask)
        if found < MIN_INLIERS or len(a) < MIN_INLIERS:
            return None
        _, inl = cv2.findHomography(a, b, cv2.RANSAC, RANSAC_PX)
        if inl is None or int(inl.sum()) < max(MIN_INLIERS, MIN_INLIER_SHARE * len(a)):
            return None
        inl = inl.ravel().astype(bool)
        extent = np.ptp(a[inl], axis=0) / np.array(gray.shape[::-1], np.float64)
        if (extent < MIN_SPREAD).any():  # points bunched in one place: something moving, not the background
            return None

        def rays(p, f: float):  # processed pixels -> unit rays of the camera (OpenCV frame), focal length x f
            r = np.stack([(p[:, 0] / s - K.cx) / (K.fx * f), (p[:, 1] / s - K.cy) / (K.fy * f), np.ones(len(p))], 1)
            return r / np.linalg.norm(r, axis=1, keepdims=True)

        ra = rays(a[inl], zoom)

        def misfit(log_k: float) -> float:
            rb = rays(b[inl], zoom * math.exp(log_k))
            return float(((ra @ kabsch_rotation(ra, rb).T - rb) ** 2).sum())

        lo, hi = -math.log(MAX_ZOOM_PER_FRAME), math.log(MAX_ZOOM_PER_FRAME)
        g = (math.sqrt(5) - 1) / 2
        x1, x2 = hi - g * (hi - lo), lo + g * (hi - lo)
        f1, f2 = misfit(x1), misfit(x2)
        for _ in range(30):
            if f1 < f2:
                hi, x2, f2 = x2, x1, f1
                x1 = hi - g * (hi - lo)
                f1 = misfit(x1)
            else:
                lo, x1, f1 = x1, x2, f2
                x2 = lo + g * (hi - lo)
                f2 = misfit(x2)
        k = math.exp((lo + hi) / 2)
        k = 1.0 if abs(k - 1.0) < ZOOM_DEADBAND else k
        Q = kabsch_rotation(ra, rays(b[inl], zoom * k))
        if turn_deg(Q) > MAX_TURN_PER_FRAME_DEG:
            return None
        self.inliers.append(int(inl.sum()))
        return Q, k
