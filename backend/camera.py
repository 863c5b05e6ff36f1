"""Pinhole camera: intrinsics, default field of view, world<->camera rotations, projection.

Frames (``shared/design/CONTRACT.md``):

* camera: OpenCV pinhole, x right, y down, z forward, metres; pixel (0, 0) is the top-left corner.
* world: right-handed, Z up, metres (Blender's frame).

A level camera looks along world +Y: camera x = world x, camera y = -world z, camera z = world y.
A real photo's camera is tilted relative to gravity by a pitch (about camera x, positive =
looking down) and a small roll (about camera z); :func:`tilt_rotation` builds that rotation.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

#: 35 mm-equivalent focal length assumed when neither the request nor EXIF gives one (mm).
#: 40 mm (about 57 degrees diagonal field of view) sits between phone main cameras (24-28 mm)
#: and the Human3.6M cameras (about 41 mm equivalent).
#:
#: An unknown focal length is neither estimated nor marginalised, because one person's 2D does not
#: identify it and knowing it barely helps at 3-7 m. Measured on 12 S8 frames of the photo
#: protocol's away-from-standing subset, lens drawn from 24/35/50 mm, 4 px noise, each frame
#: estimated with each lens given (best-of-1 / best-of-20 MPJPE mm): the true lens 112.7 / 79.0,
#: this default 117.1 / 81.1, always 35 mm 108.7 / 80.1; the lens whose top-5 hypotheses reproject
#: best is the true one in 1 of 12 frames (their reprojection errors differ by < 0.3 px, under the
#: noise), so choosing the lens by fit, or weighting hypotheses from several lenses by it, has
#: nothing to go on. The same on 12 held-out S9/S11 frames: true lens 117.1 / 79.4, default
#: 114.9 / 85.1, the best-fitting lens right in 1 of 12.
#: Re-measured over a wider range of lenses (2026-12-07; 33 S8 frames away from standing, the true
#: lens drawn from 24 / 35 / 50 / 85 / 135 mm, each frame estimated with each, 4 px noise): the true
#: lens 53.0 / 37.7, always 35 mm 59.4 / 42.7, always 50 mm 61.9 / 41.0; the lens chosen by the fit
#: (the top-5 candidates' log-likelihood, their reprojection error, the best candidate's, or all
#: lenses' candidates ranked together) 65.3-72.8 / 44.0-46.7, right in 8-13 of 33: worse than a
#: fixed lens. Adding the camera prior's subject distance picks better (57.2-58.8 / 38.2-38.9), but
#: only because the eval puts every lens 3-7 m away: a telephoto is used from further, so that is
#: the eval's framing, not evidence, and it is not used. What a wrong lens costs is large at the
#: long end (S8 24 frames, no EXIF -> this default, against the lens given): 77 mm 53.9 / 36.4 against
#: 46.1 / 28.5, 120 mm 61.8 / 42.3 against 41.0 / 28.0, 24 mm 83.0 / 57.5 against 71.9 / 47.4: the
#: lens can be given in 35 mm terms (request ``camera.focal_35mm``, the CLI's ``--lens``, the
#: add-on's *Lens*), and a video's own metadata is read where it has it (an iPhone's).
DEFAULT_FOCAL_35MM = 40.0
#: The lens assumed for footage (video frames, image sequences) that does not say its own (no
#: metadata, no EXIF, none in the request): what films people's reference clips is a phone's main
#: camera (24-28 mm equivalent, its video a little narrower) or a webcam (about 28 mm), not the
#: photo default's mix. ``posediff eval sequence --protocol photo --unknown-focal`` (S8, 6 clips x
#: 40 frames, track MPJPE mm; the lens given 36.3 at 26 mm, 30.7 at 50 mm): default 40 mm -> 44.8 at
#: 26 mm and 32.1 at 50 mm, 32 mm -> 39.8 and 34.4, 28 mm -> 36.9 and 37.5: 28 and 32 are level on an
#: even mix of the two lenses, and 28 is within 0.6 mm of the lens given on the phone-like one.
DEFAULT_FOOTAGE_FOCAL_35MM = 28.0
_DIAG_35MM = math.hypot(36.0, 24.0)

#: World -> camera rotation of a level camera looking along world +Y.
LEVEL_WORLD_TO_CAMERA = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]], dtype=np.float64)


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics in pixels; ``width``/``height`` of the image in pixels."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def as_dict(self) -> dict:
        return asdict(self)

    def matrix(self) -> np.ndarray:
        """3x3 intrinsic matrix K."""
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]], dtype=np.float64)

    def scaled(self, s: float) -> "Intrinsics":
        """The same camera for an image resized by factor ``s``."""
        return Intrinsics(self.fx * s, self.fy * s, self.cx * s, self.cy * s,
                          max(1, round(self.width * s)), max(1, round(self.height * s)))


def intrinsics_from_focal_35mm(focal_35mm: float, width: int, height: int) -> Intrinsics:
    """Intrinsics from a 35 mm-equivalent focal length (EXIF ``FocalLengthIn35mmFilm``).

    The equivalence is defined on the image diagonal (CIPA DC-008): ``f_px = f35 * diag_px / 43.27``.
    Principal point at the image centre, square pixels.

    Raises:
        ValueError: if the focal length or the size is not positive.
    """
    if not (focal_35mm > 0 and width > 0 and height > 0):
        raise ValueError(f"focal length and image size must be positive (got {focal_35mm}, {width}x{height})")
    f = focal_35mm * math.hypot(width, height) / _DIAG_35MM
    return Intrinsics(f, f, width / 2.0, height / 2.0, int(width), int(height))


def default_intrinsics(width: int, height: int) -> Intrinsics:
    """Intrinsics for an image of unknown camera: :data:`DEFAULT_FOCAL_35MM`, centred principal point."""
    return intrinsics_from_focal_35mm(DEFAULT_FOCAL_35MM, width, height)


def resolve_intrinsics(partial: dict | None, width: int | None, height: int | None) -> Intrinsics:
    """Fill a possibly partial camera dict (request field ``camera``) with defaults.

    Args:
        partial: any of ``fx, fy, cx, cy, width, height`` (pixels) and ``focal_35mm`` (mm, 35 mm
            equivalent: the focal length where ``fx`` / ``fy`` are not given), or None.
        width, height: image size in pixels when known (from the image), else taken from
            ``partial`` or from the principal point.
    Raises:
        ValueError: if the image size cannot be determined.
    """
    p = {k: v for k, v in (partial or {}).items() if v is not None}
    w = p.get("width", width)
    h = p.get("height", height)
    if w is None and "cx" in p:
        w = int(round(2 * p["cx"]))
    if h is None and "cy" in p:
        h = int(round(2 * p["cy"]))
    if not w or not h:
        raise ValueError("camera: image size unknown; give camera.width and camera.height (pixels)")
    f35 = p.get("focal_35mm")
    d = intrinsics_from_focal_35mm(float(f35), int(w), int(h)) if f35 else default_intrinsics(int(w), int(h))
    fx = p.get("fx", p.get("fy", d.fx))
    fy = p.get("fy", fx)
    return Intrinsics(float(fx), float(fy), float(p.get("cx", w / 2.0)), float(p.get("cy", h / 2.0)), int(w), int(h))


def tilt_rotation(pitch: float, roll: float = 0.0) -> np.ndarray:
    """World -> camera rotation of a camera tilted by ``pitch`` (radians, + looks down) and ``roll``.

    ``R = R_z(roll) @ R_x(pitch) @ LEVEL_WORLD_TO_CAMERA``; maps world vectors (Z up) to the
    camera frame (y down). Yaw is not included: the prior is yaw-free, so body facing covers it.
    """
    cp, sp, cr, sr = math.cos(pitch), math.sin(pitch), math.cos(roll), math.sin(roll)
    # pitch down: rotate about camera x so that the optical axis tips toward world -Z
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]], dtype=np.float64)
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]], dtype=np.float64)
    return rz @ rx @ LEVEL_WORLD_TO_CAMERA


def project(points_cam: np.ndarray, K: Intrinsics) -> np.ndarray:
    """Perspective projection of camera-frame points ``[..., 3]`` (metres) to pixels ``[..., 2]``."""
    p = np.asarray(points_cam, dtype=np.float64)
    z = np.maximum(p[..., 2:3], 1e-6)
    return np.concatenate([K.fx * p[..., 0:1] / z + K.cx, K.fy * p[..., 1:2] / z + K.cy], axis=-1)
