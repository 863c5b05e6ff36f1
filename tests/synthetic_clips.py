"""Synthetic clips for the video tests: the sample photo's person sliding across a white frame, two
sample photos' people side by side, one of them walking closer, and a cluttered scene filmed by a
camera turning about its centre (a handheld phone)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from backend.camera import DEFAULT_FOOTAGE_FOCAL_35MM, intrinsics_from_focal_35mm

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "image2.jpeg"
OTHER = Path(__file__).resolve().parents[1] / "samples" / "image1.png"


def moving_person_frames(count: int, height: int = 320, step: int = 4, blank_at: tuple = ()) -> list[np.ndarray]:
    """``count`` RGB frames ``[height, w + step * count, 3]`` uint8: the sample photo scaled to
    ``height`` and moved right by ``step`` px a frame; frames in ``blank_at`` are white (nobody)."""
    from PIL import Image

    im = np.asarray(Image.open(SAMPLE).convert("RGB"))
    s = height / im.shape[0]
    small = cv2.resize(im, (int(im.shape[1] * s), height))
    W = small.shape[1] + step * count
    out = []
    for i in range(count):
        f = np.full((height, W, 3), 255, np.uint8)
        if i not in blank_at:
            f[:, step * i : step * i + small.shape[1]] = small
        out.append(f)
    return out


def seen_by_another_camera(frames: list[np.ndarray], background=(70, 110, 150)) -> list[np.ndarray]:
    """The frames as another camera of an edited clip shows them: mirrored, their white background
    coloured (what follows a cut to them changes in every part of the picture)."""
    out = []
    for f in frames:
        f = np.ascontiguousarray(f[:, ::-1])
        f[(f > 250).all(-1)] = background
        out.append(f)
    return out


def two_people_frames(count: int, left: int = 300, right: tuple[int, int] = (200, 340), size=(640, 360)) -> list[np.ndarray]:
    """``count`` RGB frames ``[size[1], size[0], 3]``: the sample photo's person on the left, ``left`` px
    tall throughout, and another photo's person on the right growing from ``right[0]`` to ``right[1]``
    px (walking closer: the detector finds the right one the larger from about 240 px)."""
    from PIL import Image

    a, b = (np.asarray(Image.open(p).convert("RGB")) for p in (SAMPLE, OTHER))
    W, H = size
    out = []
    for hb in np.linspace(right[0], right[1], count).round().astype(int):
        f = np.full((H, W, 3), 255, np.uint8)
        sa = cv2.resize(a, (int(a.shape[1] * left / a.shape[0]), left))
        f[H - left :, 20 : 20 + sa.shape[1]] = sa
        sb = cv2.resize(b, (int(b.shape[1] * hb / b.shape[0]), int(hb)))
        f[H - hb :, W - 20 - sb.shape[1] : W - 20] = sb
        out.append(f)
    return out


def crossing_frames(count: int = 16, height: int = 300, size=(960, 360), alike: bool = False
                    ) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Two people crossing: the sample photo's person walks right behind another photo's person who
    walks left in front, hiding them for a few frames (``alike``: the second is the first mirrored,
    dressed the same: a dance duet in matching outfits). Returns (frames, x of the first's centre per
    frame, x of the second's)."""
    from PIL import Image

    a, b = (np.asarray(Image.open(p).convert("RGB")) for p in (SAMPLE, OTHER))
    a = cv2.resize(a, (int(a.shape[1] * height / a.shape[0]), height))
    b = a[:, ::-1] if alike else cv2.resize(b, (int(b.shape[1] * height / b.shape[0]), height))
    W, H = size
    frames, xa, xb = [], [], []
    for t in range(count):
        f = np.full((H, W, 3), 235, np.uint8)
        x1 = 60 + int(t * (W - 300) / (count - 1))
        x2 = W - 60 - b.shape[1] - int(t * (W - 300) / (count - 1))
        f[H - height :, x1 : x1 + a.shape[1]] = a
        f[H - height :, x2 : x2 + b.shape[1]] = b  # in front
        frames.append(f)
        xa.append(x1 + a.shape[1] / 2)
        xb.append(x2 + b.shape[1] / 2)
    return frames, np.array(xa), np.array(xb)


# ---- a handheld camera filming a cluttered scene (tests/test_camera_motion.py, the add-on's video test)

