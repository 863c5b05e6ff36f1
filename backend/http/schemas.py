"""Request and response models (pydantic) for the CLI and the HTTP server.

Shapes follow ``shared/design/CONTRACT.md``; fields beyond the contract are extensions and
optional. This is the one validation layer: everything that can be checked without running the
model is checked here (ranges, finiteness, joint names, an orthonormal camera rotation), and every
response model refuses NaN and infinity. Errors name the field with
:func:`backend.errors.field_path` (``frames[0].camera.fx``), so the CLI (exit 2), the server (422)
and the add-on report it the same way. Frames and units:

* camera frame: OpenCV pinhole, x right, y down, z forward, metres; intrinsics in pixels.
* world frame: right-handed, Z up, metres (Blender's frame).
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Literal

import numpy as np
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from backend.errors import field_path
from backend.skeleton import JOINT_NAMES, NUM_JOINTS
from backend.vision.mirror import MIRRORED_DOC

#: Upper bounds that keep one request's cost bounded (422 above them).
MAX_FRAMES = 64
MAX_HYPOTHESES = 200
MAX_GENERATE = 1024
MAX_STEPS = 1000
MAX_IMAGE_FIELD = 48 * 1024 * 1024  # characters of a base64 image or a path
#: Largest magnitude of a number in a track request's ``frames`` (metres, pixels, scores; a response's are far below)
MAX_TRACK_VALUE = 1e6

Finite = Annotated[float, Field(allow_inf_nan=False)]
Coord = Annotated[float, Field(allow_inf_nan=False, ge=-1e4, le=1e4, description="metres")]
PixelCoord = Annotated[float, Field(allow_inf_nan=False, ge=-1e6, le=1e6, description="pixels (or confidence)")]
Vec3 = Annotated[list[Coord], Field(min_length=3, max_length=3)]
Keypoint = Annotated[list[PixelCoord], Field(min_length=2, max_length=3, description="[u, v] or [u, v, confidence] in pixels")]


def _check_joint_names(value: dict | None) -> dict | None:
    if value is None:
        return value
    unknown = [k for k in value if k not in JOINT_NAMES]
    if unknown:
        raise ValueError(f"unknown joint name(s) {unknown}; valid names: {', '.join(JOINT_NAMES)}")
    return value


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


#: A 3x3 matrix (rows) of entries in [-1, 1]: checked to be a rotation by :func:`check_rotation`.
Matrix3 = Annotated[list[Annotated[list[Annotated[float, Field(allow_inf_nan=False, ge=-1.001, le=1.001)]],
                                   Field(min_length=3, max_length=3)]], Field(min_length=3, max_length=3)]


def check_rotation(R):
    """A rotation: ``R R^T = I`` and ``det R = 1`` within 1e-3 (no scale, shear or mirror); None passes."""
    if R is None:
        return R
    for i in range(3):
        for j in range(3):
            if abs(sum(R[i][k] * R[j][k] for k in range(3)) - (1.0 if i == j else 0.0)) > 1e-3:
                raise ValueError("not a rotation matrix (orthonormal, determinant 1): rows must be unit length "
                                 "and perpendicular")
    det = (R[0][0] * (R[1][1] * R[2][2] - R[1][2] * R[2][1]) - R[0][1] * (R[1][0] * R[2][2] - R[1][2] * R[2][0])
           + R[0][2] * (R[1][0] * R[2][1] - R[1][1] * R[2][0]))
    if abs(det - 1.0) > 1e-3:
        raise ValueError("not a rotation matrix (orthonormal, determinant 1): this one is a mirror (determinant -1)")
    return R


#: The 35 mm-equivalent focal lengths a request may give (``Camera.focal_35mm``), mm.
FOCAL_35MM_RANGE = (4.0, 2000.0)


class Camera(Strict):
    """Pinhole intrinsics in pixels. Missing focal lengths come from ``focal_35mm``, the photo's EXIF or the
    video's metadata, else the default field of view (40 mm equivalent; footage 28 mm)."""

    fx: Finite | None = Field(None, ge=1.0, le=1e6, description="focal length x, pixels")
    fy: Finite | None = Field(None, ge=1.0, le=1e6, description="focal length y, pixels")
    cx: Finite | None = Field(None, ge=-1e6, le=1e6, description="principal point x, pixels")
    cy: Finite | None = Field(None, ge=-1e6, le=1e6, description="principal point y, pixels")
    width: int | None = Field(None, gt=0, le=100_000, description="image width, pixels")
    height: int | None = Field(None, gt=0, le=100_000, description="image height, pixels")
    focal_35mm: Finite | None = Field(
        None, ge=FOCAL_35MM_RANGE[0], le=FOCAL_35MM_RANGE[1],
        description="35 mm-equivalent focal length, mm (the lens as a phone's settings or a lens barrel state it), used "
        "where fx / fy are not given, before the photo's EXIF or the video's metadata (which are used before the default: "
        "40 mm for a photo, 28 mm for footage): for footage and pictures whose file does not say its lens")
    rotation: Matrix3 | None = Field(
        None,
        description="optional world-to-camera rotation (3x3, rows) when the camera orientation "
        "is known (e.g. from a Blender camera); else pitch and roll are estimated",
    )

    _orthonormal = field_validator("rotation")(check_rotation)


