# SPDX-License-Identifier: GPL-3.0-or-later
"""Image sequences as Blender's camera background finds them by number (``addon/image_sequence.py``,
no Blender): which folders Blender plays in the backend's order as they are, and the numbered
upright copy made of the others (real files; the backend's own upright JPEG, in process)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from addon import image_sequence as isq  # noqa: E402
from addon import photos  # noqa: E402


def _touch(folder: Path, names: list[str]) -> list[str]:
    for n in names:
        Image.new("RGB", (8, 6), (10, 20, 30)).save(folder / n)
    return photos.sequence_images(str(folder))


@pytest.mark.parametrize("names, first", [
    (["f000.png", "f001.png", "f002.png"], 0),  # zero-based (Blender shows f000 at offset -1)
    (["IMG_1234.jpg", "IMG_1235.jpg", "IMG_1236.jpg"], 1234),  # a phone's numbering
    ([f"frame{i}.png" for i in range(8, 12)], 8),  # unpadded: frame9 then frame10
    (["shot2_0001.png", "shot2_0002.png"], 1),  # the last run of digits counts
    (["IMG_1234.jpg", "IMG_1236.jpg"], None),  # a deleted shot: Blender would show nothing at 1235
    (["a0001.png", "b0002.png"], None),  # another head
    (["f0001.png", "f0002.jpg"], None),  # another format
    (["still.png"], None),  # no number
])
def test_which_folders_blender_plays_in_order_as_they_are(tmp_path, names, first):
    paths = _touch(tmp_path, names)
    assert isq.numbered_run(paths) == first
    if first is not None:  # the names Blender would load from the first, one number on each
        assert [isq.blender_name(paths[0], first + k) for k in range(len(paths))] == [os.path.basename(p) for p in paths]


def test_blender_pads_to_the_first_name_s_digits():
    assert isq.sequence_number("IMG_1234.HEIC") == ("IMG_", 1234, 4, ".HEIC")
    assert isq.blender_name("f000.png", 7) == "f007.png"
    assert isq.blender_name("frame9.png", 10) == "frame10.png"
    assert isq.sequence_number("poster.jpg") is None


def test_the_numbered_copy_is_upright_in_order_and_reused(tmp_path):
    """Frames with an EXIF rotation (a phone's portrait burst) and a gap in their numbers: copied as
    000001.jpg, 000002.jpg, ... upright (the backend's JPEG), in the backend's order; a second call
    finds the copy complete and converts nothing."""
    from backend.vision.photo import load_image, upright_jpeg

    src = tmp_path / "burst"
    src.mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6  # stored on its side: turn 90 degrees clockwise to show
    for k, n in enumerate((1234, 1235, 1237)):
        up = np.zeros((40, 30, 3), np.uint8)
        up[:8, :8] = 60 * (k + 1)  # the frame's mark, top left when upright
        Image.fromarray(up).transpose(Image.Transpose.ROTATE_90).save(src / f"IMG_{n}.jpg", quality=95,
                                                                      exif=exif.tobytes())
    paths = photos.sequence_images(str(src))
    assert all(isq.needs_upright_copy(p) for p in paths) and isq.numbered_run(paths) is None
    converted = []

    def to_jpeg(p):
        converted.append(p)
        return upright_jpeg(load_image(p))

    steps = isq.numbered_copy(paths, str(tmp_path / "out"), to_jpeg)
    fractions = []
    try:
        while True:
            fractions.append(next(steps))
    except StopIteration as done:
        first = done.value
    assert fractions == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert os.path.basename(first) == "000001.jpg"
    folder = os.path.dirname(first)
    copies = photos.sequence_images(folder)
    assert [os.path.basename(p) for p in copies] == ["000001.jpg", "000002.jpg", "000003.jpg"]
    assert isq.numbered_run(copies) == 1
    for k, p in enumerate(copies):
        im = np.asarray(Image.open(p).convert("RGB"))
        assert im.shape[:2] == (40, 30)  # upright
        assert abs(float(im[:6, :6].mean()) - 60 * (k + 1)) < 8, k  # frame k, in order
    converted.clear()
    again = isq.numbered_copy(paths, str(tmp_path / "out"), to_jpeg)
    with pytest.raises(StopIteration) as done:
        next(again)
    assert done.value.value == first and not converted


def test_frames_that_only_need_renumbering_are_linked_not_converted(tmp_path):
    paths = _touch(tmp_path, ["IMG_1234.png", "IMG_1236.png"])
    assert not any(isq.needs_upright_copy(p) for p in paths)
    steps = isq.numbered_copy(paths, str(tmp_path / "out"), lambda p: pytest.fail("nothing to convert"))
    first = None
    try:
        while True:
            next(steps)
    except StopIteration as done:
        first = done.value
    copies = photos.sequence_images(os.path.dirname(first))
    assert [os.path.basename(p) for p in copies] == ["000001.png", "000002.png"]
    assert [Path(p).read_bytes() for p in copies] == [Path(p).read_bytes() for p in paths]
