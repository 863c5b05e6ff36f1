# SPDX-License-Identifier: GPL-3.0-or-later
"""Photos (and videos that fit) go to the backend as their bytes (base64), not as paths (pure Python, no bpy).

A path names a file on the Blender machine; a backend elsewhere (a GPU box reached over the
network or an SSH tunnel, a container, another user's sandbox) cannot open it, and a loopback
URL does not prove the backend shares this machine's files. So every photo is read here and
sent inline. A 12 MP phone JPEG costs a few tens of milliseconds to encode and send (see the
README); the request must stay under the backend's body limit (``max_body_bytes`` of
``GET /v1/info``, ``posediff serve --max-body-mb``), else a ``PhotoTooLarge`` names the photo.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re

from .client import BackendError

#: Room left in the request for everything but the images (keypoints, camera, options), bytes.
JSON_OVERHEAD = 64 * 1024


class PhotoTooLarge(BackendError):
    """The photos do not fit in one request to the backend (message names the photo and the limit)."""


#: Photo formats Blender cannot read that the backend decodes: HEIC / HEIF (iPhones' default).
HEIF_EXT = (".heic", ".heif")
#: How a converted copy's name ends (``<name>.<key>`` + this), in the folder given to :func:`converted_photo`.
CONVERTED_SUFFIX = ".posediff.jpg"


def is_heif(path: str) -> bool:
    """Whether ``path`` is a HEIC / HEIF photo (by its extension), which Blender cannot read."""
    return os.path.splitext(path)[1].lower() in HEIF_EXT


def converted_photo(client, path: str, folder: str) -> str:
    """A HEIC / HEIF photo as an upright JPEG that Blender can show, decoded by the backend
    (``POST /v1/image``: orientation applied, the 35 mm-equivalent focal length kept in EXIF, so
    estimating the JPEG gives the camera the original would have).

    The copy is kept in ``folder`` as ``<name>.<key>.posediff.jpg`` (``key``: of the path, size and
    modification time, so a changed photo is converted again) and reused while it exists.

    Returns:
        the JPEG's path.
    Raises:
        BackendError: the backend cannot decode it (message says why), is unreachable, or the
            photo does not fit in a request (``PhotoTooLarge``); OSError: ``folder`` is not writable.
    """
    path = os.path.abspath(path)
    st = os.stat(path)
    key = hashlib.sha1(f"{path}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:10]
    out = os.path.join(folder, f"{os.path.splitext(os.path.basename(path))[0]}.{key}{CONVERTED_SUFFIX}")
    if os.path.isfile(out):
        return out
    data = upright_jpeg(client, path)
    os.makedirs(folder, exist_ok=True)
    tmp = out + ".part"
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, out)
    return out


def upright_jpeg(client, path: str) -> bytes:
    """The backend's upright JPEG of the photo ``path`` (``POST /v1/image``: HEIC decoded, EXIF
    orientation applied, the 35 mm-equivalent focal length kept in EXIF), as file bytes.

    Raises:
        BackendError: the backend cannot decode it (the message names the file), is unreachable, or
            the photo does not fit in a request (``PhotoTooLarge``).
    """
    body = inline_images({"frames": [{"image": path}]}, client.max_body_bytes(), client.url)["frames"][0]
    try:
        res = client.request("POST", "/v1/image", body)
    except BackendError as e:
        raise type(e)(str(e).replace("<base64>", os.path.basename(path)), e.status) from None
    return base64.b64decode(res["jpeg"])


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MB"


def base64_size(n_bytes: int) -> int:
    """Characters of the base64 encoding of ``n_bytes`` bytes (4 per 3, padded)."""
    return 4 * ((n_bytes + 2) // 3)


def _file_base64(path: str, what: str) -> str:
    """A file's bytes as base64 text; BackendError naming the ``what`` (photo, video) when unreadable."""
    try:
        with open(path, "rb") as fh:
            return base64.b64encode(fh.read()).decode("ascii")
    except OSError as e:
        raise BackendError(f"cannot read {what} {path}: {e.strerror or e}") from None


def is_local_file(value) -> bool:
    """Whether a frame's ``image`` value names a file here (not base64 data or a data: URL)."""
    return isinstance(value, str) and len(value) < 4096 and "\n" not in value and os.path.isfile(
        os.path.expanduser(value))