class EstimateFrame(Strict):
    """One frame of 2D evidence: keypoints (pixels) or an image, optionally known 3D joints."""

    keypoints: dict[str, Keypoint] | None = None
    image: str | None = Field(None, max_length=MAX_IMAGE_FIELD, description="file path or base64 PNG/JPEG")
    camera: Camera | None = None
    person: int | None = Field(None, ge=0, le=64, description="which detected person (0 = largest); in a sequence, "
                               "frames without one follow the person of the frame before")
    known: dict[str, Vec3] | None = Field(None, description="known joints, world frame, metres (combined evidence)")
    mirrored: bool = Field(False, description=MIRRORED_DOC)

    _names = field_validator("keypoints", "known")(_check_joint_names)

    @model_validator(mode="after")
    def _one_source(self):
        if self.keypoints is None and self.image is None:
            raise ValueError("a frame needs 'keypoints' or 'image'")
        if self.keypoints is not None and self.image is not None:
            raise ValueError("give either 'keypoints' or 'image', not both")
        for name, kp in (self.keypoints or {}).items():
            if len(kp) == 3 and not 0.0 <= kp[2] <= 1.0:
                raise ValueError(f"keypoints.{name}: confidence must be in 0..1")
        return self


class SamplingOptions(Strict):
    num_hypotheses: int = Field(20, ge=1, le=MAX_HYPOTHESES)
    seed: int | None = Field(0, ge=0, le=2**63 - 1)
    steps: int | None = Field(None, ge=1, le=MAX_STEPS, description="DDIM steps (default from the model)")
    guidance_scale: Finite | None = Field(None, ge=0, le=1000)
    previews: bool = Field(False, description="add PNG previews (base64) to the response")


