"""2D keypoints and heatmaps from a photo: BlazePose (MediaPipe) run offline with TFLite.

Two stages, as in MediaPipe's pose pipeline (re-implemented here on numpy + OpenCV):

1. **Person detection** (``pose_detection.tflite``, SSD on a 224x224 letterboxed image, inputs
   in -1..1): 2254 fixed-size anchors (strides 8, 16, 32, 32, 32; 2 anchors per location), box
   and 4 keypoints decoded relative to the anchors, sigmoid scores (threshold 0.5), weighted
   non-maximum suppression (IoU 0.3). Detector keypoint 0 is the hip centre and keypoint 1 a
   point whose distance gives the body size and whose direction the body rotation, so the
   region of interest is a square of side ``2 * 1.25 * |k1 - k0|`` centred on the hips,
   rotated so that the body stands upright (MediaPipe ``pose_detection_to_roi``).
2. **Landmarks** (``pose_landmark_full.tflite`` on the 256x256 crop, inputs 0..1): 39
   landmarks ``(x, y, z, visibility, presence)`` in crop pixels (the first 33 are BlazePose's
   body landmarks), and 39 heatmaps of logits on a 64x64 grid (stride 4). As in MediaPipe,
   each landmark is then refined to the sigmoid-weighted mean of its heatmap over a 7x7-cell
   window around it (measured on the two labelled samples: limb error 6.9 -> 4.5 px and
   12.5 -> 10.3 px). A second pass on the ROI from the landmarks' own alignment points and a
   mirrored-image (flip) pass were measured too and did not reduce the error; they are not used.

A person too small for the detector's 224x224 view of the whole image is looked for in zoomed
tiles too (:meth:`PoseDetector.detect_people`); in a clip, the person picked on the first frame is
followed from frame to frame (:mod:`backend.vision.follow`).

The landmarks are mapped back to the original image and renamed to the model skeleton
(:mod:`backend.skeleton`); the heatmaps are turned into per-joint log-probabilities with an
affine map from image pixels to heatmap cells, which the guidance samples bilinearly.

Image pixel coordinates: (0, 0) is the top-left corner of the image (pixel centres at +0.5).
Heatmap coordinates: x = column, y = row, cell centres at integer coordinates; the centre of
cell (c, r) is crop pixel ``(4c, 4r)`` (continuous crop coordinates), the convention of
MediaPipe's ``RefineLandmarksFromHeatmapCalculator``. Measured on the sample photos, it puts the
heatmap peaks on the landmarks (mean offset within 0.35 cell); the "cell covers [4c, 4c+4)"
convention leaves a systematic half-cell offset.
"""

from __future__ import annotations

import hashlib
import math
import threading
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path

import cv2
import numpy as np

from backend.errors import InputError, NoPersonError
from backend.skeleton import JOINT_NAMES
from backend.vision.blazepose import (
    DET_NMS_IOU,
    DET_SCORE_THRESHOLD,
    DET_SIZE,
    HM_SIZE,
    HM_STRIDE,
    LM_SIZE,
    ROI_SCALE,
    PersonROI,
    alignment_roi,
    box_intersection,
    box_iou,
    crop_matrix,
    letterbox_matrix,
    refine_from_heatmaps,
    sigmoid,
    ssd_anchors,
    to_index_affine,
    weighted_nms,
)
from backend.vision.follow import torso_histogram

MODEL_DIR = Path(__file__).resolve().parents[1] / "models"

#: Expected sha256 of each shipped model file; a file that does not match is refused.
MODEL_SHA256: dict[str, str] = {
    "pose_detection.tflite": "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c",
    "pose_landmark_full.tflite": "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f",
    "pose_landmark_lite.tflite": "f17bfbecadb61c3be1baa8b8d851cc6619c870a87167b32848ad20db306b9d61",
}