HANDHELD_W, HANDHELD_H = 640, 480
HANDHELD_K = intrinsics_from_focal_35mm(DEFAULT_FOOTAGE_FOCAL_35MM, HANDHELD_W, HANDHELD_H)  # the lens assumed for a video that says none
_KM = np.array([[HANDHELD_K.fx, 0, HANDHELD_K.cx], [0, HANDHELD_K.fy, HANDHELD_K.cy], [0, 0, 1.0]])
_PAD = 200  # the scene is drawn this much beyond the first frame on every side


def scene(person: bool = False, height: int = 330) -> np.ndarray:
    """The scene as the first frame's camera sees it, ``_PAD`` px beyond its frame: 400 overlapping
    boxes of random colours (a cluttered room's corners and edges) and, optionally, the sample
    photo's person standing in it, ``height`` px tall."""
    from PIL import Image

    rng = np.random.default_rng(0)
    canvas = np.full((HANDHELD_H + 2 * _PAD, HANDHELD_W + 2 * _PAD, 3), 128, np.uint8)
    for _ in range(400):
        x, y = rng.integers(0, canvas.shape[1]), rng.integers(0, canvas.shape[0])
        w, h = rng.integers(10, 80, 2)
        cv2.rectangle(canvas, (int(x), int(y)), (int(x + w), int(y + h)), tuple(int(c) for c in rng.integers(0, 255, 3)), -1)
    if person:
        im = np.asarray(Image.open(SAMPLE).convert("RGB"))
        h = height
        im = cv2.resize(im, (int(im.shape[1] * h / im.shape[0]), h))
        x, y = _PAD + HANDHELD_W // 2 - im.shape[1] // 2, _PAD + 110
        canvas[y : y + h, x : x + im.shape[1]] = im
    return canvas


def filmed(canvas: np.ndarray, motion: np.ndarray, zoom=None) -> list[np.ndarray]:
    """The frames of a camera turning by ``motion`` (``[T, 3, 3]``, ``x_t = M_t x_0``) about its centre,
    its focal length ``zoom [T]`` times the first frame's (None: a fixed lens)."""
    off = np.array([[1, 0, _PAD], [0, 1, _PAD], [0, 0, 1.0]])  # first-frame pixel -> canvas pixel
    zoom = np.ones(len(motion)) if zoom is None else zoom
    return [cv2.warpPerspective(canvas, _zoomed_K(z) @ m @ np.linalg.inv(_KM) @ np.linalg.inv(off), (HANDHELD_W, HANDHELD_H))
            for m, z in zip(motion, zoom)]


def _zoomed_K(z: float) -> np.ndarray:
    """The handheld camera's intrinsics with its focal length times ``z``."""
    K = _KM.copy()
    K[0, 0] *= z
    K[1, 1] *= z
    return K


def write_phone_video(path: Path, upright: list[np.ndarray], fps: float) -> None:
    """A portrait phone recording as phones store it: the upright RGB frames turned 90 degrees
    counter-clockwise into landscape, and a rotation of 90 degrees in the track header's display
    matrix (``tkhd``, ISO/IEC 14496-12 8.3.2) that players (OpenCV, Blender) apply to show it upright."""
    import struct

    write_video(path, [np.ascontiguousarray(np.rot90(f, 1)) for f in upright], fps)
    b = bytearray(path.read_bytes())
    i = b.find(b"tkhd")
    end = i - 4 + struct.unpack(">I", b[i - 4 : i])[0]
    m = end - 8 - 36  # the 3x3 matrix sits before the box's last fields, width and height
    assert struct.unpack(">9i", b[m : m + 36]) == (0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    b[m : m + 36] = struct.pack(">9i", 0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x40000000)
    path.write_bytes(bytes(b))


def write_iphone_video(path: Path, frames: list[np.ndarray], fps: float, focal_35mm: float) -> None:
    """RGB frames -> a QuickTime MOV (H.264) carrying the metadata an iPhone writes: make, model and
    the lens' 35 mm-equivalent focal length under ``com.apple.quicktime.camera.focal_length.35mm_equivalent``
    as a big-endian float32 item (QuickTime well-known data type 23), as in Apple's files (FFmpeg
    writes its metadata items as text, so the item's type and value are set afterwards)."""
    import struct

    import av

    key = "com.apple.quicktime.camera.focal_length.35mm_equivalent"
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w", format="mov", options={"movflags": "use_metadata_tags"}) as out:
        out.metadata.update({"com.apple.quicktime.make": "Apple", "com.apple.quicktime.model": "iPhone 13",
                             "com.apple.quicktime.camera.lens_model": "iPhone 13 back camera 5.1mm f/1.6", key: "LENS"})
        stream = out.add_stream("libx264", rate=int(fps))
        stream.width, stream.height, stream.pix_fmt = w - w % 2, h - h % 2, "yuv420p"
        for f in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f[: h - h % 2, : w - w % 2]),
                                                             format="rgb24")))
        out.mux(stream.encode())
    b = bytearray(path.read_bytes())
    i = b.find(b"data\x00\x00\x00\x01\x00\x00\x00\x00LENS")  # type 1 (UTF-8), locale 0, the value
    assert i > 0 and b.count(b"LENS") == 1
    b[i + 4 : i + 8] = struct.pack(">I", 23)  # float32
    b[i + 12 : i + 16] = struct.pack(">f", focal_35mm)
    path.write_bytes(bytes(b))


