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


def inside_frame(uv: np.ndarray, K: Intrinsics) -> np.ndarray:
    """``[J, 2]`` pixels -> ``[J]`` bool: finite and inside the image (with :data:`FRAME_MARGIN`)."""
    uv = np.asarray(uv, np.float64)
    mx, my = FRAME_MARGIN * K.width, FRAME_MARGIN * K.height
    with np.errstate(invalid="ignore"):
        return (np.isfinite(uv).all(-1) & (uv[:, 0] >= -mx) & (uv[:, 0] <= K.width + mx)
                & (uv[:, 1] >= -my) & (uv[:, 1] <= K.height + my))


def unseen_warning(seen: np.ndarray) -> list[str]:
    """A warning naming the limbs cut off (a truncated photo, an occlusion), else none.

    A limb counts as cut off when the joint it hangs from is seen but none of its joints is:
    legs (a hip seen, no knee or ankle), feet (a knee seen, no ankle), arms (a shoulder seen, no
    elbow or wrist). ``seen``: ``[J]`` bool, True where a joint has 2D evidence.
    """
    def any_seen(*names):
        return any(seen[JOINT_INDEX[f"{s}_{n}"]] for n in names for s in ("left", "right"))

    missing = []
    if any_seen("hip") and not any_seen("knee", "ankle"):
        missing.append("legs")
    elif any_seen("knee") and not any_seen("ankle"):
        missing.append("feet")
    if any_seen("shoulder") and not any_seen("elbow", "wrist"):
        missing.append("arms")
    if not missing:
        return []
    return [f"{' and '.join(missing)} not seen (outside the photo or hidden): their joints come from the prior, "
            "so they are plausible but not measured"]
