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


def _framed(im: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]]:
    """``im`` centred in a black ``size`` (width, height) frame, JPEG-compressed as a video platform
    shows it; and where it begins (x0, y0)."""
    import cv2

    W, H = size
    out = np.zeros((H, W, 3), np.uint8)
    x0, y0 = (W - im.shape[1]) // 2, (H - im.shape[0]) // 2
    out[y0 : y0 + im.shape[0], x0 : x0 + im.shape[1]] = im
    ok, enc = cv2.imencode(".jpg", np.ascontiguousarray(out[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 70])
    return np.ascontiguousarray(cv2.imdecode(enc, cv2.IMREAD_COLOR)[..., ::-1]), (x0, y0)


def test_black_bars_are_not_the_picture_the_camera_filmed(tmp_path):
    """A portrait clip pillarboxed in a landscape frame, a film scene letterboxed: the default camera
    is the picture's (its focal length from the picture's size, its principal point at its centre;
    the padded frame's would be 1.8x too long for the pillarbox); the sample photos, a photo with one
    dark side, a black frame, a portrait-mode photo (blurred sides) and a photo with EXIF are left as
    they were; a picture set into a blurred fill of itself (re-uploads) is found like one in bars. ``posediff eval lift
    --protocol photo --settings "no EXIF,no EXIF pillarboxed"``: taking the padded frame costs 1.7 /
    3.9 mm best-of-1 / best-of-20 and doubles the depth error (35 -> 73 %)."""
    from backend.vision.borders import content_box

    im = np.asarray(Image.open(SAMPLES / "image2.jpeg").convert("RGB"))  # 399 x 640, portrait
    pillar, (x0, _) = _framed(im, (1138, 640))
    K = intrinsics_for(Photo(pillar, None, (1138, 640), 1.0, "clip"))
    ref = default_intrinsics(399, 640)
    assert K.fx == pytest.approx(ref.fx, rel=0.01) and K.fx < 0.6 * default_intrinsics(1138, 640).fx
    assert K.cx == pytest.approx(x0 + 399 / 2, abs=3) and K.cy == pytest.approx(320, abs=1) and (K.width, K.height) == (1138, 640)
    # the same through a downscaled copy (the box is in original pixels)
    small = np.ascontiguousarray(pillar[::2, ::2])
    assert intrinsics_for(Photo(small, None, (1138, 640), 0.5, "clip")).fx == pytest.approx(K.fx, rel=0.01)
    wide = np.asarray(Image.fromarray(im).resize((640, 268)))  # a 2.39:1 film picture
    letter, (_, y0) = _framed(wide, (640, 360))
    box = content_box(letter)
    assert box is not None and abs(box[1] - y0) <= 3 and abs(box[3] - (y0 + 268)) <= 3 and (box[0], box[2]) == (0, 640)
    for f in ("image1.png", "image2.jpeg", "image3.jpeg"):
        assert content_box(np.asarray(Image.open(SAMPLES / f).convert("RGB"))) is None, f
    one_side = im.copy()
    one_side[:, :80] = 0  # a dark wall on one side is the picture's own
    assert content_box(one_side) is None and content_box(np.zeros_like(im)) is None
    # a person centred on a black studio backdrop: dark on both sides, but no straight edge of a picture
    # (without the edge rule: taken as a 180 px wide picture in bars)
    studio = np.zeros((640, 640, 3), np.uint8)
    yy, xx = np.mgrid[:640, :640]
    studio[((xx - 320) / 90.0) ** 2 + ((yy - 330) / 290.0) ** 2 < 1] = (180, 150, 130)
    assert content_box(studio) is None
    assert intrinsics_for(Photo(pillar, 26.0, (1138, 640), 1.0, "phone")).fx > K.fx  # EXIF: the file's own lens
    # a re-upload's fill: the picture itself, enlarged and blurred, behind it
    import cv2

    big = cv2.resize(im, (1138, round(640 * 1138 / 399)))
    y = (big.shape[0] - 640) // 2
    fill = (cv2.GaussianBlur(big[y : y + 640], (0, 0), 25) * 0.6).astype(np.uint8)
    fill[:, x0 : x0 + 399] = im
    box = content_box(fill)
    assert box is not None and abs(box[0] - x0) <= 8 and abs(box[2] - (x0 + 399)) <= 8 and (box[1], box[3]) == (0, 640)
    # a portrait-mode photo (its sides blurred, no edge between) is one picture
    mask = np.clip(np.abs(np.arange(399) - 200) / 120.0 - 0.3, 0, 1)[None, :, None]
    portrait = (im * (1 - mask) + cv2.GaussianBlur(im, (0, 0), 12) * mask).astype(np.uint8)
    assert content_box(portrait) is None


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


def test_a_lens_given_in_35mm_terms_wins_over_exif_and_the_default(tmp_path):
    """``camera.focal_35mm`` (the user's lens) is used where fx / fy are not given: before the photo's
    EXIF and the default 40 mm; for keypoints without a photo too (``resolve_intrinsics``)."""
    from backend.camera import intrinsics_from_focal_35mm, resolve_intrinsics

    exif50 = load_image(str(_jpeg_with_exif(tmp_path / "f50.jpg", tags={0xA405: 50})))
    assert intrinsics_for(exif50, {"focal_35mm": 77.0}).fx == pytest.approx(intrinsics_from_focal_35mm(77.0, 60, 40).fx)
    assert intrinsics_for(exif50, {"focal_35mm": 77.0, "fx": 123.0}).fx == 123.0  # pixels win
    plain = load_image(str(SAMPLES / "image1.png"))
    assert intrinsics_for(plain, {"focal_35mm": 26.0}).fx == pytest.approx(intrinsics_from_focal_35mm(26.0, 384, 640).fx)
    K = resolve_intrinsics({"width": 1920, "height": 1080, "focal_35mm": 120.0}, None, None)
    assert K.fx == pytest.approx(120.0 * math.hypot(1920, 1080) / math.hypot(36, 24)) and K.cx == 960.0
    assert resolve_intrinsics({"width": 1920, "height": 1080}, None, None).fx == default_intrinsics(1920, 1080).fx


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