class SequenceOptions(Strict):
    """The frames are consecutive frames of one camera, in order (CONTRACT.md "Sequences")."""

    fps: Finite | None = Field(None, gt=0, le=1000, description="frames per second of the sequence (required for "
                               "'frames'; a video's own rate when left out)")
    fixed: dict[Annotated[int, Field(ge=0)], Annotated[int, Field(ge=0, le=MAX_HYPOTHESES)]] | None = Field(
        None, description="per-frame override: {frame index: hypothesis index} the track must pass through")
    camera_motion: list[Matrix3] | None = Field(
        None, max_length=100_000,
        description="per frame, the rotation of a camera turning about its centre (handheld shake, a pan) from the "
        "first frame's camera frame to this frame's (3x3 rows: x_t = M_t x_0; orientations given in another reference are "
        "taken relative to the first), e.g. from a "
        "gyroscope or a camera solve; one per frame of the sequence")

    camera_zoom: list[Annotated[float, Field(gt=0.01, le=100)]] | None = Field(
        None, max_length=100_000,
        description="per frame, the focal length relative to the first frame's (a lens that zooms during the clip, "
        "from a camera solve or the phone's metadata); one per frame of the sequence. Without it, images and videos "
        "have the zoom estimated from the background (see estimate_camera_motion); keypoint frames take the first "
        "frame's camera for all")
    estimate_camera_motion: bool = Field(
        True, description="images and videos without 'camera_motion': estimate the camera's turn from the frames' "
        "background (a handheld phone's sway, a pan), and its zoom; reported in the response's sequence.camera_motion "
        "(null when the camera did not turn) and camera_zoom; with moving_camera, only when given true (a travelling camera's background "
        "parallax reads as a turn)")

    moving_camera: bool = Field(
        False, description="the camera travels with the person (a tracking shot: carried alongside someone walking, a "
        "dolly, a car): its path is recovered from the person's supporting foot, which does not slide, and reported "
        "in the response's sequence.camera_translation; the track's world_root then moves as the person did. Off: "
        "the camera stays in one place (it may turn), as a tripod or a phone held still")

    cuts: list[Annotated[int, Field(ge=1)]] | None = Field(
        None, max_length=10_000,
        description="frames where a new shot begins (an edited clip: the picture changes to another camera); each "
        "shot gets its own camera tilt and 2D filtering, the track is not smoothed across a cut, and the shots' "
        "cameras are placed so that the person's motion continues (reported per frame in the response's "
        "sequence.camera_motion and camera_translation). Given, they replace the cuts detected in images and videos")
    detect_cuts: bool = Field(
        True, description="images and videos without 'cuts' or 'camera_motion': find the shot cuts of an edited clip "
        "from the frames' content (listed in the response's sequence.cuts)")
    times: list[Finite] | None = Field(
        None, max_length=100_000,
        description="each frame's time in seconds, increasing (frames of a variable frame rate: a phone in low "
        "light, a screen recording); the track takes their spacing where it is uneven. Videos take the file's "
        "timestamps themselves (sequence.source_times in the response)")

    @field_validator("cuts")
    @classmethod
    def _cuts(cls, cuts):
        return None if cuts is None else sorted(set(cuts))

    @field_validator("camera_motion")
    @classmethod
    def _rotations(cls, ms):
        for t, m in enumerate(ms or []):
            try:
                check_rotation(m)
            except ValueError as e:
                raise ValueError(f"frame {t}: {e}") from None
        return ms


_FRAME_TIME = re.compile(r"^\s*\d+(\.\d+)?\s*s?\s*$")


def _check_frame_time(value: str) -> str:
    if not _FRAME_TIME.match(value):
        raise PydanticCustomError(
            "frame_time", "'{value}' is neither a frame index nor a time: give a frame number ('120', counted from 0) "
            "or seconds ('4.8s'); no minutes ('1:30' -> '90s'), no negative values", {"value": value})
    return value


FrameTime = Annotated[str, Field(max_length=32, description="a frame index ('12') or a time in seconds ('0.5s')",
                                 json_schema_extra={"pattern": _FRAME_TIME.pattern}),
                      AfterValidator(_check_frame_time)]


class VideoSource(Strict):
    """A video or image sequence read frame by frame (streamed): ``path``, a local video file or image
    folder/glob on the machine of the backend (the request size limit does not apply to its frames),
    or ``data``, the bytes of a video file in base64 (an upload: the request size limit applies)."""

    path: str | None = Field(None, min_length=1, max_length=4096, description="video file, image folder, or glob of images")
    data: str | None = Field(None, min_length=1, description="instead of 'path': a video file's bytes, base64")
    every: int = Field(1, ge=1, le=10_000, description="keep every N-th frame")
    start: FrameTime | None = Field(None, description="first frame (index or seconds)")
    end: FrameTime | None = Field(None, description="last frame, exclusive (index or seconds)")
    camera: Camera | None = None
    person: int | None = Field(None, ge=0, le=64, description="which detected person on the first frame where anybody "
                               "is found (0 = largest), then followed from frame to frame")
    mirrored: bool = Field(False, description="the video or image sequence is a mirror image (a webcam's or a front "
                           "camera's recording as previewed, filmed in a mirror): " + MIRRORED_DOC.split(": ", 1)[1])

    @model_validator(mode="after")
    def _path_or_data(self):
        if (self.path is None) == (self.data is None):
            raise ValueError("give either 'path' (a video or image folder on the backend's machine) or 'data' "
                             "(the video file's bytes, base64)")
        return self


