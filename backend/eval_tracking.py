"""``posediff eval tracking``: a walk filmed by a camera that travels with the person (printed, not asserted).

Human3.6M's clips keep the pelvis at one place, so they cannot show where a person went; the CMU
walks of subjects 7 and 8 (``cmu_more.zip::bvh_przestr/07_*, 08_*``, 3.4-4.4 m each, 24 fps) keep
their trajectory (:func:`backend.mocap.clips.load_mocap` with ``keep_root``); the first
2.7 s of each (:data:`WALK_FRAMES`). These clips are in
the shipped prior's training data: the table measures where the person and the camera went, which
the prior does not model, not how well poses are lifted.

Each clip is filmed twice, by an H3.6M-like camera (f = 1145 px, 1000 x 1000) 5-7 m from the
walk, 0.8-1.8 m high, aimed at it from 40-140 degrees off the walking direction:

* **tracking shot**: the camera travels with the walker (its centre follows their smoothed path,
  orientation fixed: a dolly, or a phone carried alongside), so the walker stays near the middle
  of the frame and seems to walk on the spot;
* **fixed camera**: the same camera stays where it began, the walker crosses the frame.

4 px noise on the 17 joints' 2D. Each clip is estimated once per camera as a sequence; the rows
solve the track from that same response with the camera taken as fixed (the default) or as
moving (``sequence.moving_camera``, :mod:`backend.prior.camera_path`). Columns: the pelvis's
world trajectory error (mm: its displacement from the first frame against the truth's, in the
first frame's camera frame, mean over frames), the error at the last frame as a share of the
distance walked, foot sliding (cm/s: horizontal ankle speed over the truth's own contacts, world
frame; the captured clips' own beside it), MPJPE (mm, root-relative camera frame) and the
camera's estimated travel against the truth (mm, mean over frames).
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from backend.metrics import mpjpe
from backend.skeleton import H36M17, JOINT_NAMES

IDX = list(H36M17)
#: The walks (CMU subjects 7 and 8, walking on flat ground).
WALKS = ("bvh_przestr/07_", "bvh_przestr/08_")
#: Frames kept of each walk (a request's inline frames are bounded: ``schemas.MAX_FRAMES``); 64 at 24 fps = 2.7 s.
WALK_FRAMES = 64
#: How closely a tracking camera follows the walker (Whittaker ``lam`` on their path, frames).
FOLLOW_LAMBDA = 2000.0


def load_walks(data_dir: str) -> list:
    """The CMU walks with their trajectory: :class:`backend.mocap.clips.MocapClip` (first frame, a T-pose,
    dropped), subjects 7 and 8 in turn."""
    from backend.mocap.clips import load_mocap

    per_subject = []
    for prefix in WALKS:
        clips = load_mocap(f"{data_dir}/cmu_more.zip::{prefix}", "cmu_przestr", 25.0, keep_root=True)
        for c in clips:
            c.joints = c.joints[1 : 1 + WALK_FRAMES].astype(np.float64)
        per_subject.append(clips)
    # the subjects taken in turn, so that the first few walks are of both
    return [c for group in itertools.zip_longest(*per_subject) for c in group if c is not None]


def walk_camera(joints: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A camera beside a walk ``[F, J, 3]`` (world, Z up, metres): (world->camera ``R [3, 3]``, centre ``[3]``)."""
    from backend.eval_photo import look_rotation

    root = joints[:, 0]
    mid = 0.5 * (root[0] + root[-1])
    d = root[-1, :2] - root[0, :2]
    heading = math.atan2(d[1], d[0])
    az = heading + math.radians(rng.uniform(40, 140)) * (1 if rng.random() < 0.5 else -1)
    dist = rng.uniform(5.0, 7.0)
    floor = float(joints[..., 2].min())
    C = np.array([mid[0] + dist * math.cos(az), mid[1] + dist * math.sin(az), floor + rng.uniform(0.8, 1.8)])
    return look_rotation(np.array([mid[0], mid[1], mid[2]]) - C, 0.0), C


def tracking_request(joints: np.ndarray, fps: float, R: np.ndarray, C: np.ndarray, rng: np.random.Generator,
                     noise_px: float = 4.0, num: int = 20, seed: int = 0):
    """The estimate request of one walk filmed from camera centres ``C [F, 3]`` (world) with rotation ``R``.

    Returns:
        (request dict, ground-truth camera-frame joints ``[F, J, 3]`` (absolute, metres)).
    """
    from backend.camera import project
    from backend.evaluate import H36M_K

    cam = np.einsum("fjc,dc->fjd", joints - C[:, None], R)
    frames = []
    for p in cam:
        uv = project(p, H36M_K) + rng.normal(0, noise_px, (len(p), 2))
        frames.append({"keypoints": {JOINT_NAMES[j]: [float(uv[j, 0]), float(uv[j, 1]), 1.0] for j in IDX},
                       "camera": H36M_K.as_dict()})
    return {"frames": frames, "num_hypotheses": num, "seed": seed, "sequence": {"fps": float(fps)}}, cam


