"""The same person through the frames of a clip (which detection is "ours" in each frame).

A photo's person is picked by size (``person``: 0 = the largest). In a video that choice is made
once, on the first frame where somebody is found, and then *followed*: each later frame takes the
detection whose hip centre is nearest the one predicted from the frames before, so a second
person who walks closer to the camera, or a bystander, does not take over the track (picking the
largest person frame by frame jumps from one person to the other as soon as their sizes cross).

The prediction is MediaPipe Pose's tracking ROI (Bazarevsky et al. 2020, "BlazePose: On-device
Real-time Body Pose tracking", sec. 2; MediaPipe ``pose_landmarks_to_roi``): the landmark model's
auxiliary landmarks 33 (hip centre) and 34 (body size and rotation) give the next frame's crop the
way the detector's keypoints 0 and 1 give the first (:func:`backend.vision.blazepose.alignment_roi`),
moved on by the hip centre's velocity over the last two frames (a constant-velocity model, so a
person walking past another is still looked for where they are going). A detection is the
followed person when its hip centre is within :data:`MATCH_DISTANCE` of the predicted crop's side
and its size within :data:`MATCH_SIZE`; where none is, the predicted crop itself goes to the
landmark model and its pose-presence flag says whether the person is still there. In a clip where
several people have been seen, the torso's colours (a hue-saturation histogram between the
shoulders and the hips) are compared with the followed person's (:func:`torso_histogram`): a
landmark pass that finds someone else there (another person crossing in front) counts as not
finding the person, whose crop is then predicted on. After :data:`MAX_LOST` frames in a row
without the person, the next person found is picked again by size, with a warning. At a cut
(:meth:`PersonFollower.new_shot`) the person is searched for anew and, where the clip has shown
several people, recognised by the torso's colours.

Bookkeeping on numpy (and OpenCV for the histogram): :meth:`backend.vision.detector.PoseDetector.detect`
calls :meth:`PersonFollower.candidates` with a frame's detections, :meth:`PersonFollower.accepts` with
the torso of what the landmark model found, and :meth:`PersonFollower.found` / :meth:`PersonFollower.lost`
with the outcome.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backend.errors import NoPersonError
from backend.vision.blazepose import ROI_SCALE, PersonROI, alignment_roi, box_intersection

#: A detection is the followed person when its hip centre is within this fraction of the predicted
#: crop's side from the predicted one (a walking person's hips move ~2.5 % of it a frame at 25 fps) ...
MATCH_DISTANCE = 0.25
#: ... and its crop's side within this factor of the predicted one's.
MATCH_SIZE = 1.5
#: In a clip that has only ever shown one person, a detection this many crop sides away is still theirs
#: (a jump, a fast turn, or frames far apart with ``every``).
FAST_MOVE_DISTANCE = 1.0
#: Frames in a row without the followed person after which the next one is picked again by size.
MAX_LOST = 5
#: How the warning on a frame where a person is picked again begins (the track does not smooth across it).
REPICK_WARNING = "the person followed so far was not found"
#: Hue-saturation histogram of the torso: bins, and the Bhattacharyya distance from the followed
#: person's above which the torso is someone else's (0 = the same colours, 1 = none in common).
HIST_BINS = (18, 8)
MAX_TORSO_DISTANCE = 0.6
#: Weight of a new frame in the followed person's running torso histogram.
HIST_UPDATE = 0.1
#: Another person in view is matched to the detection nearest where they were going within this many
#: of their crop's sides (:meth:`PersonFollower.someone_else`).
OTHER_MATCH = 0.5
#: ... and the person found is theirs unless this many times nearer where the followed one was going
#: (two people crossing: both predictions near, the one in front found in either's crop).
CROSSING_MARGIN = 2.0


@dataclass
class _Other:
    """Another person in view (:attr:`PersonFollower.others`): hip centre where last detected and
    velocity per frame (pixels), crop side (pixels), frames since."""

    centre: np.ndarray
    velocity: np.ndarray
    size: float
    missed: int

    def predicted(self) -> np.ndarray:
        """Where they are expected in the next frame (pixels): moved on by their velocity."""
        return self.centre + self.velocity * (self.missed + 1)


def torso_histogram(rgb: np.ndarray, shoulders_hips: np.ndarray) -> np.ndarray | None:
    """Normalised hue-saturation histogram ``[18, 8]`` of the quadrilateral between the shoulders and
    the hips (``[4, 2]`` pixels: left and right shoulder, right and left hip), or None when it
    covers under 20 pixels."""
    import cv2

    if not np.isfinite(shoulders_hips).all():
        return None
    quad = np.round(np.asarray(shoulders_hips, np.float64)).astype(np.int32)
    h, w = rgb.shape[:2]
    x0, y0 = np.clip(quad.min(0), 0, [w, h])
    x1, y1 = np.clip(quad.max(0) + 1, 0, [w, h])
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)  # the quadrilateral's bounding box only
    cv2.fillConvexPoly(mask, quad - [x0, y0], 255)
    if int((mask > 0).sum()) < 20:
        return None
    hsv = cv2.cvtColor(np.ascontiguousarray(rgb[y0:y1, x0:x1]), cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1], mask, list(HIST_BINS), [0, 180, 0, 256]).astype(np.float32)
    return hist / max(float(hist.sum()), 1e-9)


def torso_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Bhattacharyya distance between two torso histograms (0 = the same, 1 = disjoint)."""
    import cv2

    return float(cv2.compareHist(a, b, cv2.HISTCMP_BHATTACHARYYA))