class EstimateRequest(SamplingOptions):
    frames: list[EstimateFrame] | None = Field(None, min_length=1, max_length=MAX_FRAMES)
    sequence: SequenceOptions | None = Field(None, description="frames are consecutive video frames: adds a 'track'")
    video: VideoSource | None = Field(None, description="instead of 'frames': a local video or image sequence")

    @model_validator(mode="after")
    def _frames_or_video(self):
        if self.frames is None and self.video is None:
            raise ValueError("give 'frames' (keypoints or images) or 'video' (a local video or image folder)")
        if self.frames is not None and self.video is not None:
            raise ValueError("give either 'frames' or 'video', not both")
        return self


def _check_something_known(missing: str, known, directions, keypoints=None) -> None:
    """``ValueError(missing)`` when nothing is known; names a zero known direction."""
    if not (known or directions or keypoints):
        raise ValueError(missing)
    for name, d in (directions or {}).items():
        if name == JOINT_NAMES[0]:
            raise ValueError(f"known_directions.{name}: the {name} is the root, it ends no bone, so it has no direction; "
                             f"give its position in 'known' instead")
        if sum(c * c for c in d) < 1e-12:
            raise ValueError(f"known_directions.{name}: zero vector")


class CompleteFrame(Strict):
    known: dict[str, Vec3] | None = Field(None, description="known joints, world frame, metres, any placement")
    known_directions: dict[str, Vec3] | None = Field(
        None, description="known bone directions (parent -> joint), world frame, unit vectors"
    )
    keypoints: dict[str, Keypoint] | None = Field(None, description="optional 2D evidence (pixels)")
    camera: Camera | None = None

    _names = field_validator("known", "known_directions", "keypoints")(_check_joint_names)

    @model_validator(mode="after")
    def _something_known(self):
        _check_something_known("a frame needs 'known' joints, 'known_directions' or 'keypoints'",
                               self.known, self.known_directions, self.keypoints)
        return self


class CompleteRequest(SamplingOptions):
    frames: list[CompleteFrame] = Field(min_length=1, max_length=MAX_FRAMES)


class GenerateRequest(Strict):
    num: int = Field(8, ge=1, le=MAX_GENERATE)
    seed: int | None = Field(0, ge=0, le=2**63 - 1)
    steps: int | None = Field(None, ge=1, le=MAX_STEPS)
    previews: bool = False


class VariationsRequest(Strict):
    """Poses near a given one (SDEdit: noise to an intermediate step, then denoise)."""

    pose: dict[str, Vec3] = Field(min_length=1, description="the current pose, world frame, metres (any subset of joints)")
    strength: Finite = Field(0.3, ge=0.0, le=1.0, description="0 = the same pose, 1 = unrelated")
    num: int = Field(8, ge=1, le=MAX_HYPOTHESES)
    seed: int | None = Field(0, ge=0, le=2**63 - 1)
    fixed: list[str] = Field(default_factory=list, description="joints kept where they are")
    previews: bool = False

    _names = field_validator("pose")(_check_joint_names)

    @field_validator("fixed")
    @classmethod
    def _fixed_names(cls, v):
        _check_joint_names({k: None for k in v})
        return v


