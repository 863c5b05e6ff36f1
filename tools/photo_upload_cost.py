# SPDX-License-Identifier: GPL-3.0-or-later
"""What sending a photo's bytes instead of its path costs the add-on (``addon/photos.py``).

Makes a 12 MP phone-like JPEG (``samples/image2.jpeg`` upscaled to 4000x3000 with sensor-like
noise, quality 92: about 3 MB, like a phone's), starts the real ``posediff serve`` on a free
loopback port, and times with the add-on's own client:

* reading + base64-encoding the photo (``photos.inline_images``),
* ``POST /v1/detect`` and ``POST /v1/estimate`` (20 hypotheses) with the photo's path and with
  its bytes (base64): the difference is the cost of sending the bytes.

    .venv/bin/python tools/photo_upload_cost.py [--reps 3]

Prints a table (milliseconds, median of ``--reps``). Loopback only: over a real network add the
transfer time of the base64 body (about 4/3 of the file size).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PHOTO = ROOT / "samples" / "image2.jpeg"
POSEDIFF = ROOT / ".venv" / "bin" / "posediff"


def phone_photo(dst: Path, src: Path = PHOTO, size: tuple[int, int] = (4000, 3000), noise: float = 8.0,
                quality: int = 92, seed: int = 0) -> Path:
    """Write a phone-like JPEG: ``src`` resized to ``size`` (width, height, pixels) plus Gaussian
    noise of ``noise`` grey levels (a phone sensor's grain, which is what makes phone JPEGs
    2.5-4 MB rather than the few hundred KB of a smooth upscale). Returns ``dst``."""
    import cv2
    import numpy as np

    img = cv2.resize(cv2.imread(str(src)), size, interpolation=cv2.INTER_CUBIC).astype(np.float32)
    img += np.random.default_rng(seed).normal(0.0, noise, img.shape).astype(np.float32)
    cv2.imwrite(str(dst), np.clip(img, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return dst


def _median_ms(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tools/photo_upload_cost.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=3, help="repetitions per measurement (default 3)")
    a = p.parse_args(argv)
    from addon import photos
    from addon.backend_process import launch
    from addon.client import Client

    with tempfile.TemporaryDirectory(prefix="posediff-upload-") as tmp:
        jpg = phone_photo(Path(tmp) / "phone_12mp.jpg")
        size = jpg.stat().st_size
        by_path = {"frames": [{"image": str(jpg)}]}
        encode_ms = _median_ms(lambda: photos.inline_images(by_path), a.reps)
        by_bytes = photos.inline_images(by_path)
        srv = launch([POSEDIFF], port=0, args=["--device", "cpu"], token="upload-cost-token-0123456789")
        try:
            client = Client(srv.wait_ready(120), "upload-cost-token-0123456789", timeout=600)
            client.request("POST", "/v1/detect", by_path)  # warm-up: detector loaded, caches filled
            rows = []
            for task, extra in (("detect", {}), ("estimate", {"num_hypotheses": 20, "seed": 0})):
                times = {"path": [], "bytes": []}
                for _ in range(a.reps):  # interleaved, so that a change of machine load hits both alike
                    for kind, body in (("path", by_path), ("bytes", by_bytes)):
                        times[kind].append(_median_ms(lambda t=task, b=body, e=extra: client.request(
                            "POST", f"/v1/{t}", {**b, **e}), 1))
                rows.append((task, statistics.median(times["path"]), statistics.median(times["bytes"])))
        finally:
            srv.stop()
    b64 = len(by_bytes["frames"][0]["image"])
    print(f"12 MP JPEG 4000x3000: {size / 2**20:.2f} MB file, {b64 / 2**20:.2f} MB as base64; "
          f"median of {a.reps}, loopback, CPU")
    print(f"read + base64-encode (photos.inline_images): {encode_ms:.1f} ms")
    print(f"{'request':<10} {'path ms':>9} {'bytes ms':>9} {'bytes - path':>13} {'+ encode':>9}")
    for task, t_path, t_bytes in rows:
        print(f"{task:<10} {t_path:9.0f} {t_bytes:9.0f} {t_bytes - t_path:13.0f} {t_bytes - t_path + encode_ms:9.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
