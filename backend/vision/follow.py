"""The same person through the frames of a clip (which detection is "ours" in each frame).

A photo's person is picked by size (``person``: 0 = the largest). In a video that choice is made
once, on the first frame where somebody is found, and then *followed*: each later frame takes the
detection that overlaps the crop predicted from the previous frame's landmarks, so a second
person who walks closer to the camera, or a bystander, does not take over the track (picking the
largest person frame by frame jumps from one person to the other as soon as their sizes cross).

The prediction is MediaPipe Pose's tracking ROI (Bazarevsky et al. 2020, "BlazePose: On-device
Real-time Body Pose tracking", sec. 2; MediaPipe ``pose_landmarks_to_roi``): the landmark model's
auxiliary landmarks 33 (hip centre) and 34 (body size and rotation) give the next frame's crop the
way the detector's keypoints 0 and 1 give the first (:func:`backend.vision.blazepose.alignment_roi`).
Where the detector finds nobody that overlaps it (a missed detection, a person cut by the frame's
edge), the predicted crop itself is given to the landmark model, and its pose-presence flag says
whether the person is still there. After :data:`MAX_LOST` frames in a row without the person, the
next person found is picked again by size, with a warning.

Pure bookkeeping on numpy: :meth:`backend.vision.detector.PoseDetector.detect` calls
:meth:`PersonFollower.choose` with a frame's detections and :meth:`PersonFollower.found` /
:meth:`PersonFollower.lost` with the outcome.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backend.errors import NoPersonError
from backend.vision.blazepose import ROI_SCALE, PersonROI, alignment_roi, box_iou

#: A detection is the followed person when its crop overlaps the predicted crop by at least this IoU.
MIN_FOLLOW_IOU = 0.2
#: Frames in a row without the followed person after which the next one is picked again by size.
MAX_LOST = 3


@dataclass
class Pick:
    """The crop chosen in a frame: ``roi`` (image pixels), whether it is the prediction from the
    previous frame rather than a detection, and a warning for the frame (or None)."""

    roi: PersonROI
    predicted: bool = False
    warning: str | None = None


class PersonFollower:
    """Which detected person to estimate in each frame of one clip (see the module docstring).

    Args:
        person: the person to pick on the first frame where anybody is found, by size (0 = the
            largest; None = 0).
    """

    def __init__(self, person: int | None = None):
        self.person = person or 0
        self.roi: PersonROI | None = None  # the crop predicted for the next frame
        self.shape: tuple[int, int] | None = None  # (height, width) of the images the crops are in
        self.lost_frames = 0
        self.most_found = 0  # the most people found in one frame (for "person N requested")

    @property
    def searching(self) -> bool:
        """Whether this frame's person must be found by searching the image (nobody followed, or lost
        for :data:`MAX_LOST` frames), not in the crop predicted from the frame before."""
        return self.roi is None or self.lost_frames >= MAX_LOST

    def repick(self, person: int | None) -> None:
        """Pick by size again on the next frame (a frame that names its own ``person``)."""
        self.person = person or 0
        self.roi = None

    def choose(self, people: list[PersonROI], shape: tuple[int, int]) -> Pick:
        """The crop for this frame.

        Args:
            people: this frame's detections, largest first (image pixels).
            shape: ``(height, width)`` of the image, pixels.
        Returns:
            :class:`Pick`: the detection overlapping the predicted crop (IoU >= :data:`MIN_FOLLOW_IOU`
            of their squares), else the predicted crop itself for up to :data:`MAX_LOST` frames,
            else (and on the first frame) ``people[person]``.
        Raises:
            NoPersonError: nobody to estimate in this frame (nobody found and nothing predicted; or
                fewer people than ``person + 1`` where a person is picked by size).
        """
        self.most_found = max(self.most_found, len(people))
        if self.shape is not None and tuple(shape) != self.shape:
            self.roi = None  # another image size: the prediction is in other pixels
        self.shape = tuple(shape)
        if self.roi is not None:
            if people:
                iou = box_iou(self.roi.square(), np.stack([p.square() for p in people]))
                best = int(np.argmax(iou))
                if iou[best] >= MIN_FOLLOW_IOU:
                    return Pick(people[best])
            if self.lost_frames < MAX_LOST:
                return Pick(self.roi, predicted=True)
        if not people:
            raise NoPersonError("image", "no person found in the image")
        if self.person >= len(people):
            raise NoPersonError("image", f"person {self.person} requested but {len(people)} found in this frame "
                                         "(0 = largest)")
        warning = None
        if self.roi is not None:
            who = "the largest person" if self.person == 0 else f"person #{self.person} by size"
            warning = (f"the person followed so far was not found for {self.lost_frames} frames; {who} is estimated "
                       "from this frame on: check that it is the same person")
        return Pick(people[self.person], warning=warning)

    def found(self, aux_uv: np.ndarray, score: float) -> None:
        """The person was found: predict the next frame's crop from this frame's auxiliary landmarks.

        Args:
            aux_uv: ``[2, 2]`` auxiliary landmarks 33 and 34, pixels of the image given to :meth:`choose`.
            score: the crop's score (kept on the predicted crop).
        """
        aux_uv = np.asarray(aux_uv, np.float64)
        self.lost_frames = 0
        if not np.isfinite(aux_uv).all():
            self.roi = None
            return
        centre, size, rot = alignment_roi(aux_uv[0], aux_uv[1], ROI_SCALE)
        self.roi = None if size < 4 else PersonROI(float(score), np.concatenate([centre - size / 2, centre + size / 2]),
                                                  np.concatenate([aux_uv, aux_uv]), centre, size, rot)

    def lost(self) -> None:
        """Not found in this frame: the last prediction is kept for up to :data:`MAX_LOST` frames."""
        if self.roi is not None:
            self.lost_frames += 1