def inline_images(payload: dict, max_body_bytes: int | None = None, url: str = "the backend") -> dict:
    """A copy of ``payload`` whose ``frames[i].image`` file paths are replaced by the files'
    bytes, base64-encoded (values that are not files here are left as they are).

    Args:
        payload: a request body with ``frames`` (estimate, detect).
        max_body_bytes: the backend's request body limit (None: unknown, not checked here).
        url: the backend's address, for messages.
    Returns:
        the new payload (``payload`` itself is not changed).
    Raises:
        PhotoTooLarge: the request would pass ``max_body_bytes``; the message names the photo
            that does not fit, the sizes and the limit, and how to fix it.
        BackendError: a photo cannot be read.
    """
    frames = payload.get("frames")
    if not isinstance(frames, list) or not any(isinstance(f, dict) and is_local_file(f.get("image")) for f in frames):
        return payload
    out = []
    total = JSON_OVERHEAD
    for i, fr in enumerate(frames):
        if not (isinstance(fr, dict) and is_local_file(fr.get("image"))):
            out.append(fr)
            continue
        path = os.path.expanduser(fr["image"])
        name = os.path.basename(path)
        size = os.path.getsize(path)
        encoded = base64_size(size)
        total += encoded
        if max_body_bytes is not None and total > max_body_bytes:
            if encoded + JSON_OVERHEAD > max_body_bytes:
                raise PhotoTooLarge(
                    f"photo {name} is too large to send: {_mb(size)} ({_mb(encoded)} as base64), and the backend at "
                    f"{url} accepts requests up to {_mb(max_body_bytes)}; use a smaller photo (e.g. a JPEG), or "
                    f"start the backend with a larger --max-body-mb")
            raise PhotoTooLarge(
                f"photo {name} (photo {i + 1} of {len(frames)}) does not fit in the request: the photos up to it "
                f"need {_mb(total)} as base64, and the backend at {url} accepts requests up to "
                f"{_mb(max_body_bytes)}; choose fewer or smaller photos, or start the backend with a larger "
                f"--max-body-mb")
        out.append({**fr, "image": _file_base64(path, "photo")})
    return {**payload, "frames": out}


def image_names(payload: dict) -> dict[int, str]:
    """``{i: file name}`` of the ``frames[i].image`` values that name files here (before
    :func:`inline_images` replaces them by their bytes), for :func:`name_inlined`."""
    frames = payload.get("frames")
    if not isinstance(frames, list):
        return {}
    return {i: os.path.basename(os.path.expanduser(fr["image"])) for i, fr in enumerate(frames)
            if isinstance(fr, dict) and is_local_file(fr.get("image"))}


def name_inlined(message: str, names: dict[int, str]) -> str:
    """A backend message about ``frames[i].image`` sent as bytes (``<base64>`` there) with the
    file's name instead, so the user learns which photo of a sequence is damaged."""
    def sub(m):
        i = int(m.group(1))
        return f"frames[{i}].image: {names[i]}" if i in names else m.group(0)

    return re.sub(r"frames\[(\d+)\]\.image: <base64>", sub, message)


def inline_video(payload: dict, max_body_bytes: int | None = None) -> dict:
    """A copy of ``payload`` whose ``video.path``, when it names a video file here that fits in one
    request, is replaced by ``video.data``: the file's bytes, base64 (a backend elsewhere cannot
    open the path). A video over ``max_body_bytes``, an image folder or a glob stays a path: the
    backend streams it from its own disk with no size limit, which works when it runs on this
    machine (the usual local ``posediff serve``); else it answers that the file is not found.

    Raises:
        BackendError: the video file cannot be read.
    """
    video = payload.get("video")
    if not isinstance(video, dict) or not isinstance(video.get("path"), str) or not os.path.isfile(video["path"]):
        return payload
    path = video["path"]
    if max_body_bytes is not None and base64_size(os.path.getsize(path)) + JSON_OVERHEAD > max_body_bytes:
        return payload
    rest = {k: v for k, v in video.items() if k != "path"}
    return {**payload, "video": {**rest, "data": _file_base64(path, "video")}}


