"""``posediff eval sequence``: the track against per-frame picks on held-out clips (printed, not asserted).

Clips: ``--clips`` runs of ``--frames`` consecutive 25 fps frames from random Human3.6M clips of
``--subjects`` (default the held-out S9/S11), each seen by one fixed random H3.6M-like camera
(:func:`backend.evaluate.random_camera`), or with ``--protocol photo`` by a phone on a tripod as
the photo protocol places one (:mod:`backend.eval_photo`: any height, subject anywhere in the
frame, ``--lens`` mm equivalent, 50 by default; every joint of the clip inside the image), 4 px
Gaussian noise on the 17 joints' 2D positions.
Every clip is estimated once as a sequence (frames x candidates batched through the denoiser);
all rows are computed from that same response:

* per-frame best-of-1 (the top-scored hypothesis), its 5-frame centred moving average (the
  baseline), per-frame best-of-N (oracle: the hypothesis nearest the ground truth), the
  per-frame aggregate;
* the track variants (:mod:`backend.prior.track`): Viterbi path / the mean under the
  forward-backward posterior (power 1) or the squared posterior (the default), with and without
  the Savitzky-Golay or Whittaker smoother (the default weighs each frame by the posterior
  spread of its pose), with foot planting.

The 2D evidence is filtered over time before lifting as in the service
(``backend.sequence.FILTER_2D_WINDOW``; ``--filter-2d 0`` turns it off, the table title says which):
the per-frame rows are then the picks on filtered evidence; run once with ``--filter-2d 0`` for
the baseline on raw 2D.

Columns: MPJPE (mm, 17 joints, root-aligned camera frame), acceleration error (mm/frame^2, the
mean norm of the difference of second differences against the ground truth), flips (frames whose
pose is > 150 mm MPJPE from both neighbours), foot sliding (cm/s: mean horizontal ankle speed
over frames where a contact is detected, world frame; the ground-truth clips' own beside it), root
jitter (mm/frame^2: the mean norm of the second differences of the root translation, world frame
for the track, the first frame's camera for the per-frame rows; the clips' pelvis stays at one
place, so this is the root's acceleration error), root wander (cm: the RMS distance of the root
from its mean position: sway and depth wander) and seconds per frame (sampling + track).

``--zoom Z``: the lens zooms from 1 to ``Z`` over each clip; ``--motion given`` sends the focal
length per frame (``sequence.camera_zoom``), ``ignored`` takes the lens as fixed.

``--vfr``: each clip's frames are unevenly spaced (the first half at 25 fps, the second at 12.5: a
phone whose frame rate drops in low light); the track rows are the default track taking them as
evenly spaced at their mean rate (as before a video's timestamps were read), given each frame's
time in the track only, and in the 2D filter before lifting too (``sequence.times`` in the request,
as a video's timestamps are used).

``--shake DEG``: each clip is filmed by a handheld camera that turns about its centre
(:func:`handheld_motion`: sway and shake up to about DEG degrees); ``--motion given`` sends the
turn per frame (``sequence.camera_motion``) and adds the row of the default track that does not
undo it; ``--motion ignored`` is the pipeline that takes the camera as fixed.
"""

from __future__ import annotations

import time

import numpy as np

from backend.metrics import mpjpe
from backend.skeleton import H36M17, JOINT_NAMES

IDX = list(H36M17)


#: :func:`make_clips`: a clip of a pose subset other than "all" has at least this share of its
#: frames in the subset.
SUBSET_SHARE = 0.5


def make_clips(subjects, n_clips: int, frames: int, seed: int = 0, subset: str = "all"):
    """``n_clips`` (name, ``[F, J, 3]`` world poses) runs of consecutive frames from random clips.

    Args:
        subset: ``"all"`` (any run), or a pose subset of the photo protocol
            (:func:`backend.eval_photo.subset_masks`: ``"away"`` from standing, on the ``"floor"``):
            runs are drawn until at least :data:`SUBSET_SHARE` of their frames are in it (sitting
            down, crouching, lying down, on all fours: the clips people film and the lab clips
            rarely are). ``"all"`` draws exactly as before the option existed.
    Raises:
        ValueError: an unknown subset, or no run of the subset found in 20000 draws.
    """
    from backend.eval_photo import SUBSETS, subset_masks
    from backend.mocap import datasets as D

    if subset not in SUBSETS:
        raise ValueError(f"unknown pose subset {subset!r} ({', '.join(SUBSETS)})")
    clips = D.load_h36m(subjects, stride=1, allow_eval=True)
    keys = sorted(k for k in clips if len(clips[k]) > frames)
    rng = np.random.default_rng(seed)
    masks = {} if subset == "all" else {k: subset_masks(clips[k])[subset] for k in keys}
    out = []
    for _ in range(n_clips):
        for _ in range(20000):
            k = keys[rng.integers(len(keys))]
            s = int(rng.integers(len(clips[k]) - frames))
            if subset == "all" or masks[k][s : s + frames].mean() >= SUBSET_SHARE:
                break
        else:
            raise ValueError(f"no {frames}-frame run of the pose subset {subset!r} in {subjects}")
        out.append((f"{k}@{s}", clips[k][s : s + frames].astype(np.float64)))
    return out


