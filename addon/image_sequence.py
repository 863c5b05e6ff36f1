# SPDX-License-Identifier: GPL-3.0-or-later
"""Image sequences as Blender's camera background shows them (pure Python, no bpy).

Blender plays an image sequence (an ``Image`` with ``source = 'SEQUENCE'``) by file *name*: at
scene frame ``f`` it loads the file named as the loaded one with its last run of digits replaced
by ``f - frame_start + 1 + frame_offset``, zero-padded to that run's length (Blender's
``BKE_image_user_frame_get`` and ``BLI_path_sequence_decode`` / ``BLI_path_sequence_encode``).
The backend reads a folder's images in natural name order, whatever their numbers. The two agree
only where the names step by one under one head and tail (``f0001.png``, ``f0002.png``, ...), and
only with ``frame_offset`` = the first shown file's number - 1 (not its index in the folder: an
offset of the index shows ``f001`` where ``f000`` was estimated, and nothing at all for an
iPhone's ``IMG_1234.JPG``, ...).

Files Blender cannot show as they are get a numbered copy (``000001.jpg``, ``000002.jpg``, ... in
a folder of the add-on's, reused while the frames are unchanged): HEIC / HEIF (an iPhone's burst
or photo series; Blender reads no HEIC) and photos with an EXIF rotation (Blender shows a phone's
portrait frames as stored, on their side) are the backend's upright JPEGs (``POST /v1/image``,
:func:`backend.vision.photo.upright_jpeg`); frames numbered with gaps (deleted shots), mixed names
or formats are linked (or copied) under consecutive numbers.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil

from . import exif
from .photos import is_heif

#: How the numbered copies are named (their number from 1, Blender's first frame of a sequence).
COPY_DIGITS = 6

_LAST_NUMBER = re.compile(r"^(.*?)(\d+)(\D*)$")


def sequence_number(name: str) -> tuple[str, int, int, str] | None:
    """``(head, number, digits, tail)`` of a file name as Blender numbers it (its last run of digits;
    ``tail`` holds the extension), or None for a name without digits.

    >>> sequence_number("IMG_1234.JPG")
    ('IMG_', 1234, 4, '.JPG')
    """
    m = _LAST_NUMBER.match(os.path.basename(name))
    return None if m is None else (m.group(1), int(m.group(2)), len(m.group(2)), m.group(3))


def blender_name(first: str, number: int) -> str:
    """The file name Blender loads for image number ``number`` of a sequence loaded from ``first``
    (a name with digits): its last digits replaced, zero-padded to their length."""
    head, _n, digits, tail = sequence_number(first)
    return f"{head}{max(number, 0):0{digits}d}{tail}"


def numbered_run(paths: list[str]) -> int | None:
    """The number of the first of ``paths`` (``[K]`` files of one folder, in the order shown) when
    Blender, loading the first as a sequence, finds the others under the next numbers (one each,
    none skipped); None otherwise."""
    if not paths:
        return None
    parsed = sequence_number(paths[0])
    if parsed is None:
        return None
    folder, n0 = os.path.dirname(paths[0]), parsed[1]
    for k, p in enumerate(paths):
        if os.path.dirname(p) != folder or os.path.basename(p) != blender_name(paths[0], n0 + k):
            return None
    return n0


def needs_upright_copy(path: str) -> bool:
    """Whether Blender would show this frame otherwise than the backend estimated it: a HEIC / HEIF
    file (unreadable to Blender) or one with an EXIF rotation or mirror (shown as stored)."""
    return is_heif(path) or exif.orientation(path) != 1


def copy_folder(paths: list[str], root: str) -> str:
    """The folder under ``root`` for the numbered copy of ``paths``, named after their folder and a
    key of their names, sizes and modification times (so changed frames are copied again)."""
    h = hashlib.sha1()
    for p in paths:
        st = os.stat(p)
        h.update(f"{os.path.abspath(p)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    name = os.path.basename(os.path.dirname(os.path.abspath(paths[0]))) or "frames"
    return os.path.join(root, f"{name}.{h.hexdigest()[:10]}")


def copy_name(k: int, path: str, upright: bool) -> str:
    """Name of frame ``k`` (from 0) of a numbered copy: ``000001.jpg`` for an upright JPEG, else the
    number with the file's own extension."""
    ext = ".jpg" if upright else os.path.splitext(path)[1].lower()
    return f"{k + 1:0{COPY_DIGITS}d}{ext}"


def numbered_copy(paths: list[str], root: str, upright_jpeg, upright: bool | None = None):
    """Write the frames ``paths`` (``[K]``, in the order shown) as a sequence Blender plays in that
    order, upright: a generator yielding the fraction done after each frame and returning the
    first copy's path (Blender's sequence starts there, ``frame_offset`` 0).

    Args:
        paths: the frames' files.
        root: folder for the copies (:func:`copy_folder` makes one inside it).
        upright_jpeg: ``path -> bytes``, the backend's upright JPEG of a file (``POST /v1/image``).
        upright: whether the frames are copied as upright JPEGs (one format for the whole sequence:
            Blender's sequence keeps the first's extension); None: where any frame
            :func:`needs_upright_copy`.
    Raises:
        OSError: the folder cannot be written; whatever ``upright_jpeg`` raises (the copy so far is
            left incomplete and made again next time).
    """
    folder = copy_folder(paths, root)
    if upright is None:
        upright = any(needs_upright_copy(p) for p in paths)
    names = [copy_name(k, p, upright) for k, p in enumerate(paths)]
    done = os.path.join(folder, ".complete")
    if os.path.isfile(done):
        return os.path.join(folder, names[0])
    os.makedirs(folder, exist_ok=True)
    for k, (p, name) in enumerate(zip(paths, names)):
        out = os.path.join(folder, name)
        tmp = out + ".part"
        if upright:
            with open(tmp, "wb") as fh:
                fh.write(upright_jpeg(p))
        else:
            try:
                os.link(p, tmp)
            except OSError:  # another volume, or no hard links here
                shutil.copyfile(p, tmp)
        os.replace(tmp, out)
        yield (k + 1) / len(paths)
    with open(done, "w") as fh:
        fh.write(f"{len(paths)}\n")
    return os.path.join(folder, names[0])