def run_tracking_eval(service, args) -> list:
    """Estimate the walks from both cameras and print the table; returns the rows."""
    from backend.eval_sequence import foot_sliding
    from backend.evaluate import print_table
    from backend.http import schemas
    from backend.mocap.datasets import SHARED_DATA
    from backend.prior.contacts import detect_contacts
    from backend.prior.track import TrackOptions, whittaker_smooth
    from backend.sequence import add_track

    walks = load_walks(str(SHARED_DATA))[: args.clips]
    rng = np.random.default_rng(args.seed + 11)
    acc: dict[tuple[str, str], dict[str, list]] = {}
    gt_slide = []
    for ci, clip in enumerate(walks):
        X, fps = clip.joints, clip.fps
        R, C0 = walk_camera(X, rng)
        path = whittaker_smooth(X[:, 0, :2], FOLLOW_LAMBDA)
        travel_cam = np.zeros((len(X), 3))
        travel_cam[:, :2] = path - path[0]
        c_gt = detect_contacts(X, fps, TrackOptions())
        gt_slide.append(foot_sliding(X, c_gt, fps))
        walked = float(np.linalg.norm(X[-1, 0, :2] - X[0, 0, :2]))
        for shot, C in (("tracking shot", C0 + travel_cam), ("fixed camera", np.tile(C0, (len(X), 1)))):
            req, cam = tracking_request(X, fps, R, C, rng, num=args.num, seed=args.seed + ci)
            if args.steps:
                req["steps"] = args.steps
            res = service.estimate(schemas.EstimateRequest.model_validate(req))
            g_rel = (cam - cam[:, :1])[:, IDX] * 1000
            gt_disp = (X[:, 0] - X[0, 0]) @ R.T  # the pelvis's displacement, first camera's frame
            cam_true = (C - C[0]) @ R.T
            for row, moving in (("camera taken as fixed (default)", False), ("moving camera, from the feet", True)):
                frames = [fr.model_copy(deep=True) for fr in res.frames]
                info = add_track(frames, fps, None, opts=TrackOptions(), moving_camera=moving)
                Rw = _world_to_camera(info)
                wr = np.array([fr.track.world_root for fr in frames])
                est_disp = (wr - wr[0]) @ Rw.T
                err = np.linalg.norm(est_disp - gt_disp, axis=-1)
                W = np.array([fr.track.world_joints for fr in frames]) + wr[:, None]
                m = acc.setdefault((shot, row), {})
                m.setdefault("traj", []).append(float(err.mean() * 1000))
                m.setdefault("end", []).append(float(err[-1] / max(walked, 1e-6) * 100))
                m.setdefault("slide", []).append(foot_sliding(W, c_gt, fps))
                P = np.array([fr.track.joints for fr in frames])[:, IDX] * 1000
                m.setdefault("mpjpe", []).append(float(mpjpe(P, g_rel).mean()))
                ct = np.array(info.camera_translation) if info.camera_translation else np.zeros_like(cam_true)
                m.setdefault("camera", []).append(float(np.linalg.norm(ct - cam_true, axis=-1).mean() * 1000))
        ends = ", ".join(f"{shot} {acc[(shot, 'moving camera, from the feet')]['end'][-1]:.0f} %" for shot in ("tracking shot", "fixed camera"))
        print(f"  walk {ci + 1}/{len(walks)} {clip.name.split('/')[-1]}: {walked:.2f} m, {len(X)} frames; moving camera, "
              f"error at the end: {ends}", flush=True)
    rows = []
    for (shot, row), m in acc.items():
        sl = m["slide"]
        n = sum(k for _, k in sl)
        rows.append([f"{shot}: {row}", f"{np.mean(m['traj']):.0f}", f"{np.mean(m['end']):.1f}",
                     f"{sum(s * k for s, k in sl) / n:.1f}" if n else "no contacts", f"{np.mean(m['mpjpe']):.1f}",
                     f"{np.mean(m['camera']):.0f}"])
    n = sum(k for _, k in gt_slide)
    rows.append(["captured walks (truth)", "0", "0", f"{sum(s * k for s, k in gt_slide) / n:.1f}", "0", "0"])
    print_table(f"eval tracking: {len(walks)} CMU walks (subjects 7, 8; in the prior's training data), H3.6M-like camera "
                f"5-7 m beside the walk, 4 px noise on 17 joints, {args.num} hypotheses/frame",
                ["track", "pelvis trajectory error mm", "error at the end % of walk", "foot sliding cm/s (true contacts)",
                 "MPJPE mm", "camera travel error mm"], rows)
    return rows


def _world_to_camera(info) -> np.ndarray:
    """The track's world -> first camera rotation from the sequence's shared tilt."""
    from backend.camera import tilt_rotation

    return tilt_rotation(math.radians(info.camera_pitch_deg), math.radians(info.camera_roll_deg))
