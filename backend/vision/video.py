"""Frames of a video file, an image folder, a glob or a list of images, read one at a time.

Image folders and globs are read in natural order (:func:`natural_key`: ``frame2`` before
``frame10``, as Blender numbers an image sequence).

:func:`open_frames` returns a :class:`FrameSource`: an iterable of :class:`VideoFrame` that
decodes one frame at a time (OpenCV ``VideoCapture``; ``grab`` skips unwanted frames without
converting them), so memory stays bounded however long the clip. Codecs the FFmpeg inside
OpenCV's wheels cannot decode (AV1: YouTube downloads, some Android phones) are decoded with PyAV
(FFmpeg with dav1d), rotated as their display matrix says (as OpenCV does: phones' portrait video).
The frame rate comes from the file (or ``fps`` for image sequences, default 25); ``every`` keeps
every N-th frame; ``start`` / ``end`` select a range in frames (``"12"``) or seconds (``"0.5s"``:
a video's frames by their timestamps, an image sequence's at its frame rate), ``end`` exclusive.

Each frame's ``time`` is the decoder's timestamp (seconds from the stream's start), not ``index /
fps``: phones record at a variable frame rate (the rate drops in low light; screen recordings
repeat nothing while the picture is still), and Blender's movie clip shows a video by time, so a
key placed by frame count drifts off the footage (:func:`variable_frame_rate`).

The lens: an iPhone's video (QuickTime) carries its 35 mm-equivalent focal length in its metadata
(``com.apple.quicktime.camera.focal_length.35mm_equivalent``, read with PyAV:
:func:`video_focal_35mm`); each frame's :class:`~backend.vision.photo.Photo` has it as a photo has
its EXIF's, so the clip's camera is that lens. Other videos (Android phones, webcams, the web) say
nothing of their lens, and the frames of a clip without one are taken through a phone's or a
webcam's (:data:`backend.camera.DEFAULT_FOOTAGE_FOCAL_35MM`, 28 mm, not a photo's 40 mm).

A video can also be uploaded (:func:`uploaded_video`: base64 bytes -> a temporary file).

Bad input raises :class:`backend.errors.InputError` naming the field (``video.path``,
``video.fps``, ``video.every``, ``video.start``, ``video.end``): an unreadable video, no frames,
a frame rate of 0, ``every`` < 1, an empty range.
"""

from __future__ import annotations

import contextlib
import glob
import math
import os
import re
import tempfile
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from backend.errors import InputError
from backend.vision.photo import decode_base64

#: FourCCs (lower case) of codecs the FFmpeg inside OpenCV's wheels cannot decode -> their name;
#: these are decoded with PyAV. AV1 (YouTube downloads, some Android phones): OpenCV's wheels carry
#: no software AV1 decoder (PyAV's carry dav1d).
UNDECODABLE_CODECS = {"av01": "AV1"}
#: A kept frame whose spacing from the one before differs from the nominal ``every / fps`` by more
#: than this fraction is off the nominal rate (:func:`variable_frame_rate`).
VFR_TOLERANCE = 0.25
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".heic", ".heif")
#: Frame rate assumed for image sequences when none is given (frames per second).
DEFAULT_IMAGE_FPS = 25.0
#: Container metadata keys that give a video's 35 mm-equivalent focal length (mm), first found wins:
#: Apple's QuickTime key (``AVMetadataQuickTimeMetadataKeyCameraFocalLength35mmEquivalent``, a
#: float32 item that FFmpeg reads as text, e.g. ``"26.000000"``).
FOCAL_KEYS = ("com.apple.quicktime.camera.focal_length.35mm_equivalent",)
#: Focal lengths outside this range (mm, 35 mm equivalent) are taken for a broken tag and ignored.
FOCAL_RANGE_MM = (8.0, 1200.0)
_TIME = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s?)\s*$")
# OpenCV's FFmpeg prints its own decoder's complaints (an AV1 file: "Missing Sequence Header" a
# frame) to the terminal; what went wrong reaches the user as an InputError instead. Read by
# OpenCV when a capture is opened; a value set by the user stays.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