def write_timed_video(path: Path, frames: list[np.ndarray], times: list[float], codec: str = "libx264",
                      nominal_fps: int = 30) -> None:
    """RGB frames -> an MP4 with PyAV, each frame at its own time (seconds; a variable frame rate as
    phones record in low light), at the time base of 1/30000 s; ``codec`` ``"libx264"`` (H.264) or
    ``"libsvtav1"`` (AV1, as YouTube serves)."""
    from fractions import Fraction

    import av

    h, w = frames[0].shape[:2]
    pts = [round(t * 30000) for t in times]
    # each frame lasts until the next (the last one a nominal frame): the file's duration, which
    # players (Blender) take the clip's length from
    duration = dict(zip(pts, np.diff([*pts, pts[-1] + 30000 // nominal_fps]).tolist()))
    with av.open(str(path), "w") as out:
        # H.264 without B-frames: packets in presentation order, so their durations add up to the clip's
        stream = out.add_stream(codec, rate=nominal_fps, options={"bf": "0"} if codec == "libx264" else None)
        stream.width, stream.height, stream.pix_fmt = w - w % 2, h - h % 2, "yuv420p"
        stream.time_base = Fraction(1, 30000)

        def mux(packets):
            for pkt in packets:  # in the encoder's time base
                d = duration.get(round(pkt.pts * pkt.time_base * 30000))
                if d:
                    pkt.duration = round(d / 30000 / pkt.time_base)
                out.mux(pkt)

        for f, p in zip(frames, pts):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(f[: h - h % 2, : w - w % 2]), format="rgb24")
            frame.pts, frame.time_base = p, stream.time_base
            mux(stream.encode(frame))
        mux(stream.encode())


def write_mislabelled_video(path: Path, frames: list[np.ndarray], fps: float, header_fps: int) -> None:
    """RGB frames -> a WebM (VP9) whose frames are ``1 / fps`` apart (millisecond timestamps, as
    Matroska stores them) but whose header's default frame duration says ``header_fps``, as a
    remuxed or screen-recorded file can: OpenCV, PyAV and Blender report ``header_fps``."""
    from fractions import Fraction

    import av

    h, w = frames[0].shape[:2]
    tb = Fraction(1, 1000)
    with av.open(str(path), "w", format="webm") as out:
        stream = out.add_stream("libvpx-vp9", rate=header_fps)
        stream.width, stream.height, stream.pix_fmt = w - w % 2, h - h % 2, "yuv420p"
        stream.time_base = stream.codec_context.time_base = tb
        for i, f in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(f[: h - h % 2, : w - w % 2]), format="rgb24")
            frame.pts, frame.time_base = round(i / fps / tb), tb
            out.mux(stream.encode(frame))
        out.mux(stream.encode())


def write_video(path: Path, frames: list[np.ndarray], fps: float) -> None:
    """RGB frames -> an MP4 (mp4v) at ``fps``."""
    h, w = frames[0].shape[:2]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert vw.isOpened()
    for f in frames:
        vw.write(np.ascontiguousarray(f[..., ::-1]))
    vw.release()
