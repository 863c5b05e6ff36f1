"""``posediff eval cuts``: edited clips, one cut from one camera to another (printed, not asserted).

Clips people take from the web are edited: the picture changes to another camera between two
frames. Each clip here is ``--clip-frames`` consecutive 25 fps frames of a held-out Human3.6M
clip (``--subjects``, :func:`backend.eval_sequence.make_clips`), filmed by one random
H3.6M-like camera (:func:`backend.evaluate.random_camera`) up to its middle frame and by another
from there, 4 px noise on the 17 joints' 2D. Each clip is estimated twice as a sequence: as one
camera (the track as it was before cuts were known) and with the cut given
(``sequence.cuts``, what :mod:`backend.vision.shot_cuts` finds in a video's frames).

Columns: MPJPE (mm, 17 joints, root-aligned, each frame's own camera frame), the same over the
:data:`NEAR` frames each side of the cut, acceleration error (mm/frame^2), the world's jump at
the cut (over the :data:`SPAN` frames each side of it: how far the track's world pelvis moves, mm,
and how far the body's facing turns, degrees; the clips' pelvis stays in one place, their own turn
is the last row) and, with the cut given, the error of the second camera's orientation
relative to the first as placed from the person's motion (:mod:`backend.prior.shots`; degrees).
"""

from __future__ import annotations

import math

import numpy as np

from backend.metrics import mpjpe
from backend.skeleton import H36M17, JOINT_NAMES

IDX = list(H36M17)
#: Frames each side of the cut in the "near the cut" column.
NEAR = 5
#: Frames each side of the cut over which the world's jump is measured (a track taken as one camera
#: smooths the jump over a few frames).
SPAN = 3


def cut_request(poses: np.ndarray, rng: np.random.Generator, cut: int, noise_px: float = 4.0, num: int = 20, seed: int = 0):
    """The estimate request of a clip filmed by one random camera before frame ``cut`` and another from it.

    Args:
        poses: ``[F, J, 3]`` world poses (Z up, metres, pelvis at the origin).
        rng: the cameras' and the 2D noise's random stream.
        cut: the first frame of the second camera.
    Returns:
        (request dict with ``sequence.fps`` 25, ground truth ``[F, J, 3]`` root-relative in each
        frame's own camera frame (metres), ``[(R [3, 3] world->camera, T [3] pelvis in the camera)]``
        of the two cameras).
    """
    from backend.camera import project
    from backend.evaluate import H36M_K, random_camera

    cams = [random_camera(rng), random_camera(rng)]
    frames, gt = [], []
    for t, p in enumerate(poses):
        R, T = cams[t >= cut]
        cam = p @ R.T + T
        uv = project(cam, H36M_K) + rng.normal(0, noise_px, (len(p), 2))
        frames.append({"keypoints": {JOINT_NAMES[j]: [float(uv[j, 0]), float(uv[j, 1]), 1.0] for j in IDX},
                       "camera": H36M_K.as_dict()})
        gt.append(cam - cam[:1])
    return {"frames": frames, "num_hypotheses": num, "seed": seed, "sequence": {"fps": 25.0}}, np.array(gt), cams


def run_cuts_eval(service, args) -> list:
    """Estimate the edited clips both ways and print the table; returns the rows."""
    from backend.eval_sequence import accel_error, make_clips
    from backend.evaluate import print_table
    from backend.http import schemas
    from backend.prior.shots import body_heading
    from backend.vision.camera_motion import turn_deg

    clips = make_clips([s.strip() for s in args.subjects.split(",")], args.clips, args.clip_frames, seed=args.seed)
    rng = np.random.default_rng(args.seed + 23)
    acc: dict[str, dict[str, list]] = {}
    truth_turn: list[float] = []
    for ci, (name, poses) in enumerate(clips):
        cut = len(poses) // 2
        req, gt, cams = cut_request(poses, rng, cut, num=args.num, seed=args.seed + ci)
        if args.steps:
            req["steps"] = args.steps
        g = gt[:, IDX] * 1000
        for row, given in (("one camera assumed (cut ignored)", False), ("cut given (sequence.cuts)", True)):
            r = dict(req, sequence={"fps": 25.0, **({"cuts": [cut]} if given else {})})
            res = service.estimate(schemas.EstimateRequest.model_validate(r))
            P = np.array([fr.track.joints for fr in res.frames])[:, IDX] * 1000
            e = mpjpe(P, g)
            W = np.array([fr.track.world_joints for fr in res.frames])
            wr = np.array([fr.track.world_root for fr in res.frames])
            h = body_heading(W)
            m = acc.setdefault(row, {})
            m.setdefault("mpjpe", []).append(float(e.mean()))
            m.setdefault("near", []).append(float(e[cut - NEAR : cut + NEAR].mean()))
            m.setdefault("accel", []).append(accel_error(P, g))
            a, b = cut - SPAN, cut + SPAN
            m.setdefault("jump", []).append(float(np.linalg.norm(wr[b] - wr[a]) * 1000))
            m.setdefault("turn", []).append(abs(math.degrees(math.remainder(h[b] - h[a], 2 * math.pi))))
            if given:
                M = np.array(res.sequence.camera_motion)[cut]
                truth = cams[1][0] @ cams[0][0].T
                m.setdefault("camera", []).append(turn_deg(M @ truth.T))
        ht = body_heading(poses)
        truth_turn.append(abs(math.degrees(math.remainder(ht[cut + SPAN] - ht[cut - SPAN], 2 * math.pi))))
        print(f"  clip {ci + 1}/{len(clips)} {name}: " + ", ".join(f"{row.split(' (')[0]} {acc[row]['mpjpe'][-1]:.1f} mm"
                                                                  for row in acc), flush=True)
    rows = [[row, f"{np.mean(m['mpjpe']):.1f}", f"{np.mean(m['near']):.1f}", f"{np.mean(m['accel']):.2f}",
             f"{np.median(m['jump']):.0f}", f"{np.median(m['turn']):.1f}",
             f"{np.median(m['camera']):.1f} (mean {np.mean(m['camera']):.1f})" if "camera" in m else "-"]
            for row, m in acc.items()]
    rows.append(["(the clips' own)", "0", "0", "0", "0", f"{np.median(truth_turn):.1f}", "-"])
    print_table(f"eval cuts: {len(clips)} held-out clips ({args.subjects}) of {args.clip_frames} frames, a cut to another "
                f"H3.6M-like camera at the middle, 4 px noise, {args.num} hypotheses/frame",
                ["track", "MPJPE mm", f"MPJPE within {NEAR} frames of the cut", "accel mm/frame^2",
                 f"world pelvis motion over the {2 * SPAN} frames around the cut mm (median)",
                 "body facing turn over those frames deg (median)",
                 "second camera's orientation error deg (median)"], rows)
    return rows