class AssistRequest(Strict):
    """One update of pose assist: the pins (known joints / bone directions) and the last pose."""

    known: dict[str, Vec3] | None = Field(None, description="pinned joints, world frame, metres, model scale")
    known_directions: dict[str, Vec3] | None = Field(
        None, description="pinned bone directions (parent -> joint), world frame, unit vectors")
    previous: list[Vec3] | None = Field(
        None, description=f"the last pose ({NUM_JOINTS} rows [x, y, z] in joint_names order, world frame, metres): "
                          "the update is warm-started from it so small moves of the pins give small changes")
    seed: int | None = Field(0, ge=0, le=2**63 - 1, description="keep it fixed during a drag (continuity)")
    strength: Finite | None = Field(None, ge=0.05, le=1.0,
                                    description="SDEdit strength of the warm start (default 0.3; 1 = ignore previous)")
    steps: int | None = Field(None, ge=1, le=50, description="DDIM steps of the update (default 8)")

    _names = field_validator("known", "known_directions")(_check_joint_names)

    @field_validator("previous")
    @classmethod
    def _previous_rows(cls, v):
        if v is not None and len(v) != NUM_JOINTS:
            raise ValueError(f"needs {NUM_JOINTS} rows [x, y, z], one per joint in joint_names order; got {len(v)}")
        return v

    @model_validator(mode="after")
    def _pins(self):
        _check_something_known("no pins: give 'known' joints or 'known_directions' (pin at least one bone)",
                               self.known, self.known_directions)
        return self


class DetectFrame(Strict):
    image: str = Field(max_length=MAX_IMAGE_FIELD, description="file path or base64 PNG/JPEG")
    camera: Camera | None = None
    person: int | None = Field(None, ge=0, le=64)
    mirrored: bool = Field(False, description="the picture is a mirror image: detected flipped left-right (as estimate "
                           "frames' 'mirrored'); keypoints, box and camera are then of the flipped picture")


class DetectRequest(Strict):
    frames: list[DetectFrame] = Field(min_length=1, max_length=MAX_FRAMES)
    heatmaps: bool = False


# ----------------------------------------------------------------------------- responses