@dataclass
class VideoFrame:
    """One decoded frame: ``index`` in the source (0-based), ``time`` in seconds, ``rgb`` ``[H, W, 3]`` uint8."""

    index: int
    time: float
    rgb: np.ndarray | None = None
    path: str | None = None
    name: str = ""
    focal_35mm: float | None = None  # the video's lens (:func:`video_focal_35mm`), mm

    def photo(self):
        """This frame as a :class:`backend.vision.photo.Photo` (images: loaded now, EXIF applied)."""
        from backend.camera import DEFAULT_FOOTAGE_FOCAL_35MM
        from backend.vision.photo import Photo, load_image

        if self.rgb is None:
            photo = load_image(self.path, f"video.frame {self.index}")
            photo.default_focal_35mm = DEFAULT_FOOTAGE_FOCAL_35MM  # frames of a clip: footage's lens
            return photo
        h, w = self.rgb.shape[:2]
        return Photo(rgb=self.rgb, focal_35mm=self.focal_35mm, original_size=(w, h), scale=1.0, name=self.name,
                     default_focal_35mm=DEFAULT_FOOTAGE_FOCAL_35MM)


def natural_key(path: str) -> list:
    """Sort key for image sequences in the order people and Blender number them: the digit runs of
    the name compared as numbers (``frame2.png`` before ``frame10.png``; zero-padded names keep
    their name order)."""
    return [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r"(\d+)", str(path))]


