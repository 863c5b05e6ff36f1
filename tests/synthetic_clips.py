"""Synthetic clips for the video tests: the sample photo's person sliding across a white frame, and two
sample photos' people side by side, one of them walking closer."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

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


def write_video(path: Path, frames: list[np.ndarray], fps: float) -> None:
    """RGB frames -> an MP4 (mp4v) at ``fps``."""
    h, w = frames[0].shape[:2]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert vw.isOpened()
    for f in frames:
        vw.write(np.ascontiguousarray(f[..., ::-1]))
    vw.release()