def _first_non_finite(value, path: tuple = (), bound: float = math.inf) -> tuple | None:
    """Path (a pydantic-style ``loc``) of the first NaN or infinity in a JSON-like value (with
    ``bound``: or a number of magnitude above it), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return None if abs(value) <= bound else path
    if isinstance(value, float):
        return None if math.isfinite(value) and abs(value) <= bound else path
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        if value and _finite_array(value, bound):
            return None  # a block of numbers (joints [J, 3], ...) checked at once
        items = enumerate(value)
    else:
        return None
    for k, v in items:
        found = _first_non_finite(v, (*path, k), bound)
        if found is not None:
            return found
    return None


def _finite_array(value: list | tuple, bound: float) -> bool:
    """True when ``value`` is a rectangular block of numbers, all finite and within ``bound``
    (checked with numpy: a 60 s clip's frames are millions of numbers); False when it is not such
    a block or fails the check (the caller then walks it to name the first bad number)."""
    first = value[0]
    while isinstance(first, (list, tuple)) and first:
        first = first[0]
    if isinstance(first, bool) or not isinstance(first, (int, float)):
        return False
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        return False
    return bool(np.isfinite(a).all() and (bound == math.inf or (np.abs(a) <= bound).all()))


class FiniteResponse(BaseModel):
    """A response: refuses NaN and infinity anywhere in it (valid JSON cannot carry them).

    They come from absurd magnitudes in a request; the error (type ``non_finite_result``) names
    where, and the server answers 400 (:func:`backend.http.app.service_call`), the CLI exit 2.
    """

    @model_validator(mode="after")
    def _finite(self):
        where = _first_non_finite(self.model_dump())
        if where is not None:
            raise PydanticCustomError(
                "non_finite_result", "the result is not finite (NaN or infinity) at {where}: numbers in the request are "
                "out of range; keypoints are pixels, joints metres, focal lengths pixels", {"where": field_path(where)})
        return self


#: ``[J, 3]`` joints of a result, ``J`` = ``NUM_JOINTS`` rows in ``joint_names`` order (checked where
#: a result comes back as input, ``POST /v1/track``); a point ``[x, y, z]``.
Point = Annotated[list[float], Field(min_length=3, max_length=3)]
Joints = Annotated[list[Point], Field(min_length=NUM_JOINTS, max_length=NUM_JOINTS)]


class Hypothesis(BaseModel):
    joints: Joints = Field(description="[J,3]: estimate: camera frame, root-relative; complete: world, absolute")
    score: float = Field(description="higher is better (log-likelihood of the 2D/known evidence)")
    root_translation: Point = Field(description="pelvis in the camera frame (estimate) or world (complete), metres")
    world_joints: Joints | None = Field(
        None, description="[J,3] world frame (Z up), pelvis at origin; the camera looks along +Y"
    )
    camera_pitch_deg: float | None = None
    camera_roll_deg: float | None = None
    reprojection_error_px: float | None = None
    preview_png: str | None = None


class TrackPose(BaseModel):
    """One frame of the temporally coherent track (sequences only)."""

    joints: Joints = Field(description="[J,3] camera frame, root-relative, metres")
    root_translation: Point = Field(description="pelvis in the camera frame, metres")
    world_joints: Joints = Field(description="[J,3] world frame (Z up), pelvis at the origin, one camera tilt for the clip")
    world_root: Point | None = Field(None, description="pelvis in the world frame (camera at the origin, Z up), metres")
    contacts: dict[str, bool] | None = Field(None, description="feet planted on the floor in this frame")
    hypothesis: int | None = Field(None, description="index of the hypothesis on the Viterbi path (-1: filled gap)")


class FrameResult(BaseModel):
    hypotheses: list[Hypothesis]
    aggregate: Joints
    aggregate_world: Joints | None = None
    camera: dict | None = None
    keypoints: dict[str, list[float]] | None = None
    diversity_mm: float | None = Field(None, description="mean pairwise per-joint distance of the hypotheses")
    warnings: list[str] = Field(default_factory=list)
    preview_png: str | None = None
    track: TrackPose | None = None
    mirrored: bool = Field(False, description="the picture was flipped left-right (the request's 'mirrored'): keypoints, "
                           "camera and preview are of the flipped picture")


class ShotInfo(BaseModel):
    """One shot of an edited clip (between two cuts)."""

    start: int = Field(description="its first frame")
    frames: int
    camera_pitch_deg: float
    camera_roll_deg: float


class SequenceInfo(BaseModel):
    """What a sequence shared: one camera (intrinsics, tilt) for all its frames."""

    fps: float
    camera_pitch_deg: float
    camera_roll_deg: float
    frames: int
    gaps: list[int] = Field(default_factory=list, description="frames without a person, filled from their neighbours")
    floor_z: float | None = Field(None, description="world Z of the floor under the track (camera at the origin), metres")
    source_fps: float | None = Field(None, description="frame rate of the source video (before --every)")
    source_frames: list[int] | None = Field(None, description="index of each response frame in the source video / sequence")
    source_times: list[float] | None = Field(None, description="time of each response frame in the source video, seconds "
                                             "from its start (the decoder's timestamps; image sequences: index / fps). "
                                             "Not evenly spaced where the video has a variable frame rate")
    variable_frame_rate: bool = Field(False, description="the video's frames are not evenly spaced (phones in low "
                                      "light, screen recordings): key each frame at its source_times entry")
    camera_motion: list[list[list[float]]] | None = Field(
        None, description="the camera motion the track undid (as sequence.camera_motion: given, or estimated from a "
        "video's background); send it back with a per-frame override")
    moving_camera: bool = Field(False, description="the request's sequence.moving_camera (send it back with a per-frame override)")
    warnings: list[str] = Field(default_factory=list, description="about the whole clip (e.g. a hint that the camera "
                                "travelled with the person)")
    camera_translation: list[list[float]] | None = Field(
        None, description="with sequence.moving_camera: per frame, the camera centre's position relative to the first "
        "frame's, in the first frame's camera frame (OpenCV, metres; horizontal over the floor); null for a camera in "
        "one place. With cuts, each shot's camera centre, placed from the person's motion")
    camera_zoom: list[float] | None = Field(
        None, description="per frame, the focal length over the first frame's, where the lens zoomed during the clip "
        "(estimated from the background with the turn); each frame's 'camera' has its own fx, fy. Null: a fixed lens")
    cuts: list[int] = Field(default_factory=list, description="frames where a new shot begins (given, or found in the "
                            "video's content); send them back with a per-frame override")
    shots: list[ShotInfo] = Field(default_factory=list, description="with cuts: each shot's first frame and camera "
                                  "tilt (camera_pitch_deg / camera_roll_deg above are the first shot's)")


class EstimateResponse(FiniteResponse):
    joint_names: list[str]
    frames: list[FrameResult]
    sequence: SequenceInfo | None = None


class GenerateResponse(FiniteResponse):
    joint_names: list[str]
    poses: list[list[list[float]]]
    previews: list[str] | None = None


class AssistResponse(FiniteResponse):
    joint_names: list[str]
    joints: list[list[float]] = Field(description="[J,3] world frame, metres; every known joint reproduced")
    plausibility_mm: float | None = Field(
        None, description="the prior's disagreement with the pose (mm; lower = more typical; real poses ~10-20)")
    warm_start: bool = Field(False, description="true when the update started from 'previous'")
    time_ms: float | None = Field(None, description="sampling time of this update")


class DetectFrameResult(BaseModel):
    image: str
    keypoints: dict[str, list[float]]
    camera: dict
    box: list[float] | None = None
    heatmaps: dict | None = None
    mirrored: bool = False


class DetectResponse(FiniteResponse):
    frames: list[DetectFrameResult]


class ImageRequest(Strict):
    """A photo to decode as the backend does (for clients that cannot read it, e.g. HEIC in Blender)."""

    image: str = Field(max_length=MAX_IMAGE_FIELD, description="file path or base64 image bytes (PNG, JPEG, HEIC, ...)")


class ImageResponse(BaseModel):
    jpeg: str = Field(description="base64 JPEG of the photo upright (EXIF orientation / HEIF transforms applied), "
                                  "with its 35 mm-equivalent focal length in EXIF")
    width: int = Field(description="pixels of the JPEG (the decoded size: longest side at most 4096)")
    height: int
    original_size: list[int] = Field(description="[width, height] of the photo as shown upright, pixels")
    focal_35mm: float | None = Field(description="35 mm-equivalent focal length from the file's EXIF, or null")


class TrackRequest(Strict):
    """Re-solve the track of a previous sequence response (per-frame override), without sampling again."""

    frames: list[FrameResult] = Field(min_length=1, max_length=100_000,
                                      description="the 'frames' of an estimate response of a sequence (hypotheses, keypoints, camera)")
    sequence: SequenceOptions = Field(description="fps of the frames and the fixed choices {frame: hypothesis}")
    camera: Camera | None = Field(None, description="only 'rotation' is used: the world-to-camera rotation when known; "
                                  "else one tilt is estimated from the hypotheses")
    source_frames: list[int] | None = Field(None, description="passed through to the response's sequence info")
    source_fps: Finite | None = Field(None, gt=0, le=1000)
    source_times: list[Finite] | None = Field(None, max_length=100_000, description="the estimate's sequence.source_times, "
                                              "passed through (with source_fps: variable_frame_rate found again)")

    @model_validator(mode="after")
    def _finite_frames(self):
        where = _first_non_finite([fr.model_dump(exclude={"warnings", "preview_png"}) for fr in self.frames],
                                  ("frames",), MAX_TRACK_VALUE)
        if where is not None:
            raise PydanticCustomError(
                "frames_out_of_range", "{where}: not a finite number of magnitude at most {bound}; send the 'frames' "
                "of an estimate response unchanged", {"where": field_path(where), "bound": f"{MAX_TRACK_VALUE:g}"})
        return self


TaskName = Literal["estimate", "complete", "generate", "variations", "detect", "track", "assist"]
