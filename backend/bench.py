"""``posediff bench``: speed tables on this machine (printed, never asserted in tests).

Rows: unconditional generation of 256 poses; estimation of one frame with 20 hypotheses from
keypoints, with the time split between the denoiser, the guidance and the root solve; a 40-frame
sequence from keypoints (frames x hypotheses in one batch, track included); 2D
detection of one photo; photo -> 20 hypotheses end to end; pose assist through the HTTP server
(:mod:`backend.bench_assist`; ``--only assist`` runs just those).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def _timed(fn, repeats: int) -> tuple[float, object]:
    fn()  # warm-up
    ts, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts)), out


def run(args) -> int:
    from backend.evaluate import H36M_K, eval_frames, lift_case, print_table
    from backend.http import schemas
    from backend.prior.evidence import KeypointEvidence
    from backend.prior.sampler import Conditions
    from backend.service import ESTIMATE_STEPS, PHOTO_OVERSAMPLE, PoseService, keypoint_arrays

    if getattr(args, "only", "all") == "assist":
        from backend.bench_assist import rows as assist_rows

        print_table(f"posediff bench (assist only): torch threads {torch.get_num_threads()}", ["task", "size", "ms", "notes"],
                    assist_rows(args))
        return 0
    t0 = time.perf_counter()
    svc = PoseService(args.prior, args.device)
    load_s = time.perf_counter() - t0
    rows = [["load prior", "-", f"{load_s * 1000:.0f}", ""]]
    n = args.repeats
    t, _ = _timed(lambda: svc.generate(schemas.GenerateRequest(num=256, seed=0)), n)
    rows.append(["generate 256 poses", "256", f"{t * 1000:.0f}", "target <= 2000 ms"])

    pose = eval_frames(("S1",), 1, seed=0)[0]
    kps, _, _ = lift_case(pose, np.random.default_rng(0))
    uv, conf = keypoint_arrays(kps, "keypoints")
    smp = svc.sampler(None, ESTIMATE_STEPS)
    cond = Conditions(evidence=KeypointEvidence(uv, conf, H36M_K, device=svc.device))
    t, res = _timed(lambda: smp.sample(20, cond, seed=0), n)
    tm = res.timings
    split = f"denoiser {tm['denoiser'] * 1000:.0f} ms, guidance {(tm['guidance'] - tm['root_solve']) * 1000:.0f} ms, root solve {tm['root_solve'] * 1000:.0f} ms"
    rows.append(["estimate from keypoints (sampler)", "20 drawn", f"{t * 1000:.0f}", f"target <= 1000 ms; {split}"])
    req = schemas.EstimateRequest(frames=[{"keypoints": kps, "camera": H36M_K.as_dict()}], num_hypotheses=20)
    t, _ = _timed(lambda: svc.estimate(req), n)
    rows.append(["  through the service", f"{20 * PHOTO_OVERSAMPLE} drawn, 20 kept", f"{t * 1000:.0f}",
                 "target <= 1000 ms; best-scored 20 kept, response building included"])

    from backend.eval_sequence import clip_request, make_clips
    from backend.sequence import SEQUENCE_OVERSAMPLE

    _, clip = make_clips(("S1",), 1, 40, seed=0)[0]
    seq = schemas.EstimateRequest.model_validate(clip_request(clip, np.random.default_rng(0), num=20)[0])
    t, _ = _timed(lambda: svc.estimate(seq), max(1, min(n, 2)))
    rows.append(["sequence from keypoints (track)", f"40 frames x {20 * SEQUENCE_OVERSAMPLE} drawn", f"{t * 1000 / 40:.0f} / frame",
                 "target <= 300 ms/frame; frames x hypotheses batched, track solve included"])

    photo = SAMPLES / "image2.jpeg"
    if photo.exists():
        import tempfile

        from backend.bench_assist import VIDEO_FRAMES, write_clip

        with tempfile.TemporaryDirectory(prefix="posediff-bench-") as tmp:
            clip = str(Path(tmp) / "clip.mp4")
            write_clip(clip)
            vreq = schemas.EstimateRequest.model_validate({"video": {"path": clip}, "num_hypotheses": 20, "seed": 0})
            t, _ = _timed(lambda: svc.estimate(vreq), 1)
        rows.append(["video estimate (service)", f"{VIDEO_FRAMES} frames 640x360", f"{t * 1000 / VIDEO_FRAMES:.0f} / frame",
                     "target <= 300 ms/frame; detection, camera turn and track included (over HTTP: below)"])
        from backend.vision.photo import load_image

        ph = load_image(str(photo))
        t, _ = _timed(lambda: svc.detector.detect(ph), n)
        rows.append(["detect (BlazePose full)", "1 image", f"{t * 1000:.0f}", "target <= 100 ms"])
        req = schemas.EstimateRequest(frames=[{"image": str(photo)}], num_hypotheses=20)
        t, _ = _timed(lambda: svc.estimate(req), n)
        rows.append(["photo -> 20 hypotheses (service)", "1 image", f"{t * 1000:.0f}", "target <= 1500 ms; detection included"])
        import itertools

        import cv2

        from backend.camera import default_intrinsics
        from backend.vision.camera_motion import CameraMotion

        w, h = 1280, 720  # a cluttered 720p frame (boxes of random colours) and the same turned by ~0.5 deg
        rng = np.random.default_rng(0)
        frame = np.full((h, w, 3), 128, np.uint8)
        for _ in range(600):
            x, y, bw, bh = (int(v) for v in rng.integers(0, [w, h, 80, 80]))
            cv2.rectangle(frame, (x, y), (x + bw + 10, y + bh + 10), tuple(int(c) for c in rng.integers(0, 255, 3)), -1)
        Kp, est = default_intrinsics(w, h), CameraMotion()
        est.push(frame, Kp)
        turned = np.ascontiguousarray(np.roll(frame, 10, axis=1))
        pair = itertools.cycle([turned, frame])  # each push a frame turned from the one before
        t, _ = _timed(lambda: est.push(next(pair), Kp), n)
        rows.append(["  camera turn of a video frame", f"{w}x{h}", f"{t * 1000:.0f}",
                     "added per frame of a video or image sequence (background corners, flow, RANSAC, the turn and zoom)"])
        from backend.vision.shot_cuts import ShotCuts

        cuts, big = ShotCuts(), cv2.resize(frame, (1920, 1080))
        # a pan, 10 px a frame: the dissolve search has windows whose ends are other views
        pan = itertools.cycle([ShotCuts.small(np.ascontiguousarray(np.roll(big, 10 * k, axis=1))) for k in range(60)])
        ahead = next(pan)

        def decide():
            nonlocal ahead
            frame_now, ahead = ahead, next(pan)
            cuts.decide(frame_now, ahead)

        for _ in range(40):
            decide()  # the dissolve window full
        t, _ = _timed(decide, n)
        t += _timed(lambda: ShotCuts.small(big), n)[0]
        rows.append(["  shot cuts of a video frame", "1920x1080", f"{t * 1000:.1f}",
                     "added per frame of a video or image sequence (content change, cuts, fades, dissolves)"])
    from backend.bench_assist import rows as assist_rows

    rows += assist_rows(args)
    print_table(f"posediff bench: device {svc.device}, torch threads {torch.get_num_threads()}, median of {n}",
                ["task", "size", "ms", "notes"], rows)
    return 0
