# SPDX-License-Identifier: GPL-3.0-or-later
"""The add-on's EXIF orientation reader (``addon/exif.py``, no Blender) against Pillow, which the
backend uses: the same tag read from JPEG and PNG files, the same upright pixels."""

from __future__ import annotations

import sys
from array import array
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from addon import exif  # noqa: E402


def _stored() -> Image.Image:
    """A small asymmetric image: a colour per quadrant, 6 x 4 px, one white corner."""
    a = np.zeros((4, 6, 3), np.uint8)
    a[:2, :3], a[:2, 3:], a[2:, :3], a[2:, 3:] = (250, 0, 0), (0, 250, 0), (0, 0, 250), (250, 250, 0)
    a[0, 0] = (255, 255, 255)
    return Image.fromarray(a)


@pytest.mark.parametrize("value", range(1, 9))
@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_orientation_and_upright_pixels_match_pillow(tmp_path, value, fmt):
    im = _stored()
    ex = Image.Exif()
    ex[exif.ORIENTATION_TAG] = value
    path = tmp_path / f"o{value}.{fmt.lower()}"
    im.save(path, format=fmt, exif=ex.tobytes(), **({"quality": 100, "subsampling": 0} if fmt == "JPEG" else {}))
    assert exif.orientation(str(path)) == value
    with Image.open(path) as f:
        stored = np.asarray(f.convert("RGB"))
        want = np.asarray(ImageOps.exif_transpose(f).convert("RGB"))
    h, w = stored.shape[:2]
    got, uw, uh = exif.to_upright(array("B", stored.tobytes()), w, h, value, channels=3)
    assert exif.upright_size(w, h, value) == (uw, uh) == (want.shape[1], want.shape[0])
    np.testing.assert_array_equal(np.frombuffer(got, np.uint8).reshape(uh, uw, 3), want)
    flipped = exif.flip_rows(array("B", stored.tobytes()), w, h, channels=3)
    np.testing.assert_array_equal(np.frombuffer(flipped, np.uint8).reshape(h, w, 3), stored[::-1])


def test_no_orientation_or_an_unreadable_file_is_as_stored(tmp_path):
    plain = tmp_path / "plain.jpg"
    _stored().save(plain)
    assert exif.orientation(str(plain)) == 1
    (tmp_path / "junk.jpg").write_bytes(b"\xff\xd8\xff\xe1\x00\x10Exif\x00\x00MM\x00*\x00\x00\xff\xff")
    assert exif.orientation(str(tmp_path / "junk.jpg")) == 1  # the IFD offset points past the block
    assert exif.orientation(str(tmp_path / "missing.jpg")) == 1
    assert exif.orientation(str(ROOT / "samples" / "image2.jpeg")) == 1


def _jpeg_with_exif(tiff: bytes, before: bytes = b"") -> bytes:
    import io
    import struct

    buf = io.BytesIO()
    _stored().save(buf, "JPEG")
    jpeg, seg = buf.getvalue(), b"Exif\x00\x00" + tiff
    return jpeg[:2] + before + b"\xff\xe1" + struct.pack(">H", len(seg) + 2) + seg + jpeg[2:]


def test_orientation_as_a_long_after_fill_bytes_or_far_into_the_file_is_read_as_pillow_reads_it(tmp_path):
    """Writers that store the tag as a LONG, fill bytes before a marker, and an EXIF segment after more
    than 1 MB of other segments (ICC profiles, previews): the add-on reads 6 where Pillow does."""
    import struct

    def tiff(kind: int) -> bytes:
        value = struct.pack("<HH", 6, 0) if kind == 3 else struct.pack("<I", 6)
        return b"II" + struct.pack("<HI", 42, 8) + struct.pack("<H", 1) + struct.pack("<HHI", 0x0112, kind, 1) + value + bytes(4)

    app2 = b"".join(b"\xff\xe2" + struct.pack(">H", 65535) + bytes(65533) for _ in range(17))
    for name, data in (("long", _jpeg_with_exif(tiff(4))), ("fill", _jpeg_with_exif(tiff(3), b"\xff")),
                       ("far", _jpeg_with_exif(tiff(3), app2))):
        path = tmp_path / f"{name}.jpg"
        path.write_bytes(data)
        with Image.open(path) as im:
            assert im.getexif().get(exif.ORIENTATION_TAG) == 6, name
        assert exif.orientation(str(path)) == 6, name
