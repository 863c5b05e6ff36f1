# SPDX-License-Identifier: GPL-3.0-or-later
"""The demo picture: detector overlay (keypoints + projected hypotheses, ``backend/vision/overlay.py``)
next to the Blender render of the keyed rig over the photo, composed with Pillow.

Pixels follow the contract: (0, 0) is the photo's top-left corner; images are RGB ``uint8``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

from backend.camera import Intrinsics, project
from backend.skeleton import PARENTS
from backend.vision.overlay import draw_overlay


def load_photo(path: Path, width: int, height: int) -> Image.Image:
    """The photo upright (EXIF orientation applied), RGB, resized to ``width x height`` if the
    backend worked on another size (it reports the size its camera refers to)."""
    im = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    if im.size != (width, height):
        im = im.resize((width, height), Image.Resampling.LANCZOS)
    return im


def intrinsics_of(camera: dict) -> Intrinsics:
    """``backend.camera.Intrinsics`` of a response's ``frames[i].camera`` (pixels)."""
    return Intrinsics(float(camera["fx"]), float(camera["fy"]), float(camera["cx"]), float(camera["cy"]),
                      int(camera["width"]), int(camera["height"]))


def hypothesis_pixels(frame: dict) -> list[np.ndarray]:
    """Each hypothesis of a response frame projected to pixels, ``[J, 2]``, best first.

    Camera-frame joints are root-relative: pelvis at ``root_translation`` (metres).
    """
    k = intrinsics_of(frame["camera"])
    return [project(np.asarray(h["joints"], np.float64) + np.asarray(h["root_translation"], np.float64), k)
            for h in frame["hypotheses"]]


def detector_panel(photo: Image.Image, frame: dict, joint_names: list[str]) -> Image.Image:
    """Detected keypoints (red dots) and all hypotheses' projections (best in colour, others grey)."""
    rgb = draw_overlay(np.asarray(photo), frame.get("keypoints") or {}, hypothesis_pixels(frame),
                       joint_names, PARENTS if len(joint_names) == len(PARENTS) else None)
    return Image.fromarray(rgb)


def rig_panel(photo: Image.Image, render_png: Path, opacity: float = 0.85) -> Image.Image:
    """The RGBA render of the rig (transparent film) laid over the photo at ``opacity`` (0..1)."""
    rend = Image.open(render_png).convert("RGBA")
    a = np.asarray(rend).copy()
    a[..., 3] = (a[..., 3].astype(np.float32) * opacity).round().astype(np.uint8)
    rend = Image.fromarray(a, "RGBA")
    if rend.size != photo.size:
        raise ValueError(f"render {render_png} is {rend.size}, the photo {photo.size}: the camera resolution "
                         "must be the photo's size")
    base = photo.convert("RGBA")
    return Image.alpha_composite(base, rend).convert("RGB")


def side_by_side(panels: list[Image.Image], titles: list[str], footer: str = "",
                 min_height: int = 720) -> Image.Image:
    """Panels next to each other, each under its title, scaled up to at least ``min_height``."""
    h = max(p.height for p in panels)
    s = max(1.0, min_height / h)
    panels = [p.resize((round(p.width * s), round(p.height * s)), Image.Resampling.LANCZOS) for p in panels]
    font = _font(18)
    small = _font(14)
    pad, head, foot = 8, 30, 26 if footer else 0
    width = sum(p.width for p in panels) + pad * (len(panels) + 1)
    height = max(p.height for p in panels) + head + foot + 2 * pad
    out = Image.new("RGB", (width, height), (24, 24, 24))
    draw = ImageDraw.Draw(out)
    x = pad
    for p, t in zip(panels, titles):
        draw.text((x, pad), t, fill=(240, 240, 240), font=font)
        out.paste(p, (x, pad + head))
        x += p.width + pad
    if footer:
        draw.text((pad, height - foot), footer, fill=(200, 200, 200), font=small)
    return out


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()