@dataclass
class Pick:
    """The crop chosen in a frame: ``roi`` (image pixels), whether it is the prediction from the
    frames before rather than a detection, and a warning for the frame (or None)."""

    roi: PersonROI
    predicted: bool = False
    warning: str | None = None
    any_torso: bool = False  # taken whoever's torso it is (the last resort after a cut)


class PersonFollower:
    """Which detected person to estimate in each frame of one clip (see the module docstring).

    Args:
        person: the person to pick on the first frame where anybody is found, by size (0 = the
            largest; None = 0).
        step: source frames between two frames given (a video read with ``every``): the match
            distances grow with it and :data:`MAX_LOST` counts source frames.
    """

    def __init__(self, person: int | None = None, step: int = 1):
        self.person = person or 0
        self.step = max(1, int(step))
        self.max_lost = max(1, -(-MAX_LOST // self.step))  # kept frames
        self.roi: PersonROI | None = None  # the crop predicted for the next frame
        self.velocity = np.zeros(2)  # of the hip centre, pixels per frame
        self.shape: tuple[int, int] | None = None  # (height, width) of the images the crops are in
        self.lost_frames = 0
        self.most_found = 0  # the most people found in one frame (for "person N requested")
        self.torso: np.ndarray | None = None  # the followed person's running torso histogram
        self.frame_people: list[np.ndarray] = []  # this frame's detections' squares (pixels): not background
        self.after_cut = False  # searching after a cut: by the torso's colours first
        self.size: float | None = None  # the followed person's last crop side (pixels), None before one is found
        self.others: list[_Other] = []  # the other people in view, as of the last frame

    @property
    def searching(self) -> bool:
        """Whether this frame's person must be found by searching the image (nobody followed, or lost
        for :data:`MAX_LOST` frames), not in the crop predicted from the frame before."""
        return self.roi is None or self.lost_frames >= self.max_lost

    def may_be_tiny(self, side: float) -> bool:
        """Whether the person searched for may be smaller than a crop of ``side`` pixels: nobody
        found yet in the clip, or the person followed was (so the finest search runs for a wide
        shot's small person, not on every empty frame of a clip whose person was larger)."""
        return self.size is None or self.size < side

    def repick(self, person: int | None) -> None:
        """Pick by size again on the next frame (a frame that names its own ``person``)."""
        self.person = person or 0
        self.roi, self.torso = None, None
        self.velocity = np.zeros(2)
        self.after_cut = False

    def new_shot(self) -> None:
        """The next frame begins another shot (a cut: the person is elsewhere in the picture, seen by
        another camera): they are searched for again, and where the clip has shown several people,
        recognised by their torso's colours (:meth:`candidates`) rather than taken by size."""
        self.roi, self.velocity, self.lost_frames = None, np.zeros(2), 0
        self.after_cut = self.torso is not None

    def candidates(self, people: list[PersonROI], shape: tuple[int, int]) -> list[Pick]:
        """The crops to try for this frame, best first (the detector takes the first whose landmarks it
        finds and :meth:`accepts`).

        Args:
            people: this frame's detections, largest first (image pixels).
            shape: ``(height, width)`` of the image, pixels.
        Returns:
            ``[Pick]``: the detections near the predicted crop, nearest first (within
            :data:`MATCH_DISTANCE` and :data:`MATCH_SIZE`; in a clip that has only ever shown one
            person, within :data:`FAST_MOVE_DISTANCE`: a fast move), then the predicted crop itself
            for up to :data:`MAX_LOST` frames; else (and on the first frame) ``people[person]``.
        Raises:
            NoPersonError: nobody to estimate in this frame (nobody found and nothing predicted; or
                fewer people than ``person + 1`` where a person is picked by size).
        """
        self.most_found = max(self.most_found, len(people))
        self.frame_people = [p.square() for p in people]
        if self.shape is not None and tuple(shape) != self.shape:
            self.repick(self.person)  # another image size: the prediction is in other pixels
        self.shape = tuple(shape)
        if self.roi is not None:
            pred = self.roi
            reach = (FAST_MOVE_DISTANCE if self.most_found == 1 else MATCH_DISTANCE) * self.step
            near = sorted((float(np.linalg.norm(p.centre - pred.centre)), k) for k, p in enumerate(people)
                          if self._similar(p, pred, reach))
            picks = [Pick(people[k]) for _, k in near]
            if self.lost_frames < self.max_lost:
                picks.append(Pick(pred, predicted=True))
            if picks:
                return picks
        if not people:
            raise NoPersonError("image", "no person found in the image")
        if self.person >= len(people):
            raise NoPersonError("image", f"person {self.person} requested but {len(people)} found in this frame "
                                         "(0 = largest)")
        if self.after_cut and len(people) > 1 and self.most_found > 1:
            # after a cut: whoever has the followed person's torso colours, the one by size first; else
            # the one by size whatever their torso (another camera's light may change the colours)
            order = [self.person, *(k for k in range(len(people)) if k != self.person)]
            who = "the largest person" if self.person == 0 else f"person #{self.person} by size"
            return [Pick(people[k]) for k in order] + [Pick(people[self.person], any_torso=True, warning=(
                f"after the cut nobody has the colours of the person followed so far; {who} is estimated from this "
                "frame on: check that it is the same person"))]
        warning = None
        pick = people[self.person]
        if self.roi is not None:
            who = "the largest person" if self.person == 0 else f"person #{self.person} by size"
            rest = [p for p in people if not any(self._near_other(p.centre, o, np.inf) for o in self.others)]
            if self.others and rest and len(rest) < len(people):
                # not one of the others in view (someone alike who crossed in front goes on their way)
                pick, who = rest[0], "the largest person not seen as someone else"
            warning = (f"{REPICK_WARNING} for {self.lost_frames} frames; {who} is estimated from this frame on: "
                       "check that it is the same person")
            self.torso, self.velocity = None, np.zeros(2)
        return [Pick(pick, warning=warning)]

    @staticmethod
    def _similar(p: PersonROI, pred: PersonROI, distance: float) -> bool:
        """A detection within ``distance`` crop sides of the predicted crop and of a size within :data:`MATCH_SIZE`."""
        return (1 / MATCH_SIZE <= p.size / pred.size <= MATCH_SIZE
                and float(np.linalg.norm(p.centre - pred.centre)) <= distance * pred.size)

    def someone_else(self, hip: np.ndarray) -> bool:
        """Whether the person the landmark model found with hip centre ``hip`` (``[2]`` pixels) is
        another person of the clip rather than the followed one: within :data:`OTHER_MATCH` of a crop
        side of where one of the others was going (:attr:`others`, moved on by their velocity) and
        nearer there than to where the followed person was (the predicted crop). This tells apart
        people dressed alike when they cross (their torsos' colours cannot): the one in front is
        going the other way. A constant-velocity association of everyone in view, as a multi-object
        tracker's (Bewley et al. 2016, "Simple Online and Realtime Tracking": each track's predicted
        box against the detections)."""
        if self.roi is None or not self.others:
            return False
        hip = np.asarray(hip, np.float64)
        mine = float(np.linalg.norm(hip - self.roi.centre))
        return any(self._near_other(hip, o, mine) for o in self.others)

    @staticmethod
    def _near_other(hip: np.ndarray, other: _Other, mine: float) -> bool:
        """``hip`` is ``other``'s: within :data:`OTHER_MATCH` of their crop side of their prediction
        and not :data:`CROSSING_MARGIN` times nearer the followed person's (``mine``: its distance, pixels)."""
        theirs = float(np.linalg.norm(hip - other.predicted()))
        return theirs <= OTHER_MATCH * other.size and theirs < CROSSING_MARGIN * mine

    def _see_others(self, mine: np.ndarray | None) -> None:
        """Move the other people's tracks (:attr:`others`) on to this frame: each matched to the
        detection nearest its prediction (within :data:`OTHER_MATCH` of its crop side; all but the
        followed person's square ``mine``), its velocity from the move; unmatched, moved on by its
        velocity for up to :data:`MAX_LOST` frames. A detection matching none begins a track only
        where the followed person was found too (``mine`` given): one found while they are lost may
        be them."""
        dets = [((sq[:2] + sq[2:]) / 2.0, float(sq[2] - sq[0])) for sq in self.frame_people
                if mine is None or box_intersection(sq, mine)[0] <= 0.5 * min(sq[2] - sq[0], mine[2] - mine[0]) ** 2]
        free = list(range(len(dets)))
        kept = []
        for o in self.others:
            pred = o.predicted()
            near = min(free, key=lambda k: float(np.linalg.norm(dets[k][0] - pred)), default=None)
            if near is not None and float(np.linalg.norm(dets[near][0] - pred)) <= OTHER_MATCH * o.size:
                free.remove(near)
                c, size = dets[near]
                kept.append(_Other(c, (c - o.centre) / (o.missed + 1), size, 0))
            elif o.missed < self.max_lost:
                kept.append(_Other(o.centre, o.velocity, o.size, o.missed + 1))
        if mine is not None:
            kept += [_Other(dets[k][0], np.zeros(2), dets[k][1], 0) for k in free]
        self.others = kept

    def accepts(self, torso: np.ndarray | None) -> bool:
        """Whether the landmark model's person in this frame's crop is the followed one, by the torso's
        colours; checked only where the clip has shown several people (else always True)."""
        if torso is None or self.torso is None or self.most_found < 2:
            return True
        return torso_distance(torso, self.torso) <= MAX_TORSO_DISTANCE

    def found(self, aux_uv: np.ndarray, score: float, torso: np.ndarray | None = None) -> None:
        """The person was found: predict the next frame's crop from this frame's auxiliary landmarks.

        Args:
            aux_uv: ``[2, 2]`` auxiliary landmarks 33 and 34, pixels of the image given to :meth:`candidates`.
            score: the crop's score (kept on the predicted crop).
            torso: this frame's torso histogram (:func:`torso_histogram`), or None.
        """
        aux_uv = np.asarray(aux_uv, np.float64)
        if torso is not None:  # after a cut, the colours as the new camera sees them
            self.torso = torso if self.torso is None or self.after_cut else (1 - HIST_UPDATE) * self.torso + HIST_UPDATE * torso
        self.after_cut = False
        if not np.isfinite(aux_uv).all():
            self.roi, self.lost_frames = None, 0
            return
        centre, size, rot = alignment_roi(aux_uv[0], aux_uv[1], ROI_SCALE)
        self._see_others(np.concatenate([centre - size / 2, centre + size / 2]))
        if size < 4:
            self.roi, self.lost_frames = None, 0
            return
        self.size = float(size)
        if self.roi is not None and self.lost_frames == 0:
            self.velocity = centre - (self.roi.centre - self.velocity)  # from the last frame's found centre
        else:
            self.velocity = np.zeros(2)
        self.lost_frames = 0
        self.roi = self._crop(centre + self.velocity, size, rot, score)

    def lost(self) -> None:
        """Not found in this frame: the prediction moves on with the velocity for up to :data:`MAX_LOST` frames."""
        self._see_others(None)
        if self.roi is not None:
            self.lost_frames += 1
            self.roi = self._crop(self.roi.centre + self.velocity, self.roi.size, self.roi.rotation, self.roi.score)

    @staticmethod
    def _crop(centre, size: float, rotation: float, score: float) -> PersonROI:
        c = np.asarray(centre, np.float64)
        return PersonROI(float(score), np.concatenate([c - size / 2, c + size / 2]), np.stack([c] * 4), c, float(size),
                         float(rotation))
