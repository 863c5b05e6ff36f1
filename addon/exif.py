# SPDX-License-Identifier: GPL-3.0-or-later
"""EXIF orientation of a photo, and its pixels turned upright (pure Python: no Blender, no numpy).

Phones store a portrait photo as landscape pixels plus an EXIF ``Orientation`` tag (6: "rotate 90
degrees clockwise to show"). The backend, like every photo viewer, shows and estimates the photo
upright (Pillow's ``ImageOps.exif_transpose``); Blender 5.0 loads the pixels as stored. So the
add-on reads the tag itself (Blender's Python has no Pillow) and gives the camera background and
the render size the upright photo's (the backend's side: ``backend/vision/photo.py``).

Orientation values (EXIF 2.3 / TIFF 6.0, tag 0x0112): 1 as stored, 2 mirrored left-right, 3
turned 180 degrees, 4 mirrored top-bottom, 5 transposed, 6 turned 90 degrees clockwise to show, 7
transversed, 8 turned 90 degrees counter-clockwise to show. Read from a JPEG's APP1 ``Exif``
segment or a PNG's ``eXIf`` chunk; anything else (or an unreadable file) is 1.
"""

from __future__ import annotations

import struct
from array import array

ORIENTATION_TAG = 0x0112
#: Orientations whose upright image has width and height swapped.
SWAPS_SIDES = (5, 6, 7, 8)


def orientation(path: str) -> int:
    """The EXIF orientation (1-8) of a JPEG or PNG file; 1 when it has none or cannot be read."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            tiff = _jpeg_exif(f) if head[:2] == b"\xff\xd8" else _png_exif(f) if head == b"\x89PNG\r\n\x1a\n" else None
    except OSError:
        return 1
    value = _tiff_orientation(tiff) if tiff else None
    return value if value in range(1, 9) else 1


def upright_size(width: int, height: int, value: int) -> tuple[int, int]:
    """``(width, height)`` of the upright image of stored pixels ``width`` x ``height``."""
    return (height, width) if value in SWAPS_SIDES else (width, height)


def to_upright(pixels: array, width: int, height: int, value: int, channels: int = 4) -> tuple[array, int, int]:
    """Stored pixels -> the upright image, as Pillow's ``ImageOps.exif_transpose`` (the add-on has
    no numpy: rows and columns move by extended slices of an ``array``).

    Args:
        pixels: ``array`` of ``height * width * channels`` values, row 0 at the top, pixels left to right.
        width, height: stored size, pixels.
        value: EXIF orientation 1-8.
    Returns:
        ``(array, upright width, upright height)``, the same layout and typecode.
    """
    W, H, C = width, height, channels
    rw = W * C
    if len(pixels) != H * rw:
        raise ValueError(f"{len(pixels)} values for a {W}x{H} image of {C} channels")
    out = array(pixels.typecode, bytes(len(pixels) * pixels.itemsize))
    if value not in SWAPS_SIDES:  # each upright row is a stored row, maybe reversed
        rows_reversed, pixels_reversed = value in (3, 4), value in (2, 3)
        for r in range(H):
            src = (H - 1 - r if rows_reversed else r) * rw
            row = pixels[src : src + rw]
            if pixels_reversed:
                for ch in range(C):
                    out[r * rw + ch : (r + 1) * rw : C] = row[ch::C][::-1]
            else:
                out[r * rw : (r + 1) * rw] = row
        return out, W, H
    # each upright row is a stored column: 5, 6 column i, 7, 8 column W-1-i; 6, 7 read bottom to top
    orw = H * C
    for i in range(W):
        x = i if value in (5, 6) else W - 1 - i
        for ch in range(C):
            col = pixels[x * C + ch :: rw]
            out[i * orw + ch : (i + 1) * orw : C] = col[::-1] if value in (6, 7) else col
    return out, H, W


def flip_rows(pixels: array, width: int, height: int, channels: int = 4) -> array:
    """The rows in the other order (Blender's images start at the bottom row, files at the top)."""
    rw = width * channels
    out = array(pixels.typecode, bytes(len(pixels) * pixels.itemsize))
    for r in range(height):
        out[r * rw : (r + 1) * rw] = pixels[(height - 1 - r) * rw : (height - r) * rw]
    return out


def _jpeg_exif(f) -> bytes | None:
    """The TIFF block of a JPEG's APP1 ``Exif`` segment: the markers after SOI are walked (seeking
    past each segment, fill bytes skipped) up to the image data."""
    f.seek(2)
    while True:
        if f.read(1) != b"\xff":  # every marker starts with 0xFF: anything else is not a JPEG header
            return None
        b = f.read(1)
        while b == b"\xff":  # fill bytes before the marker
            b = f.read(1)
        if not b or b[0] in (0xD9, 0xDA):  # end of file / image / start of scan: no EXIF before the pixels
            return None
        marker = b[0]
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            continue
        raw = f.read(2)
        length = struct.unpack(">H", raw)[0] if len(raw) == 2 else 0
        if length < 2:
            return None
        if marker == 0xE1:
            seg = f.read(length - 2)
            if seg[:6] == b"Exif\x00\x00":
                return seg[6:]
        else:
            f.seek(length - 2, 1)


def _png_exif(f) -> bytes | None:
    """The TIFF block of a PNG's ``eXIf`` chunk (chunks walked up to the image data)."""
    f.seek(8)
    while True:
        raw = f.read(8)
        if len(raw) < 8:
            return None
        length, kind = struct.unpack(">I4s", raw)
        if kind == b"eXIf":
            return f.read(min(length, 1 << 20))
        if kind in (b"IDAT", b"IEND"):
            return None
        f.seek(length + 4, 1)  # data and CRC


def _tiff_orientation(tiff: bytes) -> int | None:
    """Tag 0x0112 of IFD0 of a TIFF-structured EXIF block, or None."""
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return None
    e = "<" if tiff[:2] == b"II" else ">"
    (ifd,) = struct.unpack(e + "I", tiff[4:8])
    if ifd + 2 > len(tiff):
        return None
    (count,) = struct.unpack(e + "H", tiff[ifd : ifd + 2])
    for k in range(count):
        entry = tiff[ifd + 2 + 12 * k : ifd + 14 + 12 * k]
        if len(entry) < 12:
            return None
        tag, kind = struct.unpack(e + "HH", entry[:4])
        if tag == ORIENTATION_TAG:  # a SHORT, as the standard says; a LONG as some writers store it
            return struct.unpack(e + "H", entry[8:10])[0] if kind == 3 else struct.unpack(e + "I", entry[8:12])[0] \
                if kind == 4 else None
    return None