def handheld_motion(frames: int, shake_deg: float, rng: np.random.Generator, fps: float = 25.0) -> np.ndarray:
    """``[F, 3, 3]`` the turn of a handheld camera from its first frame (``x_cam_t = M_t x_cam_0``).

    Pitch, yaw and roll each follow a sum of three sinusoids (0.2-0.6 Hz sway, 0.8-2 Hz and 2-5 Hz
    shake, amplitudes 0.6 / 0.3 / 0.1 of ``shake_deg``, random phases), minus their value at the
    first frame; the camera turns about its own centre. ``shake_deg`` 0: identities.
    """
    t = np.arange(frames) / fps
    ang = np.zeros((frames, 3))
    for axis in range(3):
        for (lo, hi), w in (((0.2, 0.6), 0.6), ((0.8, 2.0), 0.3), ((2.0, 5.0), 0.1)):
            f, ph = rng.uniform(lo, hi), rng.uniform(0, 2 * np.pi)
            ang[:, axis] += w * shake_deg * np.sin(2 * np.pi * f * t + ph)
    ang = np.radians(ang - ang[:1])
    c, s = np.cos(ang), np.sin(ang)
    one, zero = np.ones(frames), np.zeros(frames)
    rx = np.stack([one, zero, zero, zero, c[:, 0], -s[:, 0], zero, s[:, 0], c[:, 0]], 1).reshape(-1, 3, 3)
    ry = np.stack([c[:, 1], zero, s[:, 1], zero, one, zero, -s[:, 1], zero, c[:, 1]], 1).reshape(-1, 3, 3)
    rz = np.stack([c[:, 2], -s[:, 2], zero, s[:, 2], c[:, 2], zero, zero, zero, one], 1).reshape(-1, 3, 3)
    return rz @ ry @ rx  # camera axes: x right (pitch), y down (yaw), z forward (roll)