def is_image_path(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS


def is_sequence_path(path: str) -> bool:
    """A video file, a folder or a glob (not a single image)."""
    if any(c in path for c in "*?["):
        return True
    return os.path.isdir(path) or (os.path.isfile(path) and not is_image_path(path))


def parse_frame_time(value, fps: float, field: str) -> int | None:
    """``"12"`` -> frame 12; ``"0.5s"`` -> ``round(0.5 * fps)``; None stays None.

    Raises:
        InputError: not a non-negative number of frames or seconds.
    """
    if value is None or value == "":
        return None
    m = _TIME.match(str(value))
    if not m:
        raise InputError(field, f"{value!r} is not a frame index ('12') or a time in seconds ('0.5s')")
    x = float(m.group(1))
    if m.group(2):
        return int(round(x * fps))
    if x != int(x):
        raise InputError(field, f"{value!r}: a frame index is a whole number (add 's' for seconds)")
    return int(x)


class FrameSource:
    """Iterable of :class:`VideoFrame` (see :func:`open_frames`).

    Attributes:
        fps: frame rate of the source (frames per second); the kept frames are ``fps / every`` apart.
        every: step between kept frames; start, end: source frame range (end exclusive or None).
        count: number of frames that will be yielded (an estimate for videos whose header is off).
        name: display name; size: ``(width, height)`` or None; codec: the video's FourCC
            (``"h264"``, ``"AV01"``) or None.
        decoder: ``"opencv"`` or ``"pyav"`` (codecs OpenCV cannot decode).
        seconds: ``(start, end)`` in seconds where they were given so (else None): a video's frames
            are then kept by their timestamps (``start`` / ``end`` in frames stay the nominal estimate).
        timestamps: a video's frame times are its timestamps (False where ``fps`` was given: the
            frames are then retimed to ``index / fps``).
        focal_35mm: the video's 35 mm-equivalent focal length from its metadata
            (:func:`video_focal_35mm`), or None (image sequences: each image's EXIF is read instead).
        times: each yielded frame's time (seconds from the source's start), filled while iterating.
    """

    def __init__(self, name: str, fps: float, every: int, start: int, end: int | None, count: int,
                 video: str | None = None, images: list[str] | None = None, size=None, field: str = "video",
                 codec: str | None = None, decoder: str = "opencv", seconds: tuple = (None, None),
                 timestamps: bool = True, focal_35mm: float | None = None):
        self.name, self.fps, self.every, self.start, self.end = name, fps, every, start, end
        self.timestamps = timestamps
        self.focal_35mm = focal_35mm
        self.seconds = seconds  # (start, end) in seconds where given so: kept by timestamp
        self.count, self.size, self.field, self.codec, self.decoder = count, size, field, codec, decoder
        self._video, self._images = video, images
        self.times: list[float] = []

    def __len__(self) -> int:
        return self.count

    def __iter__(self):
        n = 0
        self.times = []
        if self._images is not None:
            for i in range(self.start, len(self._images) if self.end is None else min(self.end, len(self._images)), self.every):
                n += 1
                self.times.append(i / self.fps)
                yield VideoFrame(i, i / self.fps, path=self._images[i], name=os.path.basename(self._images[i]))
        else:
            # OpenCV first; where it decodes nothing (a codec its FFmpeg lacks), PyAV's newer FFmpeg
            decoders = [_pyav_frames] if self.decoder == "pyav" else [_opencv_frames, _pyav_frames]
            for k, decode in enumerate(decoders):
                try:
                    rng = _Range(self.start, self.end, self.every, *self.seconds)
                    for i, t, rgb in decode(self._video, rng, self.fps, self.field, self.timestamps):
                        n += 1
                        self.times.append(t)
                        yield VideoFrame(i, t, rgb=rgb, name=f"{self.name}#{i}", focal_35mm=self.focal_35mm)
                except InputError:
                    if k == 0:
                        raise
                if n:
                    break
        if n == 0:
            where = (f"from frame {self.start}" if self.end is None else f"in frames {self.start}-{self.end - 1}")
            codec = f" (codec {self.codec})" if self.codec else ""
            raise InputError(f"{self.field}.path", f"{self.name}{codec}: no frame could be decoded {where} (a damaged or "
                             f"truncated video, or a codec neither OpenCV nor PyAV can read?); check the file, its start and end")


def _frame_time(msec: float, i: int, fps: float) -> float:
    """A decoder timestamp in milliseconds -> seconds (``i / fps`` where the stream has none)."""
    return msec / 1000.0 if math.isfinite(msec) and msec >= 0 and (msec > 0 or i == 0) else i / fps


@dataclass
class _Range:
    """Which frames of a video are kept: from ``start`` to ``end`` (frames, end exclusive or None) or,
    where given in seconds, from ``t_start`` to ``t_end`` by each frame's timestamp (a variable
    frame rate puts "4.8s" elsewhere than frame 4.8 x fps), every ``every``-th from the first kept."""

    start: int
    end: int | None
    every: int
    t_start: float | None = None
    t_end: float | None = None
    first: int | None = None

    def past(self, i: int, t: float) -> bool:
        """Frame ``i`` (time ``t``, seconds) is at or beyond the end."""
        return (self.end is not None and i >= self.end) or (self.t_end is not None and t >= self.t_end - 1e-9)

    def keeps(self, i: int, t: float) -> bool:
        """Frame ``i`` (time ``t``) is kept (call in order, up to the end)."""
        if i < self.start or (self.t_start is not None and t < self.t_start - 1e-9):
            return False
        if self.first is None:
            self.first = i
        return (i - self.first) % self.every == 0


def _opencv_frames(path: str, rng: _Range, fps: float, field: str, timestamps: bool = True):
    """(source index, time s, RGB ``[H, W, 3]`` uint8) of the kept frames, decoded by OpenCV; the time
    is the frame's timestamp, or ``index / fps`` with ``timestamps`` False."""
    import cv2

    cap = cv2.VideoCapture(path)
    try:
        i = 0
        while rng.end is None or i < rng.end:
            if not cap.grab():
                break
            t = _frame_time(cap.get(cv2.CAP_PROP_POS_MSEC), i, fps) if timestamps else i / fps  # the grabbed frame's
            if rng.past(i, t):
                break
            if rng.keeps(i, t):
                ok, bgr = cap.retrieve()
                if not ok or bgr is None:
                    break
                yield i, t, np.ascontiguousarray(bgr[..., ::-1])
            i += 1
    finally:
        cap.release()


def _pyav_frames(path: str, rng: _Range, fps: float, field: str, timestamps: bool = True):
    """(source index, time s, RGB ``[H, W, 3]`` uint8) of the kept frames, decoded by PyAV (FFmpeg
    with dav1d: the codecs of :data:`UNDECODABLE_CODECS`), turned upright by each frame's display
    matrix (``frame.rotation``, degrees counter-clockwise) as OpenCV's decoder does; times as
    :func:`_opencv_frames`'.

    Raises:
        InputError: FFmpeg cannot read the file or decodes no frame of it (field ``<field>.path``).
    """
    import av

    n = 0
    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            t0 = stream.start_time or 0
            for i, frame in enumerate(container.decode(stream)):
                t = float((frame.pts - t0) * stream.time_base) if frame.pts is not None and timestamps else i / fps
                if rng.past(i, t):
                    break
                if not rng.keeps(i, t):
                    continue
                rgb = frame.to_ndarray(format="rgb24")
                if frame.rotation % 360:
                    rgb = np.rot90(rgb, k=(frame.rotation // 90) % 4)
                n += 1
                yield i, t, np.ascontiguousarray(rgb)
    except (av.FFmpegError, IndexError) as e:
        if n:  # a damaged or truncated end: the frames before it stand (as OpenCV stops there)
            return
        raise InputError(f"{field}.path", f"{os.path.basename(path)}: FFmpeg cannot decode this video ({e})") from None


def variable_frame_rate(times: list[float], fps: float, every: int = 1) -> float:
    """The fraction of kept frames whose spacing from the one before is off the nominal ``every /
    fps`` by more than :data:`VFR_TOLERANCE` (0: a constant frame rate).

    Args:
        times: ``[T]`` the frames' times (seconds), in order; fps: the source's nominal rate.
    """
    if len(times) < 2:
        return 0.0
    dt = np.diff(np.asarray(times, np.float64))
    return float(np.mean(np.abs(dt * fps / every - 1.0) > VFR_TOLERANCE))


def open_frames(path, every: int = 1, start=None, end=None, fps: float | None = None, field: str = "video") -> FrameSource:
    """Open a video file, an image folder, a glob, or a list of image paths as a :class:`FrameSource`.

    Args:
        path: video file, folder (images in name order), glob pattern, or a list of image paths.
        every: keep every N-th frame (>= 1).
        start, end: first frame and end (exclusive): frame index ``"12"`` / ``12`` or seconds ``"0.5s"``.
        fps: frame rate override (videos: default from the file, each frame at its timestamp; given,
            the frames are retimed to ``index / fps``; images: default 25).
        field: request field named in errors.
    Raises:
        InputError: missing or unreadable file, no images, fps not positive, ``every`` < 1, empty range.
    """
    if not isinstance(every, int) or every < 1:
        raise InputError(f"{field}.every", f"must be a whole number >= 1 (got {every})")
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise InputError(f"{field}.fps", f"must be a positive number of frames per second (got {fps})")
    images = None
    if isinstance(path, (list, tuple)):
        images = [str(p) for p in path]
        name = f"{len(images)} images"
        missing = [p for p in images if not os.path.isfile(p)]
        if missing:
            raise InputError(f"{field}.path", f"file not found: {missing[0]!r}")
    else:
        path = os.path.expanduser(str(path))
        name = os.path.basename(path.rstrip("/")) or path
        if any(c in path for c in "*?["):
            images = sorted((p for p in glob.glob(path) if is_image_path(p)), key=natural_key)
            if not images:
                raise InputError(f"{field}.path", f"no images match {path!r} ({', '.join(IMAGE_EXTENSIONS)})")
        elif os.path.isdir(path):
            images = sorted((os.path.join(path, f) for f in os.listdir(path) if is_image_path(f)), key=natural_key)
            if not images:
                raise InputError(f"{field}.path", f"folder {path!r} has no images ({', '.join(IMAGE_EXTENSIONS)})")
        elif not os.path.isfile(path):
            raise InputError(f"{field}.path", f"file not found: {path!r}")
        elif is_image_path(path):
            images = [path]
    if images is not None:
        rate = float(fps) if fps is not None else DEFAULT_IMAGE_FPS
        s = parse_frame_time(start, rate, f"{field}.start") or 0
        e = parse_frame_time(end, rate, f"{field}.end")
        stop = len(images) if e is None else min(e, len(images))
        count = len(range(s, stop, every))
        if count == 0:
            raise InputError(f"{field}.start" if e is None else f"{field}.end",
                             f"no frames between {s} and {stop} (the sequence has {len(images)})")
        return FrameSource(name, rate, every, s, e, count, images=images, field=field)
    import cv2

    cap = cv2.VideoCapture(path)
    try:
        if not cap.isOpened():
            raise InputError(f"{field}.path", f"{name}: cannot read this video (not a video file, or a codec OpenCV lacks)")
        rate = float(fps) if fps is not None else float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        fourcc = int(cap.get(cv2.CAP_PROP_FOURCC) or 0)
        codec = fourcc.to_bytes(4, "little").decode("latin-1").strip("\x00 ") if 0 < fourcc < 2**32 else None
    finally:
        cap.release()
    if not (math.isfinite(rate) and rate > 0):
        raise InputError(f"{field}.fps", f"{name}: the video reports a frame rate of {rate:g}; give the frame rate (--fps)")
    if total <= 0:
        raise InputError(f"{field}.path", f"{name}: the video has no frames")
    s = parse_frame_time(start, rate, f"{field}.start") or 0
    e = parse_frame_time(end, rate, f"{field}.end")
    stop = total if e is None else min(e, total)
    count = len(range(s, stop, every))
    if count == 0:
        raise InputError(f"{field}.start" if e is None or s >= total else f"{field}.end",
                         f"no frames between {s} and {stop} (the video has {total} frames at {rate:g} fps)")
    decoder = "pyav" if (codec or "").lower() in UNDECODABLE_CODECS else "opencv"
    seconds = tuple(_in_seconds(v) for v in (start, end))
    return FrameSource(name, rate, every, 0 if seconds[0] is not None else s, None if seconds[1] is not None else e,
                       count, video=path, size=size, field=field, codec=codec or None, decoder=decoder, seconds=seconds,
                       timestamps=fps is None, focal_35mm=video_focal_35mm(path))


def video_focal_35mm(path: str) -> float | None:
    """The 35 mm-equivalent focal length (mm) a video's container metadata gives (:data:`FOCAL_KEYS`;
    an iPhone's QuickTime file), or None: no such tag, one outside :data:`FOCAL_RANGE_MM`, or a
    file PyAV cannot open (OpenCV may still decode it; the lens is then unknown, not an error)."""
    try:
        import av

        with av.open(path) as container:
            tags = dict(container.metadata)
            for stream in container.streams.video:
                tags.update({k: v for k, v in stream.metadata.items() if k not in tags})
    except Exception:  # the lens is optional; decoding reports a bad file itself
        return None
    for key in FOCAL_KEYS:
        try:
            f = float(tags.get(key, "nan"))
        except ValueError:
            continue
        if FOCAL_RANGE_MM[0] <= f <= FOCAL_RANGE_MM[1]:
            return f
    return None


def _in_seconds(value) -> float | None:
    """``"0.5s"`` -> 0.5; a frame index or None -> None (checked by :func:`parse_frame_time` before)."""
    m = _TIME.match(str(value)) if value not in (None, "") else None
    return float(m.group(1)) if m and m.group(2) else None


@contextlib.contextmanager
def uploaded_video(data: str, field: str = "video.data") -> Iterator[str]:
    """A video file's bytes sent in base64 (``video.data``), written to a temporary file for
    :func:`open_frames` and removed afterwards; yields the file's path.

    Raises:
        InputError: not base64, or empty once decoded (field ``field``). What the bytes hold is
            checked by OpenCV when the frames are opened (an unreadable video names ``field``).
    """
    raw = decode_base64(data, field, "invalid base64; encode the video file's bytes with base64")
    if not raw:
        raise InputError(field, "empty video data")
    fd, path = tempfile.mkstemp(suffix=".video", prefix="posediff-upload-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        yield path
    finally:
        with contextlib.suppress(OSError):
            os.remove(path)
