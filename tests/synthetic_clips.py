"""Synthetic clips for the video tests: the sample photo's person sliding across a white frame."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "image2.jpeg"


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


def write_video(path: Path, frames: list[np.ndarray], fps: float) -> None:
    """RGB frames -> an MP4 (mp4v) at ``fps``."""
    h, w = frames[0].shape[:2]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert vw.isOpened()
    for f in frames:
        vw.write(np.ascontiguousarray(f[..., ::-1]))
    vw.release()
