"""backend.vision.photo: decoding photos from paths/base64, EXIF orientation and focal length, errors."""

from __future__ import annotations

import base64
import io
import math
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from backend.camera import DEFAULT_FOCAL_35MM, default_intrinsics
from backend.errors import InputError
from backend.vision.photo import MAX_SIDE, Photo, intrinsics_for, load_image

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def _jpeg_with_exif(path: Path, size=(60, 40), tags: dict | None = None, orientation: int | None = None) -> Path:
    """Write a small JPEG whose Exif IFD holds ``tags`` (tag id -> value) and IFD0 the ``orientation``."""
    img = Image.new("RGB", size, (200, 30, 30))
    img.paste((30, 30, 200), (0, 0, size[0] // 2, size[1] // 2))  # blue top-left quadrant marks orientation
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    ifd = exif.get_ifd(0x8769)
    for k, v in (tags or {}).items():
        ifd[int(k)] = v
    img.save(path, "JPEG", exif=exif, quality=95)
    return path


def test_png_path_rgba_is_composited_over_white():
    p = load_image(str(SAMPLES / "image1.png"))
    assert isinstance(p, Photo)
    assert p.rgb.shape == (640, 384, 3) and p.rgb.dtype == np.uint8
    assert p.original_size == (384, 640) and p.scale == 1.0 and p.name == "image1.png"
    src = np.asarray(Image.open(SAMPLES / "image1.png"))
    assert src.shape[2] == 4
    transparent = src[..., 3] == 0
    if transparent.any():  # transparent pixels become white, not black
        assert (p.rgb[transparent] == 255).all()


def test_base64_and_data_url_decode_to_same_pixels():
    path = SAMPLES / "image2.jpeg"
    ref = load_image(str(path))
    b64 = base64.b64encode(path.read_bytes()).decode()
    for src in (b64, "data:image/jpeg;base64," + b64, b64[:100] + "\n" + b64[100:]):
        p = load_image(src)
        assert p.name == "<base64>"
        np.testing.assert_array_equal(p.rgb, ref.rgb)


def test_small_base64_png_and_a_too_small_one():
    buf = io.BytesIO()
    Image.new("RGB", (24, 16), (1, 2, 3)).save(buf, "PNG")
    p = load_image(base64.b64encode(buf.getvalue()).decode())
    assert p.rgb.shape == (16, 24, 3) and tuple(p.rgb[0, 0]) == (1, 2, 3)
    buf = io.BytesIO()
    Image.new("RGB", (3000, 2), (1, 2, 3)).save(buf, "PNG")
    with pytest.raises(InputError, match="only 3000x2 pixels; give a photo at least 16 pixels"):
        load_image(base64.b64encode(buf.getvalue()).decode(), "frames[0].image")


def test_exif_focal_length_in_35mm_film(tmp_path):
    path = _jpeg_with_exif(tmp_path / "f50.jpg", tags={0xA405: 50})
    p = load_image(str(path))
    assert p.focal_35mm == pytest.approx(50.0)
    K = intrinsics_for(p)
    assert K.fx == pytest.approx(50.0 * math.hypot(60, 40) / math.hypot(36, 24))
    assert (K.cx, K.cy, K.width, K.height) == (30.0, 20.0, 60, 40)


def test_exif_focal_length_times_crop_factor(tmp_path):
    # 35 mm lens on a 23.5 x 15.667 mm sensor photographed at 6000 x 4000 (resolution in pixels per mm)
    tags = {0x920A: 35.0, 0xA20E: 6000 / 23.5, 0xA20F: 4000 / (23.5 * 4000 / 6000), 0xA210: 4, 0xA002: 6000, 0xA003: 4000}
    p = load_image(str(_jpeg_with_exif(tmp_path / "crop.jpg", tags=tags)))
    assert p.focal_35mm == pytest.approx(35.0 * math.hypot(36, 24) / math.hypot(23.5, 23.5 * 4000 / 6000), rel=1e-3)


def test_no_exif_focal_uses_default_field_of_view():
    p = load_image(str(SAMPLES / "image1.png"))
    assert p.focal_35mm is None
    assert intrinsics_for(p) == default_intrinsics(384, 640)
    assert DEFAULT_FOCAL_35MM > 0


def test_exif_orientation_is_applied(tmp_path):
    # orientation 6: the stored image must be rotated 90 degrees clockwise for display
    p = load_image(str(_jpeg_with_exif(tmp_path / "rot.jpg", size=(60, 40), orientation=6)))
    assert p.rgb.shape == (60, 40, 3)
    assert p.original_size == (40, 60)
    # the stored top-left (blue) quadrant ends up top-right after a clockwise turn
    assert p.rgb[5, 35, 2] > 150 and p.rgb[5, 35, 0] < 100
    assert p.rgb[55, 5, 0] > 150


def test_a_heic_photo_is_decoded_upright_with_its_focal_length(tmp_path):
    """An iPhone's default format: a HEIC stored sideways (orientation 6, as libheif writes it: a
    rotation in the file) with a 26 mm-equivalent lens is read upright with that focal length, and
    ``upright_jpeg`` gives it back as a JPEG that loads to the same pixels, size and focal length."""
    from backend.vision.photo import upright_jpeg

    stored = Image.new("RGB", (60, 40), (200, 30, 30))
    stored.paste((30, 30, 200), (0, 0, 30, 20))  # blue top-left quadrant marks orientation
    exif = Image.Exif()
    exif[0x0112] = 6
    exif.get_ifd(0x8769)[0xA405] = 26
    path = tmp_path / "IMG_0001.HEIC"
    stored.save(path, "HEIF", quality=95, exif=exif.tobytes())
    assert path.read_bytes()[4:12] == b"ftypheic"
    p = load_image(str(path))
    assert p.rgb.shape == (60, 40, 3) and p.original_size == (40, 60) and p.focal_35mm == 26
    assert p.rgb[5, 35, 2] > 150 and p.rgb[5, 35, 0] < 100  # turned clockwise: blue top-right
    assert np.array_equal(load_image(base64.b64encode(path.read_bytes()).decode()).rgb, p.rgb)  # sent as bytes
    again = load_image(base64.b64encode(upright_jpeg(p)).decode())
    assert again.rgb.shape == p.rgb.shape and again.focal_35mm == 26
    assert np.abs(again.rgb.astype(int) - p.rgb).mean() < 6
    assert Image.open(io.BytesIO(upright_jpeg(p))).getexif()[0x0112] == 1


def test_camera_request_overrides_exif(tmp_path):
    p = load_image(str(_jpeg_with_exif(tmp_path / "f50.jpg", tags={0xA405: 50})))
    K = intrinsics_for(p, {"fx": 123.0, "cy": 21.0})
    assert (K.fx, K.fy, K.cx, K.cy) == (123.0, 123.0, 30.0, 21.0)
    # a camera given for the same image at twice the resolution is rescaled to this image
    K2 = intrinsics_for(p, {"fx": 246.0, "width": 120, "height": 80})
    assert K2.fx == pytest.approx(123.0) and K2.width == 60
    with pytest.raises(InputError, match="aspect ratio") as e:
        intrinsics_for(p, {"width": 100, "height": 100}, field="frames[0].camera")
    assert e.value.field == "frames[0].camera.width"


def test_huge_image_is_downscaled(tmp_path):
    path = tmp_path / "wide.png"
    Image.new("RGB", (5000, 120), (10, 200, 10)).save(path)
    p = load_image(str(path))
    assert max(p.rgb.shape[:2]) == MAX_SIDE
    assert p.original_size == (5000, 120)
    assert p.scale == pytest.approx(MAX_SIDE / 5000, rel=1e-3)
    np.testing.assert_allclose(p.to_original([[MAX_SIDE, 0.0]]), [[5000.0, 0.0]], rtol=1e-3)


def _png_claiming_size(w: int, h: int) -> bytes:
    """A tiny PNG whose header claims ``w`` x ``h`` pixels (valid CRC): a decompression bomb probe."""
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", w, h)
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr : ihdr + 17])) & 0xFFFFFFFF)
    return bytes(data)


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "file not found"),
        (b"this is not an image\n" * 10, "not a recognised image"),
        (b"", "empty"),
        ("truncated", "corrupt or truncated"),
        ("bomb", "too large"),
    ],
)
def test_bad_files_raise_input_error(tmp_path, content, message):
    path = tmp_path / "bad.jpg"
    if content == "truncated":
        content = (SAMPLES / "image2.jpeg").read_bytes()[:6000]
    elif content == "bomb":
        content = _png_claiming_size(40000, 40000)
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError, match=message) as e:
        load_image(str(path), field="frames[2].image")
    assert e.value.field == "frames[2].image"
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("source, message", [("!!not base64!!", "file not found|neither"),
                                             ("data:image/png;base64,@@@@", "invalid base64"),
                                             (base64.b64encode(b"hello world, not an image").decode(), "not a PNG/JPEG image"),
                                             (base64.b64encode(b"hello world, not an image" * 200).decode(), "not a recognised image"),
                                             ("   ", "empty")])
def test_bad_inline_data_raises_input_error(source, message):
    with pytest.raises(InputError, match=message):
        load_image(source)


def test_url_safe_base64_photo_loads_like_the_file():
    """base64 with the URL-safe alphabet ('-', '_', no padding) decodes to the same photo."""
    import base64
    from pathlib import Path

    from backend.vision.photo import load_image

    path = Path(__file__).resolve().parents[1] / "samples" / "image1.png"
    data = base64.urlsafe_b64encode(path.read_bytes()).decode().rstrip("=")
    assert "-" in data or "_" in data
    a, b = load_image(str(path), "image"), load_image(data, "image")
    assert a.rgb.shape == b.rgb.shape and (a.rgb == b.rgb).all()
