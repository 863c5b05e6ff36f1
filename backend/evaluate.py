"""``posediff eval``: accuracy tables of the prior and of guided sampling (printed, not asserted).

* ``eval lift``: held-out Human3.6M S9/S11, a fixed subsample of frames projected through
  H3.6M-like cameras (f = 1145 px, 1000x1002 image, 4.5-6.5 m away, all around the subject,
  0-20 degrees pitch); MPJPE / PA-MPJPE in mm on the 17 H3.6M joints (root-aligned, camera frame)
  for best-of-1 (top score), best-of-5, best-of-N and the aggregate; settings: exact 2D of all 17
  joints, 2D noise sigma = 4 px, and only the 12 limb joints with noise (what a detector sees).
  This is ``--protocol lab`` (the default); ``--protocol photo`` (:mod:`backend.eval_photo`)
  photographs the poses as people do: phone lenses, any camera height, the subject anywhere in
  the frame, pose subsets away from standing, detector-like 2D errors.
* ``eval complete``: unknown-joint best-of-N MPJPE with legs / arms / one side unknown, and the
  error on known joints; next to the retrieval baseline; and known positions vs the add-on's
  request for a rig of other proportions (known directions), both after a canonical rebuild.
* ``eval prior``: generated poses vs held-out poses (bone-length error, diversity, nearest-neighbour
  distance) after removing yaw.
* ``eval detect``: 2D limb-joint error of the detector on the sample photos' hand labels.
* ``eval sequence``: the track through the hypotheses of consecutive frames against per-frame
  picks (:mod:`backend.eval_sequence`).
* ``eval tracking``: walks filmed by a camera that travels with the person, the track with the
  camera taken as fixed or as moving (:mod:`backend.eval_tracking`).
* ``eval cuts``: edited clips (a cut from one camera to another), the track taken as one camera
  or with the cut given (:mod:`backend.eval_cuts`).

``--prior default,cmu`` (or ``--prior`` repeated) runs each table once per prior on the same
frames and seeds and prints them side by side (:mod:`backend.eval_compare`).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from backend.camera import Intrinsics
from backend.eval_photo import SUBSETS
from backend.metrics import mpjpe, pa_mpjpe
from backend.mocap import datasets as D
from backend.skeleton import H36M17, JOINT_INDEX, JOINT_NAMES, LIMB_JOINTS

H36M_K = Intrinsics(1145.0, 1145.0, 512.0, 515.0, 1000, 1002)


def eval_frames(subjects=D.EVAL_SUBJECTS, n: int = 200, seed: int = 0) -> np.ndarray:
    """A fixed subsample of ``n`` poses (``[n, J, 3]`` world, metres) from the given subjects."""
    clips = D.load_h36m(subjects, stride=1, allow_eval=True)
    keys = sorted(clips)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        k = keys[rng.integers(len(keys))]
        out.append(clips[k][rng.integers(len(clips[k]))])
    return np.stack(out)


def random_camera(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """An H3.6M-like view: (world->camera rotation ``[3, 3]``, pelvis position in the camera ``[3]``).

    Yaw uniform, pitch 0-20 degrees down, distance 4.5-6.5 m, the subject near the image centre.
    """
    from backend.camera import tilt_rotation
    from backend.mocap.datasets import rotation_z

    yaw = rng.uniform(0, 2 * math.pi)
    pitch = math.radians(rng.uniform(0, 20))
    R = tilt_rotation(pitch, 0.0) @ rotation_z(np.array([yaw]))[0]
    dist = rng.uniform(4.5, 6.5)
    T = np.array([rng.uniform(-0.3, 0.3), rng.uniform(-0.2, 0.3), dist])
    return R, T


def lift_case(pose_world: np.ndarray, rng: np.random.Generator, noise_px: float = 0.0, joints=None, K: Intrinsics = H36M_K):
    """Project a world pose through a random camera; returns (keypoints dict, gt camera-frame root-relative ``[J,3]``, R)."""
    from backend.camera import project

    R, T = random_camera(rng)
    cam = pose_world @ R.T
    uv = project(cam + T, K)
    if noise_px > 0:
        uv = uv + rng.normal(0, noise_px, uv.shape)
    joints = H36M17 if joints is None else joints
    kps = {JOINT_NAMES[j]: [float(uv[j, 0]), float(uv[j, 1]), 1.0] for j in joints}
    return kps, cam - cam[:1], R


def with_rotation(camera: dict, R: np.ndarray, known_rotation: bool) -> dict:
    """A request camera (``Intrinsics.as_dict()`` or width/height only) with the true world->camera
    rotation ``R`` (``[3, 3]``) added when ``known_rotation`` (``--known-rotation``; the add-on's
    "Use my camera as it is"), else ``camera`` as it is."""
    return {**camera, "rotation": np.asarray(R).tolist()} if known_rotation else camera


def run_lift(service, poses: np.ndarray, setting: str, num: int, seed: int = 0, steps=None, scale=None,
             known_rotation: bool = False) -> dict:
    """Lift every pose under one setting (``exact``, ``noisy``, ``limbs``); returns metric arrays (mm).

    ``known_rotation``: each request gives the true world->camera rotation (as the add-on's "Use
    my camera as it is" does), so the camera tilt is not estimated.
    """
    from backend.http import schemas

    rng = np.random.default_rng(seed + {"exact": 0, "noisy": 1, "limbs": 2}[setting])
    noise = 0.0 if setting == "exact" else 4.0
    joints = LIMB_JOINTS + (JOINT_INDEX["neck"],) if setting == "limbs" else H36M17
    rows = {k: [] for k in ("b1", "b5", "bN", "agg", "pa_b1", "pa_bN", "pa_agg", "div", "reproj", "time")}
    for i, pose in enumerate(poses):
        kps, gt, R = lift_case(pose, rng, noise, joints)
        req = schemas.EstimateRequest(frames=[{"keypoints": kps, "camera": with_rotation(H36M_K.as_dict(), R, known_rotation)}],
                                      num_hypotheses=num, seed=seed + i, steps=steps, guidance_scale=scale)
        t0 = time.perf_counter()
        fr = service.estimate(req).frames[0]
        rows["time"].append(time.perf_counter() - t0)
        for k, v in frame_errors(fr, gt).items():
            rows[k].append(v)
    return {k: np.array(v) for k, v in rows.items()}


def frame_errors(fr, gt: np.ndarray) -> dict:
    """Errors of one estimate frame against the truth ``gt`` (``[J, 3]`` camera frame, root-relative, metres).

    MPJPE / PA-MPJPE (mm, 17 joints) of the top hypothesis (``b1``), the best of the first 5
    (``b5``), the best of all (``bN``) and the aggregate; diversity (mm) and the top hypothesis'
    reprojection error (px).
    """
    idx = list(H36M17)
    H = np.array([h.joints for h in fr.hypotheses])[:, idx] * 1000
    g = np.asarray(gt)[idx] * 1000
    e = mpjpe(H, g[None])
    pa = pa_mpjpe(H, np.broadcast_to(g, H.shape))
    agg = np.array(fr.aggregate)[idx] * 1000
    return {"b1": e[0], "b5": e[:5].min(), "bN": e.min(), "agg": mpjpe(agg, g), "pa_b1": pa[0], "pa_bN": pa.min(),
            "pa_agg": pa_mpjpe(agg, g), "div": fr.diversity_mm, "reproj": fr.hypotheses[0].reprojection_error_px or 0.0}


def print_table(title: str, header: list[str], rows: list[list]) -> None:
    """Plain-text table (rich-free so it reads in CI logs); recorded instead while priors are compared."""
    from backend import eval_compare

    rec = eval_compare.active()
    if rec is not None:
        rec.table(title, header, rows)
        return
    print(f"\n{title}")
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(header)]
    print("  ".join(str(h).ljust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))


def cmd_lift(args, service) -> None:
    if getattr(args, "protocol", "lab") == "photo":
        from backend.eval_photo import cmd_lift_photo

        return cmd_lift_photo(args, service)
    subjects = tuple(args.subjects.split(","))
    poses = eval_frames(subjects, args.frames, seed=args.seed)
    rows = []
    for setting in (args.settings or "exact,noisy,limbs").split(","):
        m = run_lift(service, poses, setting, args.num, seed=args.seed, steps=args.steps, scale=args.guidance_scale,
                     known_rotation=getattr(args, "known_rotation", False))
        rows.append([setting, f"{m['b1'].mean():.1f}", f"{m['b5'].mean():.1f}", f"{m['bN'].mean():.1f}", f"{m['agg'].mean():.1f}",
                     f"{m['pa_b1'].mean():.1f}", f"{m['pa_bN'].mean():.1f}", f"{m['pa_agg'].mean():.1f}",
                     f"{m['div'].mean():.0f}", f"{m['reproj'].mean():.1f}", f"{m['time'].mean():.2f}"])
    print_table(f"eval lift: H3.6M {'/'.join(subjects)}, {len(poses)} frames, {args.num} hypotheses{rotation_title(args)} "
                "(MPJPE mm, 17 joints, root-aligned)",
                ["setting", "best-of-1", "best-of-5", f"best-of-{args.num}", "aggregate", "PA b1", f"PA b{args.num}", "PA agg",
                 "diversity mm", "reproj px", "s/frame"], rows)


def rotation_title(args) -> str:
    """The table title's note when ``--known-rotation`` gave the true camera rotation."""
    return ", true camera rotation given (--known-rotation)" if getattr(args, "known_rotation", False) else ""


def cmd_prior(args, service) -> None:
    if getattr(args, "protocol", "lab") == "photo":
        from backend.eval_photo import cmd_prior_coverage

        return cmd_prior_coverage(args, service)
    from backend.http import schemas
    from backend.skeleton import BONE_LENGTHS, bone_lengths

    n = args.frames
    held = D.remove_yaw(eval_frames(tuple(args.subjects.split(",")), n, seed=args.seed))
    train = D.remove_yaw(D.normalise_bone_lengths(eval_frames(D.TRAIN_SUBJECTS, n, seed=args.seed + 1)))
    t0 = time.perf_counter()
    gen = np.array(service.generate(schemas.GenerateRequest(num=n, seed=args.seed)).poses)
    dt = time.perf_counter() - t0
    gen = D.remove_yaw(gen)
    bl = np.abs(bone_lengths(gen)[:, 1:] - BONE_LENGTHS[1:]).mean() * 1000
    # the denoiser's own samples, before the final projection onto the canonical skeleton
    from backend.service import GENERATE_STEPS

    smp = service.sampler(None, GENERATE_STEPS, eta=1.0)
    smp.w.polish_steps = 0
    raw = D.remove_yaw(smp.sample(n, None, seed=args.seed).world_rel)
    bl_raw = np.abs(bone_lengths(raw)[:, 1:] - BONE_LENGTHS[1:]).mean() * 1000

    def div(p):
        s = p[: min(len(p), 300)]
        d = np.linalg.norm(s[:, None] - s[None], axis=-1).mean(-1)
        return d.sum() / (len(s) * (len(s) - 1)) * 1000

    def nn(a, b):
        return np.min(np.linalg.norm(a[:, None] - b[None], axis=-1).mean(-1), axis=1).mean() * 1000

    rows = [["generated", f"{bl:.1f}", f"{div(gen):.0f}", f"{nn(gen, held):.1f}"],
            ["generated, raw denoiser output", f"{bl_raw:.1f}", f"{div(raw):.0f}", f"{nn(raw, held):.1f}"],
            ["train (S1-S8)", f"{np.abs(bone_lengths(train)[:, 1:] - BONE_LENGTHS[1:]).mean() * 1000:.1f}", f"{div(train):.0f}", f"{nn(train, held):.1f}"],
            ["held-out", "-", f"{div(held):.0f}", "0"]]
    print_table(f"eval prior: {n} generated vs {n} held-out H3.6M {args.subjects} poses (yaw removed; mm)",
                ["poses", "bone-length error", "diversity", "NN distance to held-out"], rows)
    print(f"generation time: {dt:.2f} s for {n} poses")


def cmd_detect(args, service) -> None:
    import csv
    from pathlib import Path

    from backend.vision.photo import load_image

    root = Path(__file__).resolve().parents[1] / "samples"
    truth = list(csv.DictReader((root / "pose_landmark_truth.csv").read_text().splitlines()))
    rows = []
    names = ["left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
             "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle"]
    for img, t in zip(["image1.png", "image2.jpeg"], truth):
        photo = load_image(str(root / img))
        t0 = time.perf_counter()
        det = service.detector.detect(photo.rgb)
        dt = time.perf_counter() - t0
        errs = [math.hypot(det.keypoints[n][0] - float(t[f"{n}_x"]), det.keypoints[n][1] - float(t[f"{n}_y"]))
                for n in names if n in det.keypoints]
        rows.append([img, f"{np.mean(errs):.1f}", f"{np.max(errs):.1f}", len(errs), f"{dt * 1000:.0f}"])
    print_table("eval detect: 12 limb joints vs hand labels (pixels)", ["image", "mean px", "max px", "joints", "ms"], rows)
    print_table("eval detect: small people - samples/image2.jpeg's person pasted at a height into a plain 1920x1080 frame; "
                "found, and the 12 limb joints against the same person detected alone in a tight frame (% of the height)",
                ["person height px", "whole frame alone", "found", "limb joints vs alone %", "ms"],
                small_person_rows(service.detector, root / "image2.jpeg", names))


def small_person_rows(detector, photo_path, names, heights=(50, 60, 80, 100, 120, 160, 220, 300, 400, 500, 700)) -> list:
    """Rows of the small-person table of ``eval detect`` (see :meth:`PoseDetector.detect_people`'s tiles)."""
    import cv2

    from backend.errors import NoPersonError
    from backend.vision.photo import load_image

    src = load_image(str(photo_path)).rgb
    rows = []
    for ph in heights:
        im = cv2.resize(src, (round(src.shape[1] * ph / src.shape[0]), ph), interpolation=cv2.INTER_AREA)
        frame = np.full((1080, 1920, 3), 235, np.uint8)
        x, y = 640, 1080 - ph - 40
        frame[y : y + ph, x : x + im.shape[1]] = im
        alone_ok = detector._detect_in(frame, 0, 0, 1920, 1080) is not None
        t0 = time.perf_counter()
        try:
            det = detector.detect(frame)
        except NoPersonError:
            rows.append([ph, "yes" if alone_ok else "no", "no", "-", f"{(time.perf_counter() - t0) * 1000:.0f}"])
            continue
        dt = time.perf_counter() - t0
        side = int(ph * 1.6)
        tight = np.full((side, side, 3), 235, np.uint8)
        c = int(ph * 0.3)
        tight[c : c + ph, c : c + im.shape[1]] = im
        ref = detector.detect(tight)
        err = [math.hypot(det.keypoints[n][0] - (ref.keypoints[n][0] - c + x), det.keypoints[n][1] - (ref.keypoints[n][1] - c + y))
               for n in names]
        rows.append([ph, "yes" if alone_ok else "no", "yes", f"{100 * np.mean(err) / ph:.1f}", f"{dt * 1000:.0f}"])
    return rows


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", choices=["lift", "complete", "prior", "detect", "sequence", "tracking", "cuts", "all"])
    p.add_argument("--frames", type=int, default=100, help="poses evaluated (fixed subsample)")
    p.add_argument("--num", type=int, default=20, help="hypotheses per frame")
    p.add_argument("--subjects", default="S9,S11")
    p.add_argument("--settings", default=None,
                   help="lift rows, comma-separated: lab exact,noisy,limbs (default all three); photo: see --protocol")
    p.add_argument("--protocol", choices=["lab", "photo"], default="lab",
                   help="lift cameras: lab = H3.6M-like (default); photo = phone lenses, any height, subject "
                        "anywhere in the frame, detector-like errors (backend/eval_photo.py; settings "
                        "exact, noisy, noisy 35mm, noisy 24mm, swap, outliers, truncated, missing, swap+truncated, no EXIF, "
                        "noisy 77mm / 120mm and no EXIF 77mm / 120mm: telephotos with their lens given or not); "
                        "sequence: photo = each clip seen by a phone on a tripod placed as the photo protocol places one (--lens)")
    p.add_argument("--lens", type=float, default=None, help="sequence --protocol photo: 35 mm-equivalent focal length (mm; default 50)")
    p.add_argument("--subsets", default="all,away,floor", help="photo protocol: pose subsets (all, away, floor)")
    p.add_argument("--known-rotation", action="store_true",
                   help="lift, sequence: give the true world->camera rotation in every request (the add-on's 'Use my camera "
                        "as it is'): the rows then show the error left when the camera tilt is known")
    p.add_argument("--known", default="positions,directions",
                   help="eval complete: known positions (canonical skeleton) and/or directions from a rig of other proportions")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--guidance-scale", type=float, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--prior", "--weights", dest="prior", action="append", default=None, metavar="default|cmu|PATH",
                   help="the prior(s) to evaluate: default, cmu or a .safetensors path; repeat or comma-separate "
                        "(--prior default,cmu) to print them side by side on the same frames and seeds")
    p.add_argument("--device", default=None)
    p.add_argument("--clips", type=int, default=4, help="sequence, tracking, cuts: clips evaluated")
    p.add_argument("--clip-frames", type=int, default=40, help="sequence, cuts: consecutive frames per clip (25 fps)")
    p.add_argument("--clip-subset", choices=SUBSETS, default="all",
                   help="sequence: draw clips with at least half their frames in this pose subset of the photo "
                        "protocol (away from standing, on the floor)")
    p.add_argument("--oversample", type=int, default=None, help="sequence: candidates per kept hypothesis (default: the service's)")
    p.add_argument("--temporal", type=float, default=None, help="sequence: temporal guidance sigma (m; default off)")
    p.add_argument("--filter-2d", type=int, default=None, metavar="WINDOW",
                   help="sequence: temporal filter window of the 2D evidence, frames (odd; 0 = off; default: the service's)")
    p.add_argument("--filter-2d-order", type=int, default=None, help="sequence: polynomial order of that filter")
    p.add_argument("--cache", default=None, help="sequence: keep/reuse each clip's response (JSON) in this folder")
    p.add_argument("--shake", type=float, default=0.0, metavar="DEG",
                   help="sequence: a handheld camera turning about its centre during each clip (hand sway and shake, "
                        "up to about DEG degrees about each axis; 0 = fixed camera)")
    p.add_argument("--zoom", type=float, default=1.0, metavar="Z",
                   help="sequence: the lens zooms from 1 to Z over each clip (a phone's pinch zoom); --motion given sends "
                        "the focal length per frame (sequence.camera_zoom), ignored takes the lens as fixed")
    p.add_argument("--vfr", action="store_true",
                   help="sequence: a variable frame rate: the first half of each clip at 25 fps, the second at 12.5 "
                        "(a phone whose rate drops in low light); rows: the track taking the frames as evenly spaced "
                        "(at their mean rate) and the track given each frame's time (sequence.times)")
    p.add_argument("--unknown-focal", action="store_true",
                   help="sequence: the requests give the image size only, no focal length (a video without lens "
                        "metadata): the backend's default lens is used for the clip's true --lens")
    p.add_argument("--motion", choices=["given", "ignored"], default="given",
                   help="sequence --shake: send the camera's turn per frame (sequence.camera_motion, as a gyroscope, a "
                        "camera solve or the video's background give it) or not (the camera taken as fixed)")