def clip_request(poses: np.ndarray, rng: np.random.Generator, noise_px: float = 4.0, num: int = 20, seed: int = 0,
                 lens_mm: float | None = None, known_rotation: bool = False, shake_deg: float = 0.0,
                 motion_given: bool = True, zoom: float = 1.0, focal_given: bool = True):
    """The estimate request of one clip seen by one fixed camera.

    Args:
        poses: ``[F, J, 3]`` world poses (Z up, metres, pelvis at the origin).
        rng: the camera's (lab) and the 2D noise's random stream.
        noise_px: Gaussian noise on the projected 17 joints (pixels).
        lens_mm: None: an H3.6M-like camera (:func:`backend.evaluate.random_camera`, f = 1145 px);
            a 35 mm-equivalent focal length: a camera drawn as the photo protocol draws one
            (:func:`backend.eval_photo.photo_camera`: 0.3-2.5 m above the floor, 3-7 m away, aimed
            near the person, 4:3 phone frame, that lens; placed from ``seed`` alone and paired across
            lenses) so that every joint of every frame is inside the image: a phone on a tripod.
        known_rotation: each frame's camera gives the true world->camera rotation (the add-on's
            "Use my camera as it is").
        shake_deg: a handheld camera (:func:`handheld_motion`, drawn from its own stream seeded by
            ``seed``, so the clips' cameras and noise are those of a fixed-camera run); 0: fixed.
        motion_given: with ``shake_deg``, the request carries ``sequence.camera_motion``; with
            ``zoom``, ``sequence.camera_zoom``.
        zoom: the lens zooms from 1 to this factor over the clip (evenly in its log; 1: a fixed lens),
            about the principal point; every frame's ``camera`` is the first's (what a video without
            a camera solve gives).
        focal_given: each frame's ``camera`` carries the focal length; False: the image size only
            (a video without lens metadata: the backend's default lens is used).
    Returns:
        (request dict with ``sequence``, ground truth camera-frame root-relative ``[F, J, 3]``
        (each frame's own camera), world->camera R ``[3, 3]`` of the first frame, motion ``[F, 3, 3]``).
    """
    from backend.camera import project
    from backend.evaluate import H36M_K, random_camera, with_rotation

    if lens_mm is None:
        R, T = random_camera(rng)
        K = H36M_K
    else:
        from backend.eval_photo import paired_photo_camera

        R, T, K, _ = paired_photo_camera(poses.reshape(-1, 3), float(lens_mm), seed)
    M = handheld_motion(len(poses), shake_deg, np.random.default_rng(10_000 + seed)) if shake_deg else np.tile(np.eye(3), (len(poses), 1, 1))
    frames, gt = [], []
    Z = np.geomspace(1.0, zoom, len(poses))
    for p, m, z in zip(poses, M, Z):
        cam = (p @ R.T + T) @ m.T  # the camera turned about its centre
        uv = project(cam, K)
        if z != 1.0:  # the lens zoomed about the principal point
            uv = (uv - [K.cx, K.cy]) * z + [K.cx, K.cy]
        uv = uv + rng.normal(0, noise_px, (len(p), 2))
        frames.append({"keypoints": {JOINT_NAMES[j]: [float(uv[j, 0]), float(uv[j, 1]), 1.0] for j in IDX},
                       "camera": with_rotation(K.as_dict() if focal_given else {"width": K.width, "height": K.height},
                                               m @ R, known_rotation)})
        gt.append(cam - cam[:1])
    req = {"frames": frames, "num_hypotheses": num, "seed": seed, "sequence": {"fps": 25.0}}
    if shake_deg and motion_given:
        req["sequence"]["camera_motion"] = M.tolist()
    if zoom != 1.0 and motion_given:
        req["sequence"]["camera_zoom"] = Z.tolist()
    return req, np.array(gt), R, M


def accel_error(pred: np.ndarray, gt: np.ndarray, frames: np.ndarray | None = None) -> float:
    """Mean acceleration error (mm/frame^2): ``[F, J, 3]`` mm, root-aligned. ``frames``: ``[F]`` the
    samples' times in frames where they are unevenly spaced (second divided differences, per frame^2)."""
    if len(pred) < 3:
        return 0.0
    d = pred - gt
    if frames is None:
        a = d[2:] - 2 * d[1:-1] + d[:-2]
    else:
        h1, h2 = np.diff(frames)[:-1, None, None], np.diff(frames)[1:, None, None]
        a = 2 * (d[:-2] / (h1 * (h1 + h2)) - d[1:-1] / (h1 * h2) + d[2:] / (h2 * (h1 + h2)))
    return float(np.linalg.norm(a, axis=-1).mean())


def flips(pred: np.ndarray, thr_mm: float = 150.0) -> int:
    """Frames whose pose (``[F, J, 3]`` mm) is more than ``thr_mm`` MPJPE from both neighbours."""
    d = np.linalg.norm(pred[1:] - pred[:-1], axis=-1).mean(-1)
    return int(((d[:-1] > thr_mm) & (d[1:] > thr_mm)).sum())


def foot_sliding(world_abs: np.ndarray, contacts: np.ndarray, fps: float) -> tuple[float, int]:
    """Mean horizontal ankle speed (cm/s) over consecutive contact frames; (speed, frames counted)."""
    from backend.prior.contacts import FEET

    sp, n = 0.0, 0
    for f, (_, _, _, ank, _) in enumerate(FEET):
        c = contacts[1:, f] & contacts[:-1, f]
        v = np.linalg.norm(world_abs[1:, ank, :2] - world_abs[:-1, ank, :2], axis=-1) * fps * 100
        sp += float(v[c].sum())
        n += int(c.sum())
    return (sp / n if n else 0.0), n


def root_jitter(root: np.ndarray, frames: np.ndarray | None = None) -> float:
    """Mean norm of the second differences of a root trajectory ``[F, 3]`` (mm -> mm/frame^2; over
    ``frames``, the samples' times in frames, where they are unevenly spaced: :func:`accel_error`)."""
    if len(root) < 3:
        return 0.0
    return accel_error(root[:, None], np.zeros_like(root[:, None]), frames)