#: Person box = landmark bounds padded by this fraction of their larger side (twice at the top).
BOX_PAD = 0.06
#: Sides of the tiles searched besides the whole image, as fractions of its longer side, the finer
#: only where nobody, or somebody smaller than them, is found (:meth:`PoseDetector.detect_people`). Measured on the sample photo's
#: person pasted into a 1920x1080 frame: the whole frame finds them from 500 px tall, tiles of 0.4
#: from 220 px, of 0.2 from 120 px, of 0.1 from 50 px (8, 45 and 190 detector runs of ~5 ms). The
#: finest only where nobody at all was found, and only where such a small person may be looked
#: for (:meth:`PoseDetector.detect_people`'s ``finest``).
TILE_FRACTIONS = (0.4, 0.2, 0.1)
#: Window of the second look at a person found in a tile, in units of its crop's side.
SECOND_LOOK = 1.6
#: A person the whole image shows with a crop under this fraction of its longer side gets a second
#: look too (the 224x224 view reads their crop coarsely: measured, a 300 px person in a 1080p frame
#: read as a 678 px crop, in which the landmark model found nobody).
SMALL_IN_VIEW = 0.5
#: Pose presence flag (``Identity_1``) below which a crop holds no person.
POSE_FLAG_THRESHOLD = 0.5

#: Model joint -> BlazePose landmark indices (the mean when several). ``neck`` is the Human3.6M
#: "Neck/Nose" joint at the base of the head; BlazePose's nose is the nearest landmark.
#: pelvis, spine, thorax and head are left to the prior (BlazePose's hip landmarks sit at
#: different heights than Human3.6M's, so their midpoint would be a biased pelvis).
LANDMARKS_OF: dict[str, tuple[int, ...]] = {
    "right_hip": (24,), "right_knee": (26,), "right_ankle": (28,),
    "left_hip": (23,), "left_knee": (25,), "left_ankle": (27,),
    "neck": (0,),
    "left_shoulder": (11,), "left_elbow": (13,), "left_wrist": (15,),
    "right_shoulder": (12,), "right_elbow": (14,), "right_wrist": (16,),
    "right_toe": (32,), "left_toe": (31,),
    "left_hand": (19, 17), "right_hand": (20, 18),
}
assert all(n in JOINT_NAMES for n in LANDMARKS_OF)

#: The 12 limb joints compared with hand labels.
LIMB_NAMES: tuple[str, ...] = (
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)


class ModelFileError(RuntimeError):
    """A shipped model file is missing or does not match its expected sha256."""