def cmd_tracking(args, service) -> None:
    from backend.eval_tracking import run_tracking_eval

    run_tracking_eval(service, args)


def cmd_cuts(args, service) -> None:
    from backend.eval_cuts import run_cuts_eval

    run_cuts_eval(service, args)


def cmd_sequence(args, service) -> None:
    from backend.eval_sequence import run_sequence_eval

    run_sequence_eval(service, args)


def prior_choices(values: list[str] | None) -> list[str]:
    """``--prior`` values (repeated and/or comma-separated) -> prior names/paths, in order, no repeats."""
    out: list[str] = []
    for v in values or ["default"]:
        for part in str(v).split(","):
            if part.strip() and part.strip() not in out:
                out.append(part.strip())
    return out or ["default"]


def run(args) -> int:
    from backend import eval_compare
    from backend.service import PoseService

    priors = prior_choices(args.prior)
    services = [PoseService(p, args.device) for p in priors]  # all loaded first: a bad --prior fails at once
    for svc in services:
        p = svc.prior
        print(f"prior {p.name}: {p.version or 'unversioned'}, {p.licence_summary}; trained on "
              f"{', '.join(sorted({r['dataset'] for r in p.training_data})) or 'unrecorded data'}")
    from backend.eval_complete import cmd_complete

    commands = {"lift": cmd_lift, "complete": cmd_complete, "prior": cmd_prior, "detect": cmd_detect,
                "sequence": cmd_sequence, "tracking": cmd_tracking, "cuts": cmd_cuts}
    todo = ["prior", "lift", "complete", "detect"] if args.what == "all" else [args.what]
    for w in todo:
        if len(services) == 1 or w == "detect":  # the detector does not depend on the prior
            commands[w](args, services[0])
            continue
        recs = []
        for svc in services:
            with eval_compare.recording() as rec:
                commands[w](args, svc)
            recs.append(rec)
        eval_compare.print_merged([s.prior.name for s in services], recs, print_table)
    return 0