def root_wander(root: np.ndarray) -> float:
    """RMS distance of a root trajectory ``[F, 3]`` (mm) from its mean position (-> cm): the clips' pelvis
    stays at one place, so this is how far the estimated root sways and wanders (depth above all)."""
    return float(np.sqrt((np.linalg.norm(root - root.mean(0), axis=-1) ** 2).mean()) / 10.0)


def moving_average(x: np.ndarray, k: int = 5) -> np.ndarray:
    """Centred moving average along axis 0 (window shrinks at the ends)."""
    h = k // 2
    return np.stack([x[max(0, t - h) : t + h + 1].mean(0) for t in range(len(x))])


def _cached(folder, i: int, fn):
    """``fn()`` (an EstimateResponse), kept as JSON in ``folder`` (to re-run the track variants only)."""
    if not folder:
        return fn()
    from pathlib import Path

    from backend.http import schemas

    p = Path(folder) / f"clip_{i:02d}.json"
    if p.exists():
        return schemas.EstimateResponse.model_validate_json(p.read_text())
    res = fn()
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(res.model_dump_json())
    return res


def _variants():
    from backend.prior.track import TrackOptions

    return {
        "track: Viterbi path": TrackOptions(path="viterbi", smoother="none", feet=False),
        "track: Viterbi + Savitzky-Golay": TrackOptions(path="viterbi", smoother="savgol", feet=False),
        "track: Viterbi + Whittaker": TrackOptions(path="viterbi", feet=False),
        "track: Viterbi + Whittaker + feet planted": TrackOptions(path="viterbi"),
        "track: posterior mean (power 1) + Whittaker": TrackOptions(posterior_power=1.0, feet=False),
        "track: posterior^2 mean": TrackOptions(smoother="none", feet=False),
        "track: posterior^2 mean + Whittaker": TrackOptions(feet=False),
        "track: + feet planted, every frame weighted alike": TrackOptions(spread_floor=None),
        "track: + feet planted by IK alone": TrackOptions(steady_root=None),
        "track (default): + feet planted": TrackOptions(),
    }


def filter_title() -> str:
    """Which temporal filter of the 2D evidence the run used (for the table title)."""
    import backend.sequence as SQ

    if not SQ.FILTER_2D_WINDOW or SQ.FILTER_2D_WINDOW <= 1:
        return "2D evidence unfiltered"
    return f"2D evidence filtered: weighted Savitzky-Golay, {SQ.FILTER_2D_WINDOW} frames, order {SQ.FILTER_2D_ORDER}"


