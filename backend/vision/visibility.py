"""Which 2D joints count as seen: inside the photo and detected with enough presence.

A landmark outside the photo (a truncated person) or of low detector presence is *absent* from
the evidence (weight 0), not pinned to the image border; :func:`unseen_warning` names the limbs
that are then left to the prior. One thing about such a landmark is kept: the side of the photo it
lies beyond, when it is reported there (:meth:`backend.prior.evidence.Evidence2D.set_outside`).
"""

from __future__ import annotations

import numpy as np

from backend.camera import Intrinsics
from backend.skeleton import JOINT_INDEX

#: Detector confidence (visibility x presence) below which a landmark counts as not seen.
MIN_PRESENCE = 0.1
#: Keypoints further than this fraction of the image size outside the frame are not seen.
FRAME_MARGIN = 0.02
#: The band along the photo's borders (fraction of its width / height) and the confidence below
#: which a landmark in it counts as a cut-off one placed at the edge (:func:`at_border`).
BORDER_BAND = 0.06
BORDER_CONFIDENCE = 0.8


def inside_frame(uv: np.ndarray, K: Intrinsics) -> np.ndarray:
    """``[J, 2]`` pixels -> ``[J]`` bool: finite and inside the image (with :data:`FRAME_MARGIN`)."""
    uv = np.asarray(uv, np.float64)
    mx, my = FRAME_MARGIN * K.width, FRAME_MARGIN * K.height
    with np.errstate(invalid="ignore"):
        return (np.isfinite(uv).all(-1) & (uv[:, 0] >= -mx) & (uv[:, 0] <= K.width + mx)
                & (uv[:, 1] >= -my) & (uv[:, 1] <= K.height + my))


def border_band(K: Intrinsics) -> tuple[float, float]:
    """``(u, v)`` widths (pixels) of the band along the photo's borders (:data:`BORDER_BAND`)."""
    return BORDER_BAND * K.width, BORDER_BAND * K.height


def at_border(uv: np.ndarray, conf: np.ndarray, K: Intrinsics) -> np.ndarray:
    """``[J]`` bool: landmarks of a cut-off limb that the detector places at the photo's edge.

    A landmark inside the photo but within :func:`border_band` of a border, with a confidence
    below :data:`BORDER_CONFIDENCE`, is taken for one that lies beyond the border: it is left out
    of the evidence and must project at the band or beyond
    (:meth:`backend.prior.evidence.Evidence2D.set_outside`), instead of pinning the limb to the
    edge. Measured with the shipped BlazePose on the sample photos cropped between the knees and
    the ankles (3 photos x 3 crops, ``samples/pose_landmark_truth.csv``): the cut-off ankles were
    reported 28 px inside to 23 px outside the crop (photos 450-532 px high: within 6 %), 35-106
    px from their true position (half the shin's 2D length on average), at confidence 0.02-0.73,
    so half of them passed :data:`MIN_PRESENCE` inside the photo; the same photos uncropped gave
    their ankles 0.67-1.0 (an occluded one 0.67), and cropped just below the ankles (toes cut, the
    ankles 0-6 % above the bottom) 0.77-1.0, the two of them inside the band 0.99 (kept).

    Args:
        uv: ``[J, 2]`` pixels; conf: ``[J]`` detector confidences (0..1); K: the photo's intrinsics.
    """
    uv = np.asarray(uv, np.float64)
    bu, bv = border_band(K)
    with np.errstate(invalid="ignore"):
        near = (uv[:, 0] < bu) | (uv[:, 0] > K.width - bu) | (uv[:, 1] < bv) | (uv[:, 1] > K.height - bv)
    return inside_frame(uv, K) & near & (np.asarray(conf, np.float64) < BORDER_CONFIDENCE)


def unseen_warning(seen: np.ndarray) -> list[str]:
    """A warning naming the limbs cut off (a truncated photo, an occlusion), else none.

    A limb counts as cut off when the joint it hangs from is seen but none of its joints is:
    hips and legs (a shoulder seen, no hip, knee or ankle: a waist-up shot), legs (a hip seen, no
    knee or ankle), feet (a knee seen, no ankle), arms (a shoulder seen, no elbow or wrist).
    ``seen``: ``[J]`` bool, True where a joint has 2D evidence.
    """
    def any_seen(*names):
        return any(seen[JOINT_INDEX[f"{s}_{n}"]] for n in names for s in ("left", "right"))

    missing = []
    if any_seen("shoulder") and not any_seen("hip", "knee", "ankle"):
        missing.append("hips and legs")
    elif any_seen("hip") and not any_seen("knee", "ankle"):
        missing.append("legs")
    elif any_seen("knee") and not any_seen("ankle"):
        missing.append("feet")
    if any_seen("shoulder") and not any_seen("elbow", "wrist"):
        missing.append("arms")
    if not missing:
        return []
    return [f"{' and '.join(missing)} not seen (outside the photo or hidden): their joints come from the prior, "
            "so they are plausible but not measured"]