def check_model_file(path: Path) -> Path:
    """Verify a model file against :data:`MODEL_SHA256`.

    Raises:
        ModelFileError: missing file, unknown file name or sha256 mismatch (message says how to fix).
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file missing: {path}; reinstall PoseDiff (the weights ship in backend/models/)")
    want = MODEL_SHA256.get(path.name)
    if want is None:
        raise ModelFileError(f"unknown model file {path.name}; expected one of {', '.join(MODEL_SHA256)}")
    got = hashlib.sha256(path.read_bytes()).hexdigest()
    if got != want:
        raise ModelFileError(f"model file {path} is corrupt or not the shipped version (sha256 {got[:12]}..., "
                             f"expected {want[:12]}...); restore it from backend/models/ of the PoseDiff release")
    return path


@dataclass
class Detection2D:
    """2D evidence for one person in one image.

    Attributes:
        keypoints: model joint name -> ``(u, v, confidence)``, ORIGINAL image pixels,
            confidence 0..1 (landmark visibility x presence). Joints not in
            :data:`LANDMARKS_OF` (pelvis, spine, thorax, head) are absent.
        heatmaps: ``[K, 64, 64]`` float32 log-probabilities (log-softmax over the 64x64 cells
            of the model's logits; for joints made of two landmarks, the log of the mean of the
            two probability maps), one per name in ``heatmap_joints``.
        heatmap_joints: ``K`` model joint names.
        image_to_heatmap: ``[2, 3]`` affine: ``[x, y] = A @ [u, v, 1]`` maps an original-image
            pixel to heatmap coordinates (x = column, y = row, cell centres at integers).
        box: ``[x0, y0, x1, y1]`` person box, image pixels: the confident landmarks' bounds
            padded by :data:`BOX_PAD` (approximate: covers head top, hands and feet).
        image_size: ``(width, height)`` of the original image, pixels.
        score: detector score 0..1 times the landmark model's pose-presence flag.
        roi: the crop the landmark model saw (centre, size in image pixels, rotation in radians).
        warnings: notes for the frame (a followed person lost and picked again).
    """

    keypoints: dict[str, tuple[float, float, float]]
    heatmaps: np.ndarray
    heatmap_joints: list[str]
    image_to_heatmap: np.ndarray
    box: np.ndarray
    image_size: tuple[int, int]
    score: float
    roi: PersonROI | None = dc_field(default=None, repr=False)
    warnings: list[str] = dc_field(default_factory=list)

    def heatmap_to_image(self) -> np.ndarray:
        """``[2, 3]`` affine inverse of :attr:`image_to_heatmap` (heatmap cell -> image pixels)."""
        return cv2.invertAffineTransform(np.asarray(self.image_to_heatmap, np.float64))

    def heatmap_peaks(self) -> dict[str, tuple[float, float]]:
        """Peak of each heatmap in original-image pixels: name -> ``(u, v)``.

        The peak is the argmax cell refined by the probability-weighted mean over its 3x3
        neighbourhood (sub-cell accuracy), mapped back with :meth:`heatmap_to_image`.
        """
        inv = self.heatmap_to_image()
        out = {}
        for name, lh in zip(self.heatmap_joints, self.heatmaps):
            r, c = np.unravel_index(int(np.argmax(lh)), lh.shape)
            r0, r1, c0, c1 = max(r - 1, 0), min(r + 2, lh.shape[0]), max(c - 1, 0), min(c + 2, lh.shape[1])
            p = np.exp(lh[r0:r1, c0:c1] - lh[r, c])
            rr, cc = np.mgrid[r0:r1, c0:c1]
            x, y = float((p * cc).sum() / p.sum()), float((p * rr).sum() / p.sum())
            u, v = inv @ np.array([x, y, 1.0])
            out[name] = (float(u), float(v))
        return out


class PoseDetector:
    """BlazePose person + landmark detector on TFLite (CPU, loaded once; calls are serialised by a lock).

    Args:
        model_dir: folder with the ``.tflite`` files (default: ``backend/models``).
        variant: ``"full"`` (default, more accurate) or ``"lite"`` landmark model.
        num_threads: TFLite interpreter threads.
    Raises:
        ModelFileError: a model file is missing or fails its sha256 check.
        ValueError: unknown ``variant``.
    """

    def __init__(self, model_dir: str | Path | None = None, variant: str = "full", num_threads: int = 2):
        from ai_edge_litert.interpreter import Interpreter

        if variant not in ("full", "lite"):
            raise ValueError(f"variant must be 'full' or 'lite', got {variant!r}")
        d = Path(model_dir) if model_dir is not None else MODEL_DIR
        det_path = check_model_file(d / "pose_detection.tflite")
        lm_path = check_model_file(d / f"pose_landmark_{variant}.tflite")
        self.variant = variant
        self._det = Interpreter(model_path=str(det_path), num_threads=num_threads)
        self._det.allocate_tensors()
        self._lm = Interpreter(model_path=str(lm_path), num_threads=num_threads)
        self._lm.allocate_tensors()
        self._det_in = self._det.get_input_details()[0]["index"]
        self._det_boxes, self._det_scores = self._find_outputs(self._det, {"boxes": (1, 2254, 12), "scores": (1, 2254, 1)}).values()
        self._lm_in = self._lm.get_input_details()[0]["index"]
        outs = self._find_outputs(self._lm, {"landmarks": (1, 195), "flag": (1, 1), "heatmaps": (1, HM_SIZE, HM_SIZE, 39)})
        self._lm_landmarks, self._lm_flag, self._lm_heatmaps = outs["landmarks"], outs["flag"], outs["heatmaps"]
        self._anchors = ssd_anchors()
        self._lock = threading.Lock()  # TFLite interpreters must not be invoked concurrently
        self.heatmap_joints: list[str] = list(LANDMARKS_OF)

    @staticmethod
    def _find_outputs(interp, want: dict[str, tuple]) -> dict[str, int]:
        """Output tensor indices by shape (names differ between exports; shapes do not)."""
        found = {}
        details = interp.get_output_details()
        for key, shape in want.items():
            match = [d["index"] for d in details if tuple(d["shape"]) == shape]
            if len(match) != 1:
                raise ModelFileError(f"model has no unique output of shape {shape} ({key}); wrong model file?")
            found[key] = match[0]
        return found

    # ------------------------------------------------------------------ stage 1: persons

    def detect_people(self, rgb: np.ndarray, tiles: bool = True, finest: bool = True) -> list[PersonROI]:
        """All persons found in an image, largest ROI first.

        The detector sees the whole image letterboxed to 224x224, where a person under about a
        quarter of the image's longer side is too small to be found (a full-body shot from 5 m
        in a landscape 1080p frame, or a second person farther away than the first). So it also
        looks in overlapping square tiles of ``TILE_FRACTIONS[0]`` of the longer side (half a
        tile apart), each zoomed to 224x224, and, where nobody or only somebody small is found,
        in the finer tiles of ``TILE_FRACTIONS[1]``, and where nobody at all is found, of
        ``TILE_FRACTIONS[2]`` (a person 50-120 px tall in 1080p: a wide shot; ~0.8 s more). A person the whole image shows is taken from there (with a
        second look where they are small in it, :data:`SMALL_IN_VIEW`); one found only in the tiles
        gets a second look in a window around it (a tile may cut them),
        and is kept if it is not mostly inside someone already found (a part of them) and the
        landmark model finds a person in its crop.

        Args:
            rgb: ``[H, W, 3]`` uint8 RGB image.
            tiles: look in the tiles too (off: a clip's frame whose person is followed from the
                frame before, :mod:`backend.vision.follow`).
            finest: the finest tiles too where nobody is found (off: a clip whose person, found
                before, was larger than them, so empty frames cost no more).
        Returns:
            list of :class:`PersonROI` (image pixels), sorted by ROI area, largest first.
        """
        h, w = rgb.shape[:2]
        found = self._detect_in(rgb, 0, 0, w, h)
        people = self._people(*found) if found is not None else []
        if tiles:  # a person small in the whole image's coarse view: their crop read again, closer
            people = [self._second_look(rgb, p) if p.size < SMALL_IN_VIEW * max(w, h) else p for p in people]
        for level, fraction in enumerate(TILE_FRACTIONS if tiles else ()):
            if level > 0 and people and min(p.size for p in people) >= fraction * max(w, h):
                break  # the finer tiles only where nobody, or somebody small (a crowd far away), was found
            if level > 1 and (people or not finest):
                break  # the finest only where nobody at all was found (someone 50-120 px tall)
            side = max(16, round(max(w, h) * fraction))
            xs = sorted({min(x, max(w - side, 0)) for x in range(0, max(w - side, 0) + side // 2, side // 2)})
            ys = sorted({min(y, max(h - side, 0)) for y in range(0, max(h - side, 0) + side // 2, side // 2)})
            if len(xs) * len(ys) <= 1:
                continue
            parts = [p for p in (self._detect_in(rgb, x, y, side, side) for y in ys for x in xs) if p is not None]
            if not parts:
                continue
            for p in self._people(*(np.concatenate([q[k] for q in parts]) for k in range(3))):
                if self._overlaps(p, people):
                    continue
                p = self._second_look(rgb, p)
                # a part of someone already found, or no person for the landmark model: not a person
                if not self._overlaps(p, people) and self.landmarks(rgb, p)[1] >= POSE_FLAG_THRESHOLD:
                    people.append(p)
        people.sort(key=lambda p: -p.size)
        return people

    @staticmethod
    def _overlaps(person: PersonROI, people: list[PersonROI]) -> bool:
        """Whether ``person``'s crop is mostly inside one of ``people``'s or holds one mostly (their squares'
        intersection above half the smaller one): the same person, or a part of them."""
        if not people:
            return False
        inter = box_intersection(person.square(), np.stack([q.square() for q in people]))
        return bool((inter > 0.5 * np.minimum(person.size, [q.size for q in people]) ** 2).any())

    @staticmethod
    def _people(score, boxes, kps) -> list[PersonROI]:
        """Raw detections (image pixels) -> merged persons (weighted NMS), largest first."""
        people = []
        for sc, bx, kp in weighted_nms(score, boxes, kps, DET_NMS_IOU):
            centre, size, rot = alignment_roi(kp[0], kp[1], ROI_SCALE)
            if size < 4:
                continue
            people.append(PersonROI(float(sc), bx, kp, centre, size, rot))
        people.sort(key=lambda p: -p.size)
        return people

    def _second_look(self, rgb: np.ndarray, person: PersonROI, looks: int = 2) -> PersonROI:
        """The detection that overlaps ``person`` most in a square window around it of :data:`SECOND_LOOK`
        times its crop (at most a tile of ``TILE_FRACTIONS[0]``: a crop read too large from a coarse view
        is looked at closely), repeated ``looks`` times while the crop changes; ``person`` itself where a
        window finds nothing."""
        h, w = rgb.shape[:2]
        for _ in range(looks):
            side = int(min(max(w, h) * TILE_FRACTIONS[0], max(16.0, SECOND_LOOK * person.size)))
            x0 = int(np.clip(person.centre[0] - side / 2, 0, max(w - side, 0)))
            y0 = int(np.clip(person.centre[1] - side / 2, 0, max(h - side, 0)))
            found = self._detect_in(rgb, x0, y0, side, side)
            near = self._people(*found) if found is not None else []
            if not near:
                return person
            iou = box_iou(person.square(), np.stack([p.square() for p in near]))
            if iou.max() <= 0:
                return person
            best = near[int(np.argmax(iou))]
            if abs(best.size - person.size) < 0.05 * person.size:
                return best
            person = best
        return person

    def _detect_in(self, rgb: np.ndarray, x0: int, y0: int, tw: int, th: int):
        """The detector's raw detections in the ``tw`` x ``th`` window at ``(x0, y0)`` (pixels) of ``rgb``,
        letterboxed to 224x224: ``(scores [N], boxes [N, 4], keypoints [N, 4, 2])`` in image pixels, or None."""
        window = rgb[y0 : y0 + th, x0 : x0 + tw]  # a view: only the window is shrunk, not the whole image
        M, s, ox, oy = letterbox_matrix(window.shape[1], window.shape[0], DET_SIZE)
        small = self._resample(window, M, DET_SIZE, border=0)
        x = small.astype(np.float32) * (2.0 / 255.0) - 1.0
        self._det.set_tensor(self._det_in, x[None])
        self._det.invoke()
        raw = self._det.get_tensor(self._det_boxes)[0]
        score = sigmoid(np.clip(self._det.get_tensor(self._det_scores)[0, :, 0], -100, 100))
        keep = score >= DET_SCORE_THRESHOLD
        if not keep.any():
            return None
        raw, score, anc = raw[keep], score[keep], self._anchors[keep]
        # decode (reverse_output_order: x, y, w, h), normalised letterbox coordinates
        cxy = raw[:, 0:2] / DET_SIZE + anc
        wh = raw[:, 2:4] / DET_SIZE
        boxes = np.concatenate([cxy - wh / 2, cxy + wh / 2], 1)
        kps = raw[:, 4:12].reshape(-1, 4, 2) / DET_SIZE + anc[:, None]
        # letterbox -> image pixels
        to_img = lambda p: (p * DET_SIZE - np.array([ox, oy])) / s + np.array([x0, y0])  # noqa: E731
        boxes = np.concatenate([to_img(boxes[:, :2]), to_img(boxes[:, 2:])], 1)
        return score, boxes, to_img(kps)

    @staticmethod
    def _resample(rgb: np.ndarray, M: np.ndarray, out: int, border: int = 0) -> np.ndarray:
        """Warp ``rgb`` by image->output affine ``M`` (continuous coordinates) to ``out`` x ``out``.

        Large reductions first shrink the image with area averaging (no aliasing).
        """
        scale = math.sqrt(abs(np.linalg.det(M[:, :2])))
        src = rgb
        if scale < 0.5:
            f = min(1.0, 2.0 * scale)
            h, w = rgb.shape[:2]
            nw, nh = max(1, round(w * f)), max(1, round(h * f))
            src = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA)
            S = np.diag([w / nw, h / nh])  # shrunk -> original (continuous coordinates)
            M = np.concatenate([M[:, :2] @ S, M[:, 2:]], 1)
        return cv2.warpAffine(src, to_index_affine(M), (out, out), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=(border, border, border))

    # ------------------------------------------------------------------ stage 2: landmarks

    def landmarks(self, rgb: np.ndarray, roi: PersonROI) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
        """Run the landmark model on a person's rotated crop.

        Returns:
            ``(lm [39, 5], pose_flag, heatmap_logits [39, 64, 64], crop_to_image [2, 3])`` where
            ``lm`` rows are ``(x, y, z, visibility logit, presence logit)`` with x, y in crop
            pixels (0..256, continuous) and ``crop_to_image`` maps crop pixels to image pixels.
        """
        C = crop_matrix(roi.centre, roi.size, roi.rotation, LM_SIZE)
        M = cv2.invertAffineTransform(C)
        crop = self._resample(rgb, M, LM_SIZE, border=0)
        self._lm.set_tensor(self._lm_in, (crop.astype(np.float32) * (1.0 / 255.0))[None])
        self._lm.invoke()
        lm = self._lm.get_tensor(self._lm_landmarks)[0].reshape(39, 5).copy()
        flag = float(self._lm.get_tensor(self._lm_flag).ravel()[0])
        hm = np.transpose(self._lm.get_tensor(self._lm_heatmaps)[0], (2, 0, 1)).copy()
        lm[:33, :2] = refine_from_heatmaps(lm[:33, :2], hm[:33])
        return lm, flag, hm, C

    def detect(self, rgb, person: int | None = None, field: str = "image", scale: float | None = None,
               follow=None) -> Detection2D:
        """2D keypoints and heatmaps of one person.

        Args:
            rgb: ``[H, W, 3]`` uint8 RGB image, or a :class:`backend.photo.Photo` (then results
                are in the pixels of its ``original_size``, even when ``rgb`` was downscaled).
            person: which person, by ROI size (0 = largest, the default).
            field: request field named in errors.
            scale: ``rgb`` size / original image size, when ``rgb`` is a downscaled array
                (default 1; overrides a Photo's own size ratio).
            follow: a :class:`backend.vision.follow.PersonFollower` for consecutive frames of one
                clip: the person it follows is estimated (``person``, if given, picks anew by size
                first); None (a photo): ``person`` by size.
        Returns:
            :class:`Detection2D` in ORIGINAL image pixels; ``warnings`` says when ``follow`` lost
            its person and picked one by size again.
        Raises:
            NoPersonError: nobody found (or the landmark model rejects the crop); with ``follow``,
                also fewer people than ``person + 1`` in a frame before one is picked.
            InputError: ``person`` out of range (without ``follow``), or ``rgb`` not an ``[H, W, 3]`` image.
        """
        original_size = None
        if hasattr(rgb, "rgb") and hasattr(rgb, "original_size"):  # a backend.photo.Photo
            original_size = tuple(rgb.original_size) if scale is None else None
            rgb = rgb.rgb
        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or min(rgb.shape[:2]) < 2:
            raise InputError(field, f"expected an RGB uint8 image [H, W, 3], got {rgb.dtype} {rgb.shape}")
        h, w = rgb.shape[:2]
        if original_size is None:
            s = 1.0 if scale is None else float(scale)
            original_size = (max(1, round(w / s)), max(1, round(h / s)))
        W0, H0 = int(original_size[0]), int(original_size[1])
        warnings: list[str] = []
        with self._lock:
            tiles = follow is None or person is not None or follow.searching
            finest = follow is None or follow.may_be_tiny(TILE_FRACTIONS[2] * max(w, h))
            people = self.detect_people(rgb, tiles=tiles, finest=finest)
            if follow is not None:
                if person is not None:
                    follow.repick(person)
                found = self._followed(rgb, people, person, follow, field)
                if isinstance(found, str) and not tiles:  # not near the prediction: a closer look at the frame
                    found = self._followed(rgb, self.detect_people(rgb, tiles=True, finest=finest), person, follow, field)
                if isinstance(found, str):
                    follow.lost()
                    raise NoPersonError(field, found)
                roi, (lm, flag, hm_logits, C), warnings = found
            else:
                roi = people[person or 0] if people and (person is None or 0 <= person < len(people)) else None
                if roi is not None:
                    lm, flag, hm_logits, C = self.landmarks(rgb, roi)
        if follow is None:
            if not people:
                raise NoPersonError(field, "no person found in the image; use a photo where one whole person is "
                                    "clearly visible, or give 2D keypoints instead")
            if person is not None and not 0 <= person < len(people):
                raise _wrong_person(field, person, len(people))
            if flag < POSE_FLAG_THRESHOLD:
                raise NoPersonError(field, f"no person found in the image (pose presence {flag:.2f}); use a photo where "
                                    "one whole person is clearly visible, or give 2D keypoints instead")
        return self._detection(lm, flag, hm_logits, C, roi, w, h, W0, H0, warnings)

    def _followed(self, rgb, people, person, follow, field):
        """The landmarks of the person ``follow`` (a :class:`backend.vision.follow.PersonFollower`)
        follows among ``people``: ``(roi, landmarks(...), warnings)`` (``follow`` updated), or a message
        saying why not (``follow`` not told: the caller may look again, then calls ``follow.lost()``).

        Raises:
            InputError: a frame naming its own ``person`` that it does not have.
        """
        try:
            picks = follow.candidates(people, rgb.shape[:2])
        except NoPersonError as e:
            if person is not None and people:  # a frame naming its own person: as a photo, the index is wrong
                raise _wrong_person(field, person, len(people)) from None
            return e.message
        why = "not found"
        for pick in picks:  # the nearest first; the first whose landmarks are the followed person's
            out = self.landmarks(rgb, pick.roi)
            lm, flag, _, C = out
            if flag < POSE_FLAG_THRESHOLD:
                why = f"not found in this frame (pose presence {flag:.2f})"
                continue
            uv = lm[:, :2] @ C[:, :2].T + C[:, 2]
            torso = torso_histogram(rgb, uv[[11, 12, 24, 23]])  # shoulders, hips (BlazePose landmarks)
            if not pick.any_torso and (not follow.accepts(torso) or follow.someone_else(uv[33])):
                why = "hidden in this frame (someone else is where they were expected)"
                continue
            follow.found(uv[33:35], pick.roi.score, torso)
            return pick.roi, out, [pick.warning] if pick.warning else []
        who = "the person followed through the clip is" if picks[0].predicted or len(picks) > 1 or follow.torso is not None \
            else "no person"
        return f"{who} {why}"

    def _detection(self, lm, flag, hm_logits, C, roi, w, h, W0, H0, warnings) -> Detection2D:
        """The :class:`Detection2D` of one landmark pass (``C``: crop -> ``w`` x ``h`` pixels) in the
        original ``W0`` x ``H0`` image's pixels."""
        S = np.diag([W0 / w, H0 / h, 1.0])  # rgb -> original pixels
        C_orig = (S @ np.vstack([C, [0, 0, 1]]))[:2]
        uv = lm[:, :2] @ C_orig[:, :2].T + C_orig[:, 2]
        conf = sigmoid(lm[:, 3]) * sigmoid(lm[:, 4])
        keypoints = {}
        for name, idx in LANDMARKS_OF.items():
            p = uv[list(idx)].mean(0)
            keypoints[name] = (float(p[0]), float(p[1]), float(np.mean(conf[list(idx)])))
        # heatmaps: log-softmax over the 64x64 cells of each landmark's logits
        flat = hm_logits[:33].reshape(33, -1).astype(np.float64)
        logp = flat - flat.max(1, keepdims=True)
        logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
        maps = []
        for name in self.heatmap_joints:
            idx = list(LANDMARKS_OF[name])
            if len(idx) == 1:
                maps.append(logp[idx[0]])
            else:
                m = logp[idx].max(0)
                maps.append(m + np.log(np.exp(logp[idx] - m).mean(0)))
        heatmaps = np.stack(maps).reshape(len(maps), HM_SIZE, HM_SIZE).astype(np.float32)
        # original image -> crop pixels -> heatmap cells (cell centre c <-> crop pixel 4c, see module doc)
        image_to_heatmap = cv2.invertAffineTransform(C_orig) / HM_STRIDE
        body = uv[:33]
        seen = conf[:33] > 0.3
        pts = body[seen] if seen.sum() >= 2 else body
        box = np.array([pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()])
        # landmarks stop at the eyes, wrists and toes: pad to cover the head top, hands and feet
        pad = BOX_PAD * max(box[2] - box[0], box[3] - box[1])
        box = box + np.array([-pad, -2 * pad, pad, pad])
        box = np.clip(box, 0, [W0, H0, W0, H0])
        return Detection2D(keypoints=keypoints, heatmaps=heatmaps, heatmap_joints=list(self.heatmap_joints),
                           image_to_heatmap=image_to_heatmap.astype(np.float64), box=box, image_size=(int(W0), int(H0)),
                           score=float(roi.score * flag), roi=roi, warnings=list(warnings))


def _wrong_person(field: str, person: int, found: int) -> InputError:
    """The error for a ``person`` index an image does not have, on the request's ``person`` field
    (``frames[3].image`` -> ``frames[3].person``)."""
    pfield = field[: -len("image")] + "person" if field.endswith("image") else f"{field}.person"
    return InputError(pfield, f"person {person} requested but {found} found (0 = largest)")


def limb_error_against_truth(detection: Detection2D, truth_row: dict) -> float:
    """Mean 2D error (pixels) over the 12 limb joints against a hand-labelled COCO-17 row.

    Args:
        detection: a :class:`Detection2D` (original image pixels).
        truth_row: a row of ``samples/pose_landmark_truth.csv`` (``csv.DictReader``): columns
            ``{joint}_x``, ``{joint}_y`` in pixels for COCO names, which for limbs equal the model names.
    Returns:
        mean Euclidean distance in pixels over the limb joints the detection has.
    Raises:
        KeyError: the row lacks a limb joint column.
        ValueError: the detection has none of the limb joints.
    """
    errs = []
    for name in LIMB_NAMES:
        tx, ty = float(truth_row[f"{name}_x"]), float(truth_row[f"{name}_y"])
        if name in detection.keypoints:
            u, v = detection.keypoints[name][:2]
            errs.append(math.hypot(u - tx, v - ty))
    if not errs:
        raise ValueError("detection has none of the 12 limb joints")
    return float(np.mean(errs))
