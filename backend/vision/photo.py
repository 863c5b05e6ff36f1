"""Loading photos for the 2D detector: file path or base64, EXIF orientation and focal length.

Formats: whatever Pillow reads (PNG, JPEG, WebP, BMP, TIFF, ...) and HEIC / HEIF, a phone's
default (through ``pillow-heif``). :func:`upright_jpeg` gives the photo back as the backend sees
it, upright, for clients that cannot decode the file themselves (Blender reads no HEIC).

A :class:`Photo` holds the decoded RGB pixels plus what the camera model needs from the file:
the 35 mm-equivalent focal length from EXIF and the original (oriented) image size. Very large
images are downscaled on load (longest side at most :data:`MAX_SIDE` pixels); ``Photo.scale``
records the factor so that pixel coordinates can be mapped back to the original image.

Image pixel coordinates follow ``shared/design/CONTRACT.md``: (0, 0) is the top-left corner of
the image, so the centre of pixel (i, j) is (i + 0.5, j + 0.5) and the image centre is (w/2, h/2).

Every failure to read an image raises :class:`backend.errors.InputError` naming the request
field with a one-line reason.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import os
import re
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from backend.camera import DEFAULT_FOCAL_35MM, Intrinsics, intrinsics_from_focal_35mm, resolve_intrinsics
from backend.errors import InputError

try:  # HEIC / HEIF, what iPhones (and many Android phones) store photos as: libheif through pillow-heif
    import pillow_heif

    pillow_heif.register_heif_opener()  # its transforms (irot / imir) are applied and EXIF orientation set to 1
    HEIF = True
except ImportError:  # pragma: no cover - a dependency in pyproject.toml; named in the error where missing
    HEIF = False

#: Longest side (pixels) of the decoded image kept in memory; larger images are downscaled.
MAX_SIDE = 4096
#: Shortest side (pixels) of a photo worth looking at: nobody is found in a smaller one.
MIN_SIDE = 16
#: Images with more pixels than this are refused as decompression bombs (Pillow's own hard
#: limit, twice ``Image.MAX_IMAGE_PIXELS``: about 179 million pixels, e.g. 16000 x 11000).
MAX_PIXELS = 2 * Image.MAX_IMAGE_PIXELS
#: Diagonal of a 35 mm film frame, millimetres (CIPA DC-008 equivalence).
_DIAG_35MM = math.hypot(36.0, 24.0)

# EXIF tags (Exif IFD 0x8769 unless noted)
_EXIF_IFD = 0x8769
_FOCAL_LENGTH = 0x920A
_FOCAL_35MM = 0xA405
_FOCAL_PLANE_XRES = 0xA20E
_FOCAL_PLANE_YRES = 0xA20F
_FOCAL_PLANE_UNIT = 0xA210
_EXIF_WIDTH = 0xA002
_EXIF_HEIGHT = 0xA003
#: FocalPlaneResolutionUnit -> millimetres per unit (2 inch, 3 cm, 4 mm, 5 micrometre).
_UNIT_MM = {1: 25.4, 2: 25.4, 3: 10.0, 4: 1.0, 5: 0.001}

_DATA_URL = re.compile(r"^data:image/[\w.+-]+;base64,", re.IGNORECASE)
_B64_CHARS = re.compile(r"^[A-Za-z0-9+/=\s_-]+$")


@dataclass
class Photo:
    """A decoded photo.

    Attributes:
        rgb: ``[H, W, 3]`` uint8 RGB pixels, EXIF orientation applied, possibly downscaled.
        focal_35mm: 35 mm-equivalent focal length (mm) from EXIF, or None when not derivable.
        original_size: ``(width, height)`` of the oriented original image, pixels.
        scale: ``rgb`` size / original size (1.0 unless the image was downscaled); a point
            ``(u, v)`` in ``rgb`` is ``(u / scale, v / scale)`` in the original image.
        name: file name, or ``"<base64>"`` for inline data.
        default_focal_35mm: the lens assumed where neither the request nor ``focal_35mm`` gives one
            (mm): :data:`backend.camera.DEFAULT_FOCAL_35MM` for photos, a video's frames
            :data:`backend.camera.DEFAULT_FOOTAGE_FOCAL_35MM`.
        mirrored: ``rgb`` is the file's picture flipped left-right (a mirror-image picture made
            the camera's own, :func:`backend.vision.mirror.mirror_photo`); a request's ``cx`` is of
            the picture as given and is flipped by :func:`intrinsics_for`.
    """

    rgb: np.ndarray
    focal_35mm: float | None
    original_size: tuple[int, int]
    scale: float
    name: str
    default_focal_35mm: float = DEFAULT_FOCAL_35MM
    mirrored: bool = False

    def to_original(self, uv: np.ndarray) -> np.ndarray:
        """Pixel coordinates ``[..., 2]`` in ``rgb`` -> original image pixels ``[..., 2]``."""
        return np.asarray(uv, np.float64) / self.scale


def _read_source(source: str, field: str) -> tuple[bytes, str]:
    """Raw bytes and a display name from a path, a data: URL or bare base64."""
    if not isinstance(source, str) or not source.strip():
        raise InputError(field, "empty; give a file path or base64-encoded PNG/JPEG data")
    s = source.strip()
    m = _DATA_URL.match(s)
    if m:
        return decode_base64(s[m.end():], field), "<base64>"
    if len(s) < 4096 and "\n" not in s:
        path = os.path.expanduser(s)
        if os.path.isfile(path):
            try:
                with open(path, "rb") as fh:
                    return fh.read(), os.path.basename(path)
            except OSError as e:
                raise InputError(field, f"cannot read file {s!r}: {e.strerror or e}") from None
        if os.path.isdir(path):
            raise InputError(field, f"{s!r} is a folder; give the path of a PNG or JPEG file")
        # not a file: accept it as base64 only if it decodes to image bytes
        data = _try_b64(s)
        if data is not None and (data.startswith(_IMAGE_MAGIC) or data[4:8] == b"ftyp"):  # ftyp: HEIC / HEIF
            return data, "<base64>"
        if data is not None and len(s) >= 16 and not os.path.splitext(s)[1]:
            raise InputError(field, "not an existing file, and its base64 data is not a PNG/JPEG image")
        raise InputError(field, f"file not found: {s!r}; give an existing image path or base64 PNG/JPEG data")
    if not _B64_CHARS.match(s):
        raise InputError(field, "neither an existing file nor base64 data; give a PNG/JPEG path or base64 string")
    return decode_base64(s, field), "<base64>"


#: Leading bytes of image files Pillow reads (PNG, JPEG, GIF, BMP, WebP/RIFF, TIFF).
_IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8", b"GIF8", b"BM", b"RIFF", b"II*\x00", b"MM\x00*")


def _try_b64(s: str) -> bytes | None:
    if not _B64_CHARS.match(s):
        return None
    try:
        return decode_base64(s, "")
    except InputError:
        return None


def decode_base64(data: str, field: str,
                  hint: str = "invalid base64 image data; encode the PNG/JPEG file bytes with base64") -> bytes:
    """Bytes of a base64 string sent in a request (standard or URL-safe alphabet, whitespace and
    missing padding tolerated): the one decoder of photos and uploaded videos.

    Raises:
        InputError: not base64 (field ``field``, message ``hint``).
    """
    data = re.sub(r"\s+", "", data)
    try:
        if "-" in data or "_" in data:
            return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
        return base64.b64decode(data + "=" * (-len(data) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise InputError(field, hint) from None


def _rational(v) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return f if math.isfinite(f) and f > 0 else None


def focal_35mm_from_exif(img: Image.Image) -> float | None:
    """35 mm-equivalent focal length (mm) of a Pillow image's EXIF, or None.

    ``FocalLengthIn35mmFilm`` when present; else ``FocalLength`` x crop factor, the crop factor
    coming from the sensor size given by ``FocalPlaneX/YResolution`` and the image size in pixels.
    """
    try:
        exif = img.getexif()
        ifd = exif.get_ifd(_EXIF_IFD)
    except Exception:  # malformed EXIF must not make a good image unreadable
        return None
    f35 = _rational(ifd.get(_FOCAL_35MM, exif.get(_FOCAL_35MM)))
    if f35:
        return f35
    focal = _rational(ifd.get(_FOCAL_LENGTH))
    xres, yres = _rational(ifd.get(_FOCAL_PLANE_XRES)), _rational(ifd.get(_FOCAL_PLANE_YRES))
    unit = _UNIT_MM.get(int(ifd.get(_FOCAL_PLANE_UNIT, 2) or 2))
    if not (focal and xres and yres and unit):
        return None
    w = _rational(ifd.get(_EXIF_WIDTH)) or img.width
    h = _rational(ifd.get(_EXIF_HEIGHT)) or img.height
    sensor_diag_mm = math.hypot(w / xres * unit, h / yres * unit)
    if not 1.0 < sensor_diag_mm < 200.0:  # implausible sensor: ignore rather than mislead
        return None
    return focal * _DIAG_35MM / sensor_diag_mm


def load_image(source: str, field: str = "image") -> Photo:
    """Decode a photo from a file path or base64 PNG/JPEG (optionally a ``data:`` URL).

    Applies the EXIF orientation, composites transparency over white, reads the focal length
    from EXIF and downscales so that the longest side is at most :data:`MAX_SIDE` pixels.

    Args:
        source: a file path, base64 image bytes, or ``data:image/...;base64,...``.
        field: the request field named in errors (e.g. ``frames[0].image``).
    Returns:
        :class:`Photo`.
    Raises:
        InputError: missing file, invalid base64, not an image, corrupt or truncated data,
            or an image too large to decode safely.
    """
    data, name = _read_source(source, field)
    if not data:
        raise InputError(field, f"{name} is empty (0 bytes); give a PNG or JPEG image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            if img.width * img.height > MAX_PIXELS:
                raise InputError(field, f"image too large ({img.width}x{img.height} pixels); at most {MAX_PIXELS:,} pixels")
            focal = focal_35mm_from_exif(img)
            w0, h0 = img.size
            if img.format == "JPEG" and max(w0, h0) > 2 * MAX_SIDE:
                img.draft("RGB", (w0 * MAX_SIDE // max(w0, h0), h0 * MAX_SIDE // max(w0, h0)))
            img.load()
            exif_orientation = img.getexif().get(0x0112, 1)
            img = ImageOps.exif_transpose(img)
    except InputError:
        raise
    except Image.DecompressionBombError:
        raise InputError(field, f"image too large to decode safely (over {MAX_PIXELS:,} pixels)") from None
    except UnidentifiedImageError:
        heif = data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS
        if heif and not HEIF:  # pragma: no cover - pillow-heif is a dependency
            raise InputError(field, f"{name} is a HEIC/HEIF photo and this backend lacks pillow-heif to decode it: "
                                    "pip install pillow-heif, or export the photo as JPEG") from None
        raise InputError(field, f"{name} is not a recognised image; give a PNG or JPEG file") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise InputError(field, f"{name} is corrupt or truncated ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    # original size after orientation (a draft decode is smaller than the file's size)
    orig = (h0, w0) if exif_orientation in (5, 6, 7, 8) else (w0, h0)
    if min(orig) < MIN_SIDE:
        raise InputError(field, f"{name} is only {orig[0]}x{orig[1]} pixels; give a photo at least {MIN_SIDE} pixels "
                                "on each side with the whole person in it")
    img = _to_rgb(img)
    scale = img.width / orig[0]
    if max(img.size) > MAX_SIDE:
        s = MAX_SIDE / max(orig)
        img = img.resize((max(1, round(orig[0] * s)), max(1, round(orig[1] * s))), Image.Resampling.LANCZOS)
        scale = img.width / orig[0]
    rgb = np.ascontiguousarray(np.asarray(img, dtype=np.uint8))
    if rgb.ndim != 3 or rgb.shape[2] != 3 or min(rgb.shape[:2]) < 1:
        raise InputError(field, f"{name}: unsupported image layout {rgb.shape}")
    return Photo(rgb=rgb, focal_35mm=focal, original_size=(int(orig[0]), int(orig[1])), scale=float(scale), name=name)


_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif")


def upright_jpeg(photo: Photo, quality: int = 92) -> bytes:
    """The decoded photo as a JPEG, upright (its EXIF orientation or HEIF transforms applied), at
    the size it was decoded (longest side at most :data:`MAX_SIDE`), for a client that cannot read
    the file itself (Blender has no HEIC decoder).

    Its EXIF keeps what the camera model uses: orientation 1 and the 35 mm-equivalent focal length
    (``FocalLengthIn35mmFilm``, rounded to a millimetre as EXIF stores it), so that estimating the
    JPEG gives the camera that the original would have.

    Args:
        photo: from :func:`load_image`.
    Returns:
        JPEG file bytes, ``photo.rgb``'s size.
    """
    exif = Image.Exif()
    exif[0x0112] = 1
    if photo.focal_35mm:
        exif.get_ifd(_EXIF_IFD)[_FOCAL_35MM] = int(round(photo.focal_35mm))
    buf = io.BytesIO()
    Image.fromarray(photo.rgb).save(buf, "JPEG", quality=quality, exif=exif.tobytes())
    return buf.getvalue()


def _to_rgb(img: Image.Image) -> Image.Image:
    """RGB copy of any Pillow mode; transparent pixels become white."""
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(img, dtype=np.float64)
        a = a / max(a.max(), 1.0) * 255.0
        return Image.fromarray(a.astype(np.uint8)).convert("RGB")
    return img.convert("RGB")


def intrinsics_for(photo: Photo, camera_partial: dict | None = None, field: str = "camera") -> Intrinsics:
    """Camera intrinsics for a photo in ORIGINAL image pixels.

    Priority: values given in the request's ``camera`` (``fx`` / ``fy``, then ``focal_35mm``) > EXIF
    focal length (a video's metadata) > the photo's default lens (``Photo.default_focal_35mm``: 40
    mm, a video's frames 28 mm). Without EXIF the lens is the picture's inside black bars, where the
    image has them (:func:`backend.vision.borders.content_box`: a pillarboxed portrait clip, a
    letterboxed film; its principal point at the picture's centre). A request camera given for
    another resolution of the same image (``width``/``height`` with the same aspect ratio) is
    rescaled to the original image size. A mirrored photo's (``Photo.mirrored``) given ``cx``
    is flipped with it (``width - cx``).

    Args:
        photo: the loaded photo.
        camera_partial: any of ``fx, fy, cx, cy, width, height`` in pixels and ``focal_35mm`` (mm,
            35 mm equivalent; of the picture inside black bars where the frame has them) (None
            values ignored).
        field: request field named in errors.
    Returns:
        :class:`backend.camera.Intrinsics` with ``width, height = photo.original_size``.
    Raises:
        InputError: if ``camera.width/height`` have a different aspect ratio than the image.
    """
    W, H = photo.original_size
    given = (camera_partial or {}).get("focal_35mm")  # the user's lens, before the file's
    p = {k: v for k, v in (camera_partial or {}).items() if v is not None and k in ("fx", "fy", "cx", "cy", "width", "height")}
    pw, ph = p.pop("width", None), p.pop("height", None)
    if pw or ph:
        pw = pw or W * (ph / H)
        ph = ph or H * (pw / W)
        if abs(pw / ph - W / H) > 0.01 * (W / H):
            raise InputError(f"{field}.width", f"camera size {pw:g}x{ph:g} does not match the image's {W}x{H} "
                             "(different aspect ratio); give intrinsics for this image or omit width/height")
        s = W / pw
        p = {k: v * s for k, v in p.items()}
    if photo.mirrored and "cx" in p:  # the request's principal point is of the picture as given
        p["cx"] = W - p["cx"]
    if "fx" not in p and "fy" not in p:
        box = None if photo.focal_35mm and not given else picture_box(photo)
        if photo.focal_35mm and not given:
            base = intrinsics_from_focal_35mm(photo.focal_35mm, W, H)
        elif box is not None:  # the camera filmed the picture inside the bars, not the padded frame
            x0, y0, x1, y1 = box
            base = intrinsics_from_focal_35mm(given or photo.default_focal_35mm, x1 - x0, y1 - y0)
            p.setdefault("cx", (x0 + x1) / 2.0)
            p.setdefault("cy", (y0 + y1) / 2.0)
        else:
            base = intrinsics_from_focal_35mm(given or photo.default_focal_35mm, W, H)
        p["fx"] = p["fy"] = base.fx
    return resolve_intrinsics(p, W, H)


def picture_box(photo: Photo) -> tuple[float, float, float, float] | None:
    """The picture inside the photo's black bars (:func:`backend.vision.borders.content_box`) in
    original image pixels ``(x0, y0, x1, y1)``, or None where it has none."""
    from backend.vision.borders import content_box

    box = content_box(photo.rgb)
    return None if box is None else tuple(float(v) / photo.scale for v in box)