def path_not_seen_hint(path: str, max_body_bytes: int | None, url: str = "the backend") -> str:
    """Why a video sent as a path was not found by the backend, and what to do (for messages)."""
    if os.path.isfile(path):
        size = os.path.getsize(path)
        why = (f"the video ({_mb(size)}, {_mb(base64_size(size))} as base64) is over the backend's upload limit "
               f"of {_mb(max_body_bytes)}, so it was sent as a path" if max_body_bytes else "the video was sent as a path")
        fix = "run the backend on this machine, or start it with a larger --max-body-mb"
    else:
        why = "an image sequence is sent as its folder's path"
        fix = "run the backend on this machine, or make the images a video file"
    return f"{why}, and the backend at {url} cannot see this machine's files: {fix}"


#: Image files an image sequence is made of (the backend's ``backend.vision.video.IMAGE_EXTENSIONS``,
#: HEIC too: an iPhone's burst; the video operator's file filter uses it too).
SEQUENCE_IMAGE_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", *HEIF_EXT)
#: Frames of one request (the backend's ``schemas.MAX_FRAMES``) and the rate of an image sequence.
MAX_FRAMES = 64
SEQUENCE_FPS = 25.0


#: A frame index or a time in seconds, as ``video.start`` / ``video.end`` take them (the backend's
#: ``schemas.FrameTime``): ``"12"``, ``"0.5s"``.
FRAME_TIME = re.compile(r"^\s*\d+(\.\d+)?\s*s?\s*$")


def _frame_index(value, fps: float) -> int | None:
    """``"12"`` -> 12, ``"0.5s"`` -> ``round(0.5 * fps)``, empty -> None; ValueError otherwise."""
    if value is None or str(value).strip() == "":
        return None
    v = str(value).strip()
    if v.endswith("s"):
        x = float(v[:-1])
        if x < 0:
            raise ValueError(v)
        return int(round(x * fps))
    n = int(v)
    if n < 0:
        raise ValueError(v)
    return n


def natural_key(path: str) -> list:
    """Sort key of an image sequence's files as the backend orders them (``backend.vision.video.natural_key``)
    and Blender numbers them: digit runs compared as numbers (``frame2`` before ``frame10``)."""
    return [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r"(\d+)", str(path))]


def sequence_images(folder: str) -> list[str]:
    """The image files of a sequence's folder in the order the backend reads them (natural name order,
    :data:`SEQUENCE_IMAGE_EXT`; ``backend.vision.video.open_frames``)."""
    return sorted((os.path.join(folder, f) for f in os.listdir(folder) if f.lower().endswith(SEQUENCE_IMAGE_EXT)),
                  key=natural_key)


def inline_image_sequence(payload: dict, max_body_bytes: int | None = None) -> tuple[dict, list[int] | None]:
    """An image sequence sent as a folder (``video.path``) turned into ``frames`` of images plus
    ``sequence.fps``, when its kept frames (``every``, ``start``, ``end`` applied here as the backend
    would, in name order at 25 fps) fit in one request; :func:`inline_images` then sends their bytes.

    Returns:
        (payload, the kept images' indices in the folder, or None when the payload is unchanged: a
        video, too many frames, over ``max_body_bytes``, or settings the backend should judge).
    """
    video = payload.get("video")
    if not isinstance(video, dict) or not isinstance(video.get("path"), str) or not os.path.isdir(video["path"]):
        return payload, None
    folder = video["path"]
    images = sequence_images(folder)
    try:
        every = int(video.get("every", 1))
        start = _frame_index(video.get("start"), SEQUENCE_FPS) or 0
        end = _frame_index(video.get("end"), SEQUENCE_FPS)
    except (TypeError, ValueError):
        return payload, None
    if every < 1:
        return payload, None
    keep = list(range(start, len(images) if end is None else min(end, len(images)), every))
    if not keep or len(keep) > MAX_FRAMES:
        return payload, None
    total = JSON_OVERHEAD + sum(base64_size(os.path.getsize(images[i])) for i in keep)
    if max_body_bytes is not None and total > max_body_bytes:
        return payload, None
    frame = {k: video[k] for k in ("camera",) if video.get(k) is not None}
    frames = [{"image": images[i], **frame} for i in keep]
    if video.get("person") is not None:
        frames[0]["person"] = video["person"]  # picked on the first frame, then followed by the backend
    rest = {k: v for k, v in payload.items() if k != "video"}
    seq = {**(payload.get("sequence") or {}), "fps": SEQUENCE_FPS / every}
    return {**rest, "frames": frames, "sequence": seq}, keep