def run_sequence_eval(service, args) -> list:
    """Estimate the clips and print the table; returns the rows."""
    import backend.sequence as SQ
    from backend.http import schemas
    from backend.prior.contacts import detect_contacts
    from backend.prior.track import TrackOptions
    from backend.sequence import add_track

    if getattr(args, "oversample", None):
        SQ.SEQUENCE_OVERSAMPLE = int(args.oversample)
    if getattr(args, "temporal", None):
        SQ.TEMPORAL_SIGMA = float(args.temporal)
    if getattr(args, "filter_2d", None) is not None:
        SQ.FILTER_2D_WINDOW = int(args.filter_2d)
    if getattr(args, "filter_2d_order", None) is not None:
        SQ.FILTER_2D_ORDER = int(args.filter_2d_order)
    subjects = tuple(args.subjects.split(","))
    subset = getattr(args, "clip_subset", None) or "all"
    vfr = bool(getattr(args, "vfr", False))
    half = args.clip_frames // 2
    kept = np.r_[np.arange(half), half + 2 * np.arange(args.clip_frames - half)] if vfr else np.arange(args.clip_frames)
    clips = [(n, c[kept]) for n, c in make_clips(subjects, args.clips, int(kept[-1]) + 1, seed=args.seed, subset=subset)]
    times = kept / 25.0  # seconds
    fps = (len(kept) - 1) / float(times[-1] - times[0])  # the mean rate (25 without --vfr)
    lens = float(getattr(args, "lens", None) or 50.0) if getattr(args, "protocol", "lab") == "photo" else None
    rng = np.random.default_rng(args.seed + 7)
    acc: dict[str, dict[str, list]] = {}

    def add(name, key, v):
        acc.setdefault(name, {}).setdefault(key, []).append(v)

    t_sample = 0.0
    n_frames = 0
    for ci, (name, poses) in enumerate(clips):
        shake = float(getattr(args, "shake", 0.0) or 0.0)
        given = getattr(args, "motion", "given") == "given"
        req_d, gt, R, M = clip_request(poses, rng, num=args.num, seed=args.seed + ci, lens_mm=lens,
                                       known_rotation=getattr(args, "known_rotation", False), shake_deg=shake,
                                       motion_given=given, zoom=float(getattr(args, "zoom", 1.0) or 1.0),
                                       focal_given=not getattr(args, "unknown_focal", False))
        motion = M if shake and given else None
        if args.steps:
            req_d["steps"] = args.steps
        req_d["sequence"]["fps"] = fps
        req = schemas.EstimateRequest.model_validate(req_d)
        t0 = time.perf_counter()
        res = _cached(getattr(args, "cache", None), ci, lambda req=req: service.estimate(req))
        t_sample += time.perf_counter() - t0
        n_frames += len(poses)
        g = gt[:, IDX] * 1000
        H = np.array([[h.joints for h in fr.hypotheses] for fr in res.frames])[:, :, IDX] * 1000  # [F, K, 17, 3]
        b1 = H[:, 0]
        root_b1 = np.einsum("tc,tcd->td", np.array([fr.hypotheses[0].root_translation for fr in res.frames]) * 1000, M)  # first camera
        vk = kept if vfr else None
        add("per-frame best-of-1", "root", root_jitter(root_b1, vk))
        add("5-frame moving average of best-of-1 (baseline)", "root", root_jitter(moving_average(root_b1), vk))
        add("per-frame best-of-1", "wander", root_wander(root_b1))
        add("5-frame moving average of best-of-1 (baseline)", "wander", root_wander(moving_average(root_b1)))
        per = {"per-frame best-of-1": b1, "5-frame moving average of best-of-1 (baseline)": moving_average(b1),
               f"per-frame best-of-{args.num} (oracle)": H[np.arange(len(H)), np.linalg.norm(H - g[:, None], axis=-1).mean(-1).argmin(1)],
               "per-frame aggregate": np.array([fr.aggregate for fr in res.frames])[:, IDX] * 1000}
        for row, P in per.items():
            add(row, "mpjpe", float(mpjpe(P, g).mean()))
            add(row, "acc", accel_error(P, g, kept if vfr else None))
            add(row, "flips", flips(P))
        gt_world = poses  # pelvis at the origin, Z up (the data has no global trajectory)
        opts0 = TrackOptions()
        c_gt = detect_contacts(gt_world, 25.0, opts0)
        s, n = foot_sliding(gt_world, c_gt, 25.0)
        add("ground truth", "slide", (s, n))
        add("ground truth", "own_acc", accel_error(np.zeros_like(g), g, kept if vfr else None))  # a track without acceleration scores this
        variants = _variants()
        if motion is not None:
            variants["track (default), the camera's turn not undone"] = (TrackOptions(), False)
        if vfr:
            timed = {**req_d, "sequence": {**req_d["sequence"], "times": times.tolist()}}  # the 2D filter's times too
            res_t = _cached(getattr(args, "cache", None) and f"{args.cache}/timed", ci,
                            lambda r=timed: service.estimate(schemas.EstimateRequest.model_validate(r)))
            variants = {"track (default): frames taken as evenly spaced": TrackOptions(),
                        "track (default): + each frame's time (track only)": (TrackOptions(), True, times.tolist()),
                        "track (default): + each frame's time (2D filter and track)": (TrackOptions(), True, times.tolist(), res_t)}
        for row, opts in variants.items():
            opts, undo, vtimes, vres = (opts + (None, None))[:4] if isinstance(opts, tuple) else (opts, True, None, None)
            t1 = time.perf_counter()
            frames = [fr.model_copy(deep=True) for fr in (vres or res).frames]
            add_track(frames, fps, None, opts=opts, motion=motion if undo else None, times=vtimes)
            add(row, "t_track", (time.perf_counter() - t1) / len(frames))
            P = np.array([fr.track.joints for fr in frames])[:, IDX] * 1000
            add(row, "mpjpe", float(mpjpe(P, g).mean()))
            add(row, "acc", accel_error(P, g, kept if vfr else None))
            add(row, "flips", flips(P))
            wr = np.array([fr.track.world_root for fr in frames]) * 1000  # world: free of the camera's turn
            add(row, "root", root_jitter(wr, kept if vfr else None))
            add(row, "wander", root_wander(wr))
            W = np.array([fr.track.world_joints for fr in frames]) + np.array([fr.track.world_root for fr in frames])[:, None]
            c = np.array([[fr.track.contacts["left_foot"], fr.track.contacts["right_foot"]] for fr in frames]) if opts.feet \
                else detect_contacts(W, 25.0, opts0)
            add(row, "slide", foot_sliding(W, c, 25.0))
        last = "track (default): + each frame's time (2D filter and track)" if vfr else "track (default): + feet planted"
        print(f"  clip {ci + 1}/{len(clips)} {name}: best-of-1 {acc['per-frame best-of-1']['mpjpe'][-1]:.1f} mm, "
              f"{last} {acc[last]['mpjpe'][-1]:.1f} mm", flush=True)

    sf = t_sample / max(n_frames, 1)
    rows = []
    for row, m in acc.items():
        if row == "ground truth":
            continue
        sl = m.get("slide")
        slide = "-"
        if sl:
            tot = sum(n for _, n in sl)
            slide = f"{sum(s * n for s, n in sl) / tot:.1f}" if tot else "no contacts"
        t = sf + (np.mean(m["t_track"]) if "t_track" in m else 0.0)
        root = f"{np.mean(m['root']):.1f}" if "root" in m else "-"
        wander = f"{np.mean(m['wander']):.1f}" if "wander" in m else "-"
        rows.append([row, f"{np.mean(m['mpjpe']):.1f}", f"{np.mean(m['acc']):.2f}", f"{int(np.sum(m['flips']))}", slide, root,
                     wander, f"{t:.2f}"])
    gsl = acc["ground truth"]["slide"]
    tot = sum(n for _, n in gsl)
    rows.append(["ground truth clips", "0", "0", "0", f"{sum(s * n for s, n in gsl) / tot:.1f}" if tot else "no contacts", "0", "0",
                 "-"])
    from backend.eval_photo import SUBSET_TITLES
    from backend.evaluate import print_table, rotation_title

    base = float(rows[1][1])
    camera = "H3.6M-like" if lens is None else f"photo-protocol ({lens:g} mm lens)"
    if getattr(args, "unknown_focal", False):
        from backend.camera import DEFAULT_FOOTAGE_FOCAL_35MM

        camera += f" whose focal length is not given (footage's default {DEFAULT_FOOTAGE_FOCAL_35MM:g} mm used)"
    shake = float(getattr(args, "shake", 0.0) or 0.0)
    if shake:
        camera += (f" handheld (turning up to ~{shake:g} deg, the turn per frame "
                   f"{'given' if getattr(args, 'motion', 'given') == 'given' else 'not given'})")
    zoom = float(getattr(args, "zoom", 1.0) or 1.0)
    if zoom != 1.0:
        camera += (f" zooming {zoom:g}x (the focal length per frame "
                   f"{'given' if getattr(args, 'motion', 'given') == 'given' else 'not given: a fixed lens assumed'})")
    rate = "25 fps, then 12.5 (a variable frame rate)" if vfr else "25 fps"
    print_table(f"eval sequence: H3.6M {'/'.join(subjects)}, {len(clips)} clips x {args.clip_frames} frames at {rate}"
                f"{'' if subset == 'all' else f' (at least half of each clip {SUBSET_TITLES[subset]})'}, one "
                f"{camera} camera per clip, 4 px noise on 17 joints, {args.num} hypotheses/frame ({args.num * SQ.SEQUENCE_OVERSAMPLE} drawn"
                f"{f', temporal guidance sigma {SQ.TEMPORAL_SIGMA} m' if SQ.TEMPORAL_SIGMA else ''}"
                f"{f', {args.steps} DDIM steps' if args.steps else ''}; "
                f"{filter_title()}){rotation_title(args)} "
                "(MPJPE mm, root-aligned)",
                ["method", "MPJPE", "accel err mm/frame^2", "flips", "foot sliding cm/s (contacts)", "root jitter mm/frame^2",
                 "root wander cm", "s/frame"], rows)
    best = float(rows[-2][1])
    own = float(np.mean(acc["ground truth"]["own_acc"]))
    print(f"track / moving-average baseline MPJPE: {best / base:.2f} (target <= 0.85); the clips' own mean acceleration "
          f"{own:.1f} mm/frame^2 (the accel error of a track that does not accelerate); ground-truth sliding is of the "
          "pelvis-fixed mocap (the data has no global trajectory)")
    return rows
