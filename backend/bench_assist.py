"""``posediff bench`` rows through the real HTTP server: pose assist (drags of small pin moves) and
a video estimate (what the add-on's *Estimate from video* waits for).

A drag: a held-out Human3.6M pose (S9/S11) placed in the world, four pins (wrists and ankles),
one cold ``POST /v1/assist``, then ``MOVES`` updates that each move the left wrist by
``STEP_M`` in a fixed direction, every update warm-started from the previous answer (what the
add-on sends). Measured per update, client side: wall time (JSON both ways included), the
largest joint motion divided by the pin motion, the pins' error; and the prior's plausibility
score (denoiser disagreement, mm) of the assisted poses next to that of real held-out poses.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request

import numpy as np

MOVES = 30
STEP_M = 0.005
#: Frames of the video row's clip.
VIDEO_FRAMES = 40
PINS = ("left_wrist", "right_wrist", "left_ankle", "right_ankle")
READY = "posediff serving on "
SAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "samples", "image2.jpeg")


def start_server(prior: str | None, device: str | None) -> tuple[subprocess.Popen, str, str]:
    """``posediff serve --port 0 [--prior PRIOR]`` as a subprocess; returns (process, base URL, token)."""
    token = secrets.token_hex(16)
    cmd = [sys.executable, "-m", "backend", "serve", "--port", "0"]
    if prior:
        cmd += ["--prior", str(prior)]
    if device:
        cmd += ["--device", device]
    proc = subprocess.Popen(cmd, env={**os.environ, "POSEDIFF_TOKEN": token, "PYTHONUNBUFFERED": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    t0 = time.monotonic()
    for line in proc.stdout:
        if line.startswith(READY):
            return proc, line[len(READY):].split()[0], token
        if time.monotonic() - t0 > 120:
            break
    proc.kill()
    raise RuntimeError("posediff serve did not start")


def _post(url: str, token: str, body: dict, route: str = "/v1/assist", gzip_body: bool = False) -> dict:
    data, headers = json.dumps(body).encode(), {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    if gzip_body:
        import gzip

        data, headers["Content-Encoding"] = gzip.compress(data, 6), "gzip"
    req = urllib.request.Request(url + route, data=data, method="POST", headers=headers)
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.loads(r.read())


def write_clip(path: str, frames: int = VIDEO_FRAMES, fps: float = 25.0) -> None:
    """A video of the sample photo's person sliding 2 px a frame across a white 640-px-wide frame,
    360 px tall (mp4v, OpenCV), for the video row."""
    import cv2

    from backend.vision.photo import load_image

    im = load_image(str(SAMPLE)).rgb
    small = cv2.resize(im, (int(im.shape[1] * 360 / im.shape[0]), 360))
    vw = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), fps, (640, 360))
    for i in range(frames):
        f = np.full((360, 640, 3), 255, np.uint8)
        f[:, 2 * i : 2 * i + small.shape[1]] = small
        vw.write(np.ascontiguousarray(f[..., ::-1]))
    vw.release()


#: What the add-on sends back of each frame for *Use in track* (``addon/track_data.py``; the fields
#: ``backend.sequence.add_track`` reads).
TRACK_HYPOTHESIS_FIELDS = ("joints", "score", "root_translation", "camera_pitch_deg", "camera_roll_deg", "reprojection_error_px")
TRACK_FRAME_FIELDS = ("aggregate", "camera", "keypoints", "warnings")
#: Frames of the long clip of the track row: 60 s at 25 fps.
LONG_CLIP_FRAMES = 1500


def track_row(url: str, token: str, res: dict) -> list[str]:
    """*Use in track* on a 60 s clip: the video row's response repeated to :data:`LONG_CLIP_FRAMES`
    frames, sent back as the add-on sends it (its solver's fields, gzip) to ``POST /v1/track``."""
    frames = [res["frames"][i % len(res["frames"])] for i in range(LONG_CLIP_FRAMES)]
    whole = len(json.dumps(frames, separators=(",", ":")))
    slim = [{**{k: fr[k] for k in TRACK_FRAME_FIELDS if fr.get(k) is not None},
             "hypotheses": [{k: h[k] for k in TRACK_HYPOTHESIS_FIELDS if h.get(k) is not None} for h in fr["hypotheses"]]}
            for fr in frames]
    body = {"frames": slim, "sequence": {"fps": 25.0, "fixed": {str(LONG_CLIP_FRAMES // 2): 1}}}
    t0 = time.perf_counter()
    out = _post(url, token, body, "/v1/track", gzip_body=True)
    t = time.perf_counter() - t0
    assert len(out["frames"]) == LONG_CLIP_FRAMES
    return ["track re-solve over HTTP (Use in track)", f"{LONG_CLIP_FRAMES} frames x 20", f"{t * 1000:.0f}",
            f"a 60 s clip at 25 fps; the add-on's request (gzip) and the response's JSON included; the frames "
            f"whole would be {whole / 2**20:.0f} MB (over the 32 MB body limit)"]


def video_row(url: str, token: str) -> tuple[list[str], dict]:
    """One ``POST /v1/estimate`` of a :data:`VIDEO_FRAMES`-frame clip by path, 20 hypotheses a frame;
    returns the row and the response."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="posediff-bench-") as tmp:
        clip = os.path.join(tmp, "clip.mp4")
        write_clip(clip)
        t0 = time.perf_counter()
        res = _post(url, token, {"video": {"path": clip}, "num_hypotheses": 20, "seed": 0}, "/v1/estimate")
        t = time.perf_counter() - t0
    n = len(res["frames"])
    return ["video estimate over HTTP", f"{n} frames 640x360", f"{t * 1000 / n:.0f} / frame",
            f"target <= 300 ms/frame; detection, camera turn, track and JSON included; a 10 s clip at 25 fps "
            f"~{t / n * 250:.0f} s"], res


def drag(url: str, token: str, pose: np.ndarray, seed: int = 0) -> dict:
    """One drag from ``pose`` (``[J, 3]`` world metres); returns per-update arrays."""
    from backend.skeleton import JOINT_INDEX

    known = {n: pose[JOINT_INDEX[n]].tolist() for n in PINS}
    prev = np.asarray(_post(url, token, {"known": known, "seed": seed})["joints"])
    step = np.array([0.8, 0.4, 0.45]) / np.linalg.norm([0.8, 0.4, 0.45]) * STEP_M
    out = {k: [] for k in ("ms", "ratio", "pin_mm", "plaus")}
    for _ in range(MOVES):
        known["left_wrist"] = (np.asarray(known["left_wrist"]) + step).tolist()
        t0 = time.perf_counter()
        res = _post(url, token, {"known": known, "previous": prev.tolist(), "seed": seed})
        out["ms"].append((time.perf_counter() - t0) * 1000)
        cur = np.asarray(res["joints"])
        out["ratio"].append(np.linalg.norm(cur - prev, axis=-1).max() / STEP_M)
        out["pin_mm"].append(max(np.linalg.norm(cur[JOINT_INDEX[n]] - known[n]) for n in PINS) * 1000)
        out["plaus"].append(res["plausibility_mm"])
        prev = cur
    return {k: np.asarray(v) for k, v in out.items()}


def rows(args, num_drags: int = 3) -> list[list[str]]:
    """Bench rows: assist latency, motion ratio, pin error, plausibility vs real poses."""
    import torch

    from backend.evaluate import eval_frames
    from backend.prior.model import load_prior
    from backend.prior.sampler import GuidedSampler

    poses = eval_frames(("S9", "S11"), 50, seed=1)
    from backend.prior.registry import resolve

    proc, url, token = start_server(args.prior, args.device)
    try:
        runs = [drag(url, token, poses[i] + np.array([0.5, -0.2, 1.0]), seed=i) for i in range(num_drags)]
        video = []
        if os.path.exists(SAMPLE) and getattr(args, "only", "all") != "assist":
            row, res = video_row(url, token)
            video = [row, track_row(url, token, res)]
    finally:
        proc.terminate()
        proc.wait(30)
    m = {k: np.concatenate([r[k] for r in runs]) for k in runs[0]}
    smp = GuidedSampler(load_prior(resolve(args.prior)[1], "cpu"))
    real = -smp.plausibility(torch.tensor(poses - poses[:, :1], dtype=torch.float32)).numpy() * 1000
    n = len(m["ms"])
    return [
        ["assist update over HTTP (median)", f"{num_drags} drags x {MOVES}", f"{np.median(m['ms']):.0f}",
         f"target <= 150 ms; p90 {np.percentile(m['ms'], 90):.0f} ms; {STEP_M * 1000:.0f} mm wrist moves, 4 pins"],
        ["  joint motion / pin motion", f"{n} updates", "-",
         f"target <= 3; median {np.median(m['ratio']):.2f}, max {m['ratio'].max():.2f}"],
        ["  pin error", f"{n} updates", "-", f"target <= 10 mm; max {m['pin_mm'].max():.3f} mm"],
        ["  plausibility (denoiser disagreement)", f"{n} poses", "-",
         f"assisted {np.mean(m['plaus']):.1f} mm (max {np.max(m['plaus']):.1f}); real S9/S11 poses "
         f"{real.mean():.1f} mm (5-95 %: {np.percentile(real, 5):.1f}-{np.percentile(real, 95):.1f})"],
    ] + video
