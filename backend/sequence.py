"""Estimation of a sequence (video frames, an image sequence, consecutive keypoint frames).

A sequence is one camera and one person (picked by size on the first frame, ``person``, then followed
from frame to frame: :mod:`backend.vision.follow`): the frames share one set of intrinsics and one camera
tilt (pitch and roll relative to gravity: :mod:`backend.prior.clip_tilt`'s estimate from a quick
first pass over the first chunk, held fixed for every hypothesis, :data:`CLIP_TILT`), and the
track (:mod:`backend.prior.track`) chooses a temporally coherent path through each frame's
hypotheses, fills frames without a person from their neighbours (with a warning), solves the root
trajectory over the clip and keeps feet planted during contacts. Before lifting, each frame's 2D
evidence (keypoints or heatmaps) can be moved to the temporally filtered keypoints
(:mod:`backend.vision.keypoint_filter`, a confidence-weighted Savitzky-Golay filter over
``FILTER_2D_WINDOW`` frames; the response's ``keypoints`` stay the raw ones). Frames are read one at
a time (:mod:`backend.vision.video`), so a long local video is never decoded at once: a frame is
sampled, in chunks of ``CHUNK``, once half a filter window of later frames has been read; only each
frame's hypotheses (and the pending frames' evidence) are kept.
"""

from __future__ import annotations

import math
import os
from typing import Callable, NamedTuple

import numpy as np

from backend.camera import Intrinsics, tilt_rotation
from backend.errors import InputError, NoPersonError
from backend.http import schemas
from backend.prior.track import Track, TrackOptions, solve_track
from backend.skeleton import JOINT_INDEX, JOINT_NAMES, NUM_JOINTS
from backend.vision.camera_motion import CameraMotion
from backend.vision.follow import REPICK_WARNING, PersonFollower
from backend.vision.keypoint_filter import KeypointFilterStream
from backend.vision.mirror import mirror_photo, unmirrored_keypoint_frame
from backend.vision.shot_cuts import ShotCuts, mark_cuts

#: Frames sampled together (one batch of frames x candidates through the denoiser).
CHUNK = 16
#: Candidates drawn per kept hypothesis in a sequence (as for single photos, ``service.OVERSAMPLE``).
#: Measured on 4 training-subject S8 clips (``posediff eval sequence --subjects S8 --oversample N``):
#: track 37.0 mm with 3 (60 drawn for 20 kept), 47.1 mm with 1 at 2.4x the speed; 20 DDIM steps
#: instead of 40 with 3: 44.5 mm. Fewer hypotheses (``num_hypotheses``) is the speed knob.
#: Re-measured (4 S8 clips x 40 frames, default track MPJPE; s/frame of a 40-frame clip with 2
#: torch threads on the shared 2-core CPU, load average ~2.6): 3 x 40 steps 45.2 mm, 0.61 s/frame;
#: 2: 47.7 mm, 0.31 s; 1: 52.0 mm, 0.16 s; 3 x 20 steps: 48.0 mm, 0.36 s; with the 2D filter on
#: (window 9, order 1): 3 x 40 steps 48.7 mm, 3 x 20 steps 46.8, 1 x 40 steps 52.3. None of the
#: faster settings keeps the track's accuracy, so the default stays. Nor did 4 (80 drawn for 20
#: kept, 2026-12-04; ``--oversample 4``, sampled anew; default track MPJPE / accel, 3 -> 4): S8 8
#: clips 32.3 / 3.13 -> 32.0 / 3.09; held-out S9/S11 5 clips 34.6 / 3.66 -> 33.4 / 3.69 (0.85x its
#: baseline), the seed-1 5 clips 41.8 / 5.45 -> 41.9 / 5.40, S9 8 clips 43.1 / 4.43 -> 44.5 / 4.60:
#: within the run-to-run noise of a fresh draw, at a third more denoiser time per frame.
SEQUENCE_OVERSAMPLE = 3
#: The candidates' plausibility (the denoiser's agreement, ``GuidedSampler.plausibility``) in a
#: sequence: the sampler's final 2 noise draws, common to all candidates (``common_plausibility``,
#: no extra denoiser calls), weighted this much against the evidence fit in the rank score that
#: orders the hypotheses and is the track's unary (:func:`backend.ranking.rank_score`). As for
#: single photos (see there), each candidate's own 2 draws put ~4 mm of noise on its value, as
#: much as the spread of a frame's best candidates. ``posediff eval sequence`` rows on the same
#: candidates (40-frame clips, 20 kept of 60; per-frame best-of-1 / 5-frame moving average of it /
#: default track, MPJPE mm), own 2 draws weight 1 -> common 2 draws weight 2: S8 3 clips
#: 65.5 / 55.2 / 58.5 -> 55.8 / 46.9 / 53.8 (weight 1: 58.3 / 49.1 / 57.1; 8 common draws, +87 ms
#: CPU per frame of 60 candidates: weight 1 58.1 / 50.1 / 57.2, weight 2 56.8 / 49.4 / 52.8;
#: 8 own draws weight 2 60.7 / 51.7 / 56.0); S8 6 clips (own draws redrawn) 60.7 / 49.0 / 47.6
#: -> 50.6 / 40.7 / 45.4 (weight 1 / 1.5 / 3: track 47.5 / 45.9 / 45.3; the track's
#: reprojection weight 0.25 / 1 instead of 0.5: 45.3 / 47.3). Held-out S9/S11 5 clips:
#: 64.6 / 51.1 / 49.1 -> 56.2 / 46.6 / 46.8 (weight 1: 56.3 / 44.7 / 44.8; 8 common draws weight 2:
#: 55.3 / 45.0 / 43.4). The baseline (moving average) gains as much as the track.
#: Measured and not kept (2026-12-04, the cached hypotheses of ``posediff eval sequence``): the kept
#: 20 of each frame re-scored with 8 more common draws (``score + b z(plausibility)``, ``z``
#: standardised over the frame's kept), as the track's unary. S8 8 clips, default track MPJPE mm, b
#: 0 / 0.5 / 1 / 2: lab 32.3 / 30.7 / 30.8 / 30.5, phone 30.8 / 28.6 / 29.7 / 31.7 (16 draws, or t =
#: 50 / 200 instead of 100: no better); re-sorting the hypotheses by that score as well: per-frame
#: best-of-1 42.9 -> 35.9, its moving average 34.4 -> 30.8, track 30.7. Held-out with b = 0.5 (the
#: track only): 5 clips lab 34.6 -> 34.4, phone 38.0 -> 34.8, away from standing phone 45.3 -> 41.2,
#: lab 44.4 -> 40.8, S11 phone 35.1 -> 33.5, but S9 8 clips 43.1 -> 47.7, S11 32.9 -> 35.7, S9 phone
#: 43.9 -> 45.5, on the floor 48.5 -> 52.3, 24 mm 41.8 -> 42.3: five sets better, five worse.
SEQUENCE_PLAUSIBILITY_WEIGHT = 2.0
#: Temporal guidance between consecutive frames' hypotheses (metres at bone length; None = off),
#: :class:`backend.prior.temporal.TemporalSmoothnessTerm`; see ``posediff eval sequence --temporal``.
#: Off: on 4 S8 clips (2D filtered) the default track was 48.7 mm, with sigma 0.15 m 49.5, 0.05 m 58.5.
TEMPORAL_SIGMA: float | None = None
#: Temporal filter of each frame's 2D evidence before lifting (:mod:`backend.vision.keypoint_filter`,
#: confidence-weighted Savitzky-Golay): window in frames (odd; 0 or 1 = off) and polynomial order;
#: frames are then sampled half a window late (the look-ahead). Measured on 4 S8 clips x 40
#: frames, 4 px i.i.d. noise (``posediff eval sequence --subjects S8 --clips 4 --filter-2d W
#: --filter-2d-order O``), the filter makes the per-frame hypotheses much better (window 9, order
#: 1: best-of-1 68.2 -> 55.8 mm, best-of-20 49.1 -> 38.6, aggregate 61.7 -> 52.6) and the track
#: smoother (accel 4.1 -> 3.6 mm/frame^2) but not closer (default track 45.2 -> 48.7 mm; window 15
#: order 2: 48.3 / 3.6), since the track's 27-frame filter already removes that noise and after the
#: 3D smoothing the error is mostly depth (56 mm |dz| against 15 mm |dxy|). On by default (window
#: 9, order 1) for the smoother keys and the better hypotheses an animator picks from on a frame;
#: on held-out S9/S11 (5 clips) the track was 50.4 -> 49.5 mm, accel 5.4 -> 4.8.
#: In a 2D proxy on 30 S8 clips (filtered vs noise-free projections) window 9 order 1 gave 2.1 px
#: from 5.0, order 2 needs 15-19 frames for the same.
#: Re-measured (2026-12-04) once the track weighs its frames by their posterior spread
#: (``backend.prior.track.TrackOptions.spread_floor``), each window sampled anew (track MPJPE mm /
#: accel mm/frame^2, 8 S8 clips, track ``lam`` 30): window 3 / 5 / 7 / 9 / 13: 31.6 / 3.32, 31.5 /
#: 3.20, 32.6 / 3.13, 32.3 / 3.13, 34.5 / 3.22 (run-to-run sampling noise is about 0.5-1 mm); window 5
#: with ``lam`` 45 (the accel of window 9 back) 31.6 / 3.11, phone camera 30.8 / 3.07 -> 30.4 / 3.09.
#: Held-out with it (window 9 / ``lam`` 30 -> 5 / 45): 5 clips lab 34.6 -> 33.4, phone 38.0 -> 36.3,
#: 24 mm 41.8 -> 39.9, S9 8 clips 43.1 -> 43.8, S11 32.9 -> 31.9, S9 phone 43.9 -> 43.5, S11 phone 35.1
#: -> 34.6, away from standing phone 45.3 -> 45.1, lab 44.4 -> 45.4, on the floor 48.5 / 6.8 -> 51.7 /
#: 7.8: seven better, three worse, the floor clips (sitting down to the floor, bending) clearly so, and
#: the per-frame hypotheses noisier (S8 best-of-20 26.2 -> 26.6): not kept.
FILTER_2D_WINDOW = 9
FILTER_2D_ORDER = 1
#: The sampler's last camera-tilt re-estimate searches only the grid neighbours of each
#: hypothesis' tilt (``GuidanceWeights.retilt_local``: 3 of 11 view pitches, 3 of 5 rolls), a
#: speed setting: no hypothesis of the bench clip or of 3 S8 clips x 40 frames x 60 moved further
#: (the responses are byte-identical; denoiser rows per candidate 56.9 -> 53.9 of 74 before the
#: tilt search's branch and bound). Photos keep the whole grid: there 2 of 1920 hypotheses (S8
#: ``eval lift --protocol photo --frames 4 --subsets away,floor``) moved two steps or more.
RETILT_LOCAL = True
#: Kinematic flips (``backend.service.PoseService._with_flips``) among each frame's hypotheses, as
#: for single photos (capped below the frame's 5 best, so best-of-1 and the track's favourites are
#: the sampler's): better alternatives for the per-frame override, the same track. ``posediff eval
#: sequence`` (MPJPE mm, without -> with): per-frame best-of-20 S8 8 clips 39.7 -> 36.6, S9/S11 5
#: clips 42.8 -> 38.9; default track 42.1 -> 42.1 and 46.8 -> 46.6 (accel 3.8 and 4.6 both).
SEQUENCE_FLIPS = True
#: Re-sample each frame's flips from this share of the schedule (0 = plain flips), as for single
#: photos (``backend.service.FLIP_RESAMPLE``, SDEdit under the frame's guidance, 4 steps), all the
#: frames of a chunk in one batch (:func:`with_flips`); the re-sampled flips may rank level with the
#: frame's best (``backend.service.RESAMPLED_FLIP_BELOW``), so the track can choose them (best-of-1
#: stays the sampler's: at the cap the sampler's candidate comes first). ``posediff eval sequence``
#: (MPJPE mm / accel mm/frame^2; plain flips -> re-sampled): S8 8 clips default track 40.5 / 3.5 ->
#: 37.7 / 3.5 (frame by frame instead of one batch: 36.5; flips of the best 5 only: 37.8),
#: per-frame best-of-20 36.6 -> 28.3; held-out S9/S11 5 clips (frame by frame) 45.3 / 4.4 -> 40.4 /
#: 4.2, best-of-20 38.9 -> 31.4; the moving-average baseline is the same (38.8 and 46.6), so the
#: ratio goes 1.04 -> 0.97 and 0.97 -> 0.87. Track options re-tuned on the S8 responses (motion
#: sigma 0.2 / 0.4, score temperature 0.2 / 0.5, reprojection weight 0 / 0.25 / 1, Whittaker lam 20 /
#: 60, the posterior mean): within 1 mm, defaults kept. Cost (``posediff bench``'s clip, 2
#: threads): 243-267 -> 288-290 ms/frame (5 sources 283-293, 3 steps 285).
SEQUENCE_FLIP_RESAMPLE = 0.3
#: One camera tilt for the clip (:mod:`backend.prior.clip_tilt`), estimated before the first chunk
#: from a quick first pass over its frames and then held fixed for every frame's hypotheses
#: (instead of each hypothesis' own re-tilt on the 10-degree grid); off where the request gives
#: the camera rotation. Measured (``posediff eval sequence``, MPJPE mm / accel mm/frame^2, with the
#: re-sampled flips; per-hypothesis tilt -> clip tilt): S8 8 lab clips, default track 37.7 / 3.5 ->
#: 33.6 / 3.4 (the true rotation given, ``--known-rotation``: 32.5), per-frame best-of-1 49.1 ->
#: 42.9, its moving average 38.8 -> 34.4, best-of-20 28.3 -> 26.2; the clip pitch's error 5.0 ->
#: 2.8 degrees on average (the frames' median was 3.3 degrees too low: the photo prior pulls each
#: frame toward level). S8 8 phone clips (``--protocol photo``, 50 mm, pitch -11..+15): track 33.7
#: -> 31.7, best-of-1 53.0 -> 49.6. Held-out: see ``README.md``. First pass settings on S8 (mean
#: pitch error, degrees): 20 steps 3.2, 10 steps 2.9, 40 steps 5.0 (poses shaped longer under
#: their start tilt confirm it), 40 candidates 3.6, the best 3 / 10 / 20 of each frame 3.1 / 3.5 /
#: 4.8; without the camera prior 1.9, but a person lying on the floor filmed from eye height is
#: then taken for a standing one seen from 70 degrees (with it: 10 degrees, truth 14). On static
#: lying clips (tests' pose, 20 frames) the track is as good or better in 5 of 6 camera placements.
CLIP_TILT = True
#: The first pass: candidates per frame, DDIM steps, and the best of each frame (by rank score) that vote.
CLIP_TILT_CANDIDATES = 20
CLIP_TILT_STEPS = 10
CLIP_TILT_TOP = 5
#: The best candidates of each frame whose flips are added (a photo's: ``backend.service.FLIP_SOURCES``).
SEQUENCE_FLIP_SOURCES = 10
#: A header's frame rate more than this fraction off the timestamps' (:func:`rate_of_timestamps`) is not used ...
FPS_HEADER_TOLERANCE = 0.05
#: ... where at least this many kept frames tell it.
FPS_HEADER_MIN_FRAMES = 5
#: More than this fraction of a video's frames off its nominal spacing: a variable frame rate (:func:`add_source_times`).
VFR_WARN_FRACTION = 0.02
#: The warning on a frame inside a dissolve (:func:`gap_dissolves`).
DISSOLVE_WARNING = ("inside a dissolve from one shot to the next (two pictures at once): filled from the frames "
                    "around it")
#: The warning on the first frame of each shot after a cut (:func:`add_track`).
CUT_WARNING = "a new shot begins here (a cut): its camera is placed so that the person's motion continues"


def _r(a, nd: int = 5) -> list:
    return np.round(np.asarray(a, np.float64), nd).tolist()


def estimate_sequence(service, req: schemas.EstimateRequest, progress: Callable | None = None,
                      cancel: Callable | None = None, frame_source=None) -> schemas.EstimateResponse:
    """Estimate every frame of a sequence and add the track (CONTRACT.md "Sequences").

    Args:
        service: the :class:`backend.service.PoseService`.
        req: ``frames`` (keypoints or images, consecutive) or ``video`` (a local video / folder).
        progress: callable(fraction 0..1); cancel: callable() -> bool (raises Cancelled).
        frame_source: an already opened :class:`backend.vision.video.FrameSource` (the CLI's,
            with its own progress bar); default: opened from ``req.video``.
    Returns:
        :class:`schemas.EstimateResponse` with ``frames[i].track`` and ``sequence``.
    Raises:
        InputError: unreadable video, zero frames, fps not positive, no person in any frame.
    """
    if req.video is not None and req.video.data is not None and frame_source is None:
        return _estimate_uploaded(service, req, progress, cancel)
    if req.frames is not None and any(fr.mirrored for fr in req.frames):  # keypoints in the flipped picture's pixels
        w0 = req.frames[0].camera.width if req.frames[0].camera is not None else None  # the clip's camera
        req = req.model_copy(update={"frames": [unmirrored_keypoint_frame(fr, f"frames[{i}]", w0)
                                                for i, fr in enumerate(req.frames)]})
    fps, items, total, src_fps, src = _frames_of(req, frame_source)
    cam_req = req.video.camera if req.video is not None else (req.frames[0].camera if req.frames else None)
    rotation = service._rotation(cam_req)
    motion = None
    if req.sequence is not None and req.sequence.camera_motion is not None:
        motion = relative_motion(req.sequence.camera_motion, None if req.frames is None else len(req.frames))
    given_zoom = req.sequence.camera_zoom if req.sequence is not None else None
    if given_zoom is not None and req.frames is not None:
        _check_zoom_length(given_zoom, len(req.frames))
    if req.frames is not None and req.sequence is not None:  # before the work: one time per frame, increasing
        uneven_times(req.sequence.times, fps, len(req.frames))
    K_shared = _shared_keypoint_intrinsics(service, req)
    # a camera turning during the clip, from the frames' background where they are images
    # (:mod:`backend.vision.camera_motion`), frame by frame as they are read
    images = req.video is not None or all(fr.image is not None for fr in req.frames or [])
    est = CameraMotion() if motion is None and images and turn_from_background(req.sequence) else None
    # an edited clip's shots: the cuts given, or found in the frames' content (not where the camera is given)
    given_cuts = set(req.sequence.cuts or ()) if req.sequence is not None else set()
    find_cuts = (images and motion is None and not given_cuts and (req.sequence is None or req.sequence.detect_cuts))
    detector = ShotCuts() if find_cuts else None
    marked = mark_cuts(items, detector) if find_cuts else ((i, fr, ph, False) for i, fr, ph in items)
    cuts: list[int] = []
    results: list[schemas.FrameResult] = []
    pending: list = []
    clip: dict = {}  # "tilt": the clip's camera (pitch, roll), estimated on the first chunk

    def flush(n: int):
        """Sample and rank the first ``n`` pending frames (their filtered evidence is in place)."""
        from backend.service import ESTIMATE_STEPS, FLIP_BELOW, RESAMPLED_FLIP_BELOW

        batch = pending[:n]
        conds = [p[1] for p in batch if p[1] is not None]
        num = [req.num_hypotheses * SEQUENCE_OVERSAMPLE for _ in conds]
        smp = service.sampler(req.steps, ESTIMATE_STEPS, req.guidance_scale)
        smp.w.retilt_local = RETILT_LOCAL
        smp.common_plausibility = True
        done = len(results)
        sub = None if progress is None else (lambda f: progress(min(1.0, (done + f * n) / max(total or done + n, 1))))
        if conds and shot_rotation is None and "tilt" not in clip:
            clip["tilt"] = clip_tilt_of(service, conds, seed=req.seed)
        # one tilt for the clip's sampling even where the camera turns (measured: each frame's own
        # tilt from the camera's turn, held-out 5 clips, 2-degree handheld, best-of-1 48.6 -> 50.3 mm)
        res = sample_frames(smp, conds, num, seed=req.seed, progress=sub, cancel=cancel,
                            tilt=clip.get("tilt")) if conds else []
        if SEQUENCE_FLIPS:
            res = with_flips(service, smp, conds, res, req.seed)
        it = iter(res)
        for _i, cond, K, kp_out, photo, warnings in batch:
            if cond is None:
                results.append(schemas.FrameResult(hypotheses=[], aggregate=[[0.0, 0.0, 0.0]] * NUM_JOINTS,
                                                   camera=K.as_dict() if K is not None else None, warnings=warnings))
                continue
            r, own = next(it)
            results.append(service._frame_result(r, cond, K, kp_out, warnings, req.previews, photo,
                                                 task="estimate", keep=req.num_hypotheses, consensus=False,
                                                 plausibility_weight=SEQUENCE_PLAUSIBILITY_WEIGHT, own=own,
                                                 flip_below=RESAMPLED_FLIP_BELOW if SEQUENCE_FLIP_RESAMPLE > 0 else FLIP_BELOW))
        del pending[:n]

    # temporal filter of the 2D evidence: frame t is sampled once its window's later frames are read
    stream = KeypointFilterStream(FILTER_2D_WINDOW, FILTER_2D_ORDER) if FILTER_2D_WINDOW and FILTER_2D_WINDOW > 1 else None
    ready = 0  # pending frames whose evidence is final
    stream_start = 0  # the sequence index of the filter stream's first frame (a new stream at each cut)

    def filtered(out):
        nonlocal ready
        for t, uv in out:
            cond = pending[stream_start + t - len(results)][1]
            if uv is not None:
                apply_filtered_anchors(cond.evidence, uv)
            ready += 1

    K_video = None
    lens_note = None
    shot_rotation = rotation  # the known camera is the first shot's; later shots' tilt is estimated
    given_times = req.sequence.times if req.sequence is not None and req.frames is not None else None

    def frame_time(t: int) -> float | None:
        """Frame ``t``'s time in frames at ``fps`` for the 2D filter: a video's timestamp (read
        with the frame), a keypoint sequence's ``sequence.times``, or None (evenly spaced)."""
        if src is not None and src.timestamps and t < len(src.times):
            return src.times[t] * fps
        return given_times[t] * fps if given_times is not None else None
    source_frames: list[int] = []
    follow = PersonFollower(req.video.person if req.video is not None else None,
                            step=req.video.every if req.video is not None else 1)
    for i, fr, photo, new_shot in marked:
        source_frames.append(int(i))
        field = f"frames[{i}]" if req.video is None else f"video.frame {i}"
        t_seq = len(results) + len(pending)
        if (new_shot or t_seq in given_cuts) and t_seq > 0:  # another camera from here: the shot before is sampled with its own tilt
            cuts.append(t_seq)
            if stream is not None:
                filtered(stream.finish())
                stream = KeypointFilterStream(FILTER_2D_WINDOW, FILTER_2D_ORDER)
                stream_start = t_seq
            if pending:
                flush(len(pending))
            ready = 0
            clip.pop("tilt", None)
            shot_rotation = None
            follow.new_shot()
            if est is not None:
                est.new_shot()
        try:
            K_in = K_shared
            if K_in is None and K_video is not None and photo is not None and tuple(photo.original_size) == (K_video.width, K_video.height):
                K_in = K_video  # one camera for the clip (same image size)
            cond, K, kp_out, ph, warnings = service.frame_conditions(fr, field, K=K_in, photo=photo, follow=follow)
            if K_video is None and photo is not None:
                lens_note = assumed_lens_note(photo, fr.camera)
            K_video = K_video or (K if photo is not None else None)
            if est is not None:
                _push_motion(est, ph, K, kp_out, follow.frame_people)
            if motion is not None or est is not None:
                if motion is not None and t_seq >= len(motion):
                    raise InputError("sequence.camera_motion", f"{len(motion)} rotations, but the video has more kept "
                                     f"frames (about {total}): give one per kept frame")
                if shot_rotation is not None:  # the first frame's known camera, turned to this frame
                    cond.rotation = (motion[t_seq] if motion is not None else est.motion[-1]) @ rotation
            if shot_rotation is None and rotation is not None:
                cond.rotation = None  # a later shot of a clip whose first shot's camera is known
            if cond.evidence is None and not cond.has_known:
                cond = None
                warnings = ["no usable 2D evidence in this frame"]
        except NoPersonError as e:
            cond, K, kp_out, ph = None, K_shared or K_video, None, None
            warnings = [e.message] if e.message.startswith("the person followed") else []  # not an empty frame
            if est is not None:
                if K is None and photo is not None:  # nobody found yet: the frame's own camera
                    from backend.vision.photo import intrinsics_for

                    cam = req.video.camera if req.video is not None else None
                    K = intrinsics_for(photo, cam.model_dump(exclude_none=True, exclude={"rotation"}) if cam else None)
                _push_motion(est, photo, K, None, follow.frame_people)
        if cancel is not None and cancel():
            from backend.errors import Cancelled

            raise Cancelled("cancelled")
        pending.append((i, cond, K, kp_out, ph if req.previews else None, warnings))  # the image only for overlays
        ev = cond.evidence if cond is not None else None
        if stream is None:
            ready += 1
        else:
            filtered(stream.push(None if ev is None else ev.anchor_uv.cpu().numpy(), None if ev is None else ev.weight.cpu().numpy(),
                                 frame_time(t_seq)))
        if ready >= CHUNK:
            flush(ready)
            ready = 0
    if stream is not None:
        filtered(stream.finish())
    if pending:
        flush(len(pending))
    if not results:
        raise InputError("video.path" if req.video is not None else "frames", "the sequence has no frames")
    if all(not fr.hypotheses for fr in results):
        if 0 < follow.most_found <= follow.person:
            field = "video.person" if req.video is not None else "frames[0].person"
            raise InputError(field, f"person {follow.person} requested but no frame has more than {follow.most_found} "
                                    "(0 = largest)")
        raise InputError("video.path" if req.video is not None else "frames",
                         "no person found in any frame of the sequence; use a clip where one whole person is clearly "
                         "visible")
    fixed = dict(req.sequence.fixed or {}) if req.sequence is not None else {}
    zoom = None
    if est is not None:
        motion = est.result()  # None: the camera did not turn
        zoom = est.zoom_result()  # None: a fixed lens
    if given_zoom is not None:
        _check_zoom_length(given_zoom, len(results))  # a video's kept frames (known once read)
        zoom = np.asarray(given_zoom, np.float64) / given_zoom[0]
    if zoom is not None:  # each frame's own focal length: the root's depth from the 2D is solved with it
        for fr, z in zip(results, zoom):
            if fr.camera and "fx" in fr.camera:
                fr.camera = {**fr.camera, "fx": fr.camera["fx"] * float(z), "fy": fr.camera["fy"] * float(z)}
    if detector is not None:
        gap_dissolves(results, detector.dissolves, cuts)
    moving = bool(req.sequence is not None and req.sequence.moving_camera)
    times = info_times = None
    header_note = None
    if src is not None:
        info_times = src.times[:len(source_frames)]
        times = info_times if increasing(info_times) else None  # broken timestamps: taken as evenly spaced
        if times is not None and src.timestamps:
            src_fps, header_note = rate_of_timestamps(times, src_fps, src.every)
            fps = src_fps / src.every
    elif req.sequence is not None:
        times = req.sequence.times
    info = add_track(results, fps, rotation, fixed=fixed, motion=motion, moving_camera=moving, cuts=cuts, times=times)
    info.source_frames, info.source_fps = source_frames, src_fps
    if header_note:
        info.warnings.append(header_note)
    if lens_note:
        info.warnings.append(lens_note)
    if src is not None:
        add_source_times(info, info_times, src_fps, src.every)
    info.camera_zoom = None if zoom is None else _r(zoom, 5)
    if progress is not None:
        progress(1.0)
    return schemas.EstimateResponse(joint_names=list(JOINT_NAMES), frames=results, sequence=info)


def gap_dissolves(results: list[schemas.FrameResult], dissolves: list[tuple[int, int]], cuts: list[int]) -> None:
    """Frames inside a dissolve show two pictures at once (two people, or one twice): their estimates
    are dropped (in place: no hypotheses, :data:`DISSOLVE_WARNING`) and the track fills them from
    the frames around. ``dissolves``: ``(first, cut)`` from :class:`backend.vision.shot_cuts.ShotCuts`,
    the cut found about the blend's middle, so the frames as far after it are dropped too (up to the
    next cut)."""
    for first, cut in dissolves:
        later = [c for c in cuts if c > cut]
        end = min(cut + (cut - first) - 1, later[0] if later else len(results), len(results))
        for t in range(first + 1, end):
            fr = results[t]
            if fr.hypotheses:
                fr.hypotheses, fr.keypoints = [], None
                fr.warnings.append(DISSOLVE_WARNING)


def increasing(times) -> bool:
    """Whether ``times`` ``[T]`` strictly increase (one frame or none: yes)."""
    return len(times) < 2 or bool((np.diff(np.asarray(times, np.float64)) > 0).all())


def uneven_times(times: list[float] | None, fps: float, frames: int, field: str = "sequence.times") -> np.ndarray | None:
    """``[T]`` frame times in frames at ``fps`` (from 0) for the track where ``times`` (seconds, one per
    frame) are unevenly spaced (a variable frame rate: :func:`backend.vision.video.variable_frame_rate`
    above :data:`VFR_WARN_FRACTION`); None where they are even or not given (the track's evenly
    spaced frames, exactly as without them).

    Raises:
        InputError: not one time per frame, or not increasing (field ``field``).
    """
    from backend.vision.video import variable_frame_rate

    if times is None:
        return None
    t = np.asarray(times, np.float64)
    if t.shape != (frames,):
        raise InputError(field, f"{len(t)} times for {frames} frames: give one per frame (seconds)")
    if not increasing(t):
        raise InputError(field, "the frames' times must increase (seconds, in the frames' order)")
    if variable_frame_rate(t, fps) <= VFR_WARN_FRACTION:
        return None
    return (t - t[0]) * fps


def assumed_lens_note(photo, camera: schemas.Camera | None) -> str | None:
    """The warning for footage whose lens was assumed (:data:`backend.camera.DEFAULT_FOOTAGE_FOCAL_35MM`):
    neither the request's ``camera`` nor the file (an iPhone video's metadata, a frame's EXIF) gave
    one; None where one did. ``photo``: the clip's first decoded frame."""
    given = camera is not None and any(v is not None for v in (camera.fx, camera.fy, camera.focal_35mm))
    if given or photo.focal_35mm is not None:
        return None
    return (f"the footage does not say its lens: a {photo.default_focal_35mm:g} mm equivalent (a phone's main camera or a "
            "webcam) was assumed; if it was filmed with another (zoomed in, a telephoto, a film camera), give it "
            "(the add-on's Lens, --lens, camera.focal_35mm): a wrong lens bends the depth of the pose")


def rate_of_timestamps(times: list[float], fps: float, every: int = 1) -> tuple[float, str | None]:
    """The source's frame rate as its frames' timestamps give it, where the file's header says
    otherwise: ``(rate, warning)``, or ``(fps, None)`` where they agree within
    :data:`FPS_HEADER_TOLERANCE` (or there are too few frames to tell).

    A container's nominal rate can be wrong while its timestamps are right (a Matroska / WebM file
    remuxed with another default duration, a screen recorder's header): the track's motion model,
    its contacts and the reported ``sequence.fps`` then take the timestamps' rate (the kept frames'
    mean spacing). Only where the frames are evenly spaced at that rate: a variable
    frame rate (a phone in low light) keeps its header's nominal rate, and its frames' own times
    (:func:`add_source_times`).

    Args:
        times: ``[T]`` the kept frames' timestamps (seconds, increasing); fps: the header's rate;
            every: the kept frames' step in the source.
    """
    from backend.vision.video import variable_frame_rate

    if len(times) < FPS_HEADER_MIN_FRAMES:
        return fps, None
    step = float(np.median(np.diff(np.asarray(times, np.float64)))) / every
    if not step > 0:
        return fps, None
    if abs(1.0 / (step * fps) - 1.0) <= FPS_HEADER_TOLERANCE:
        return fps, None
    if variable_frame_rate(times, 1.0 / step, every) > VFR_WARN_FRACTION:  # uneven: a variable rate, the header nominal
        return fps, None
    step = (times[-1] - times[0]) / (len(times) - 1) / every  # evenly spaced: the mean (timestamps rounded to ms)
    measured = 1.0 / step
    return measured, (f"the file's header says {fps:.4g} fps, but its frames are {1000.0 * step:.1f} ms apart "
                      f"({measured:.4g} fps): the track takes {measured:.4g} fps; Blender and other players may show "
                      "the clip at the header's rate")


def add_source_times(info: schemas.SequenceInfo, times: list[float], fps: float, every: int = 1) -> None:
    """Each frame's time in the source (``info.source_times``, seconds, the decoder's timestamps)
    and, where the spacing is not the nominal ``every / fps`` (:func:`backend.vision.video.variable_frame_rate`
    above :data:`VFR_WARN_FRACTION`), ``info.variable_frame_rate`` and a clip warning: Blender's movie
    clip shows such a video by time, so the add-on keys each frame at its time, not its count.
    Timestamps that do not increase (a file spliced together, a broken stream) are not reported:
    the frames are then taken as evenly spaced."""
    from backend.vision.video import variable_frame_rate

    if not increasing(times):
        return
    info.source_times = [round(float(t), 6) for t in times]
    off = variable_frame_rate(times, fps, every)
    info.variable_frame_rate = off > VFR_WARN_FRACTION
    if info.variable_frame_rate:
        dt = np.diff(times) * 1000.0
        info.warnings.append(f"a variable frame rate (phone footage in low light, a screen recording): {off:.0%} of the "
                             f"frames are not {1000.0 * every / fps:.1f} ms apart ({dt.min():.1f}-{dt.max():.1f} ms); "
                             "each is keyed at its own time, where Blender's movie clip shows it")


def _check_zoom_length(zoom: list, frames: int) -> None:
    """Raises InputError (field ``sequence.camera_zoom``) unless there is one focal length per frame."""
    if len(zoom) != frames:
        raise InputError("sequence.camera_zoom", f"{len(zoom)} focal lengths for the sequence's {frames} frames: give "
                         "one per frame")


def _push_motion(est: CameraMotion, photo, K: Intrinsics | None, keypoints: dict | None, others=()) -> None:
    """The next frame into the camera-motion estimate: its image with the person's keypoints' box and every
    detected person's crop (``others``: squares in the pixels of ``photo.rgb``) left out (``photo``: a
    :class:`backend.vision.photo.Photo`, ``K`` and ``keypoints`` in its original pixels); a frame without
    an image or a camera is held."""
    if photo is None or K is None:
        est.hold()
        return
    h, w = photo.rgb.shape[:2]
    s = w / K.width
    Ks = Intrinsics(K.fx * s, K.fy * s, K.cx * s, K.cy * s, w, h)
    boxes = [np.asarray(b, np.float64) for b in others]
    if keypoints:
        uv = np.array([kp[:2] for kp in keypoints.values()], np.float64) * s
        pad = 0.12 * float(max(np.ptp(uv[:, 0]), np.ptp(uv[:, 1]), 1.0))
        boxes.append(np.array([uv[:, 0].min() - pad, uv[:, 1].min() - 2 * pad, uv[:, 0].max() + pad, uv[:, 1].max() + pad]))
    est.push(photo.rgb, Ks, boxes or None)


def with_flips(service, smp, conds: list, res: list, seed=0) -> list:
    """Each frame's candidates with their kinematic flips (:meth:`backend.service.PoseService._with_flips`),
    re-sampled from :data:`SEQUENCE_FLIP_RESAMPLE` of the schedule in one batch for all the frames
    (:func:`backend.prior.batch.resample_stacked`; frame by frame where they cannot share one);
    returns ``[(result, own)]`` per frame (``own`` None: no flips)."""
    from backend.prior.batch import resample_stacked, stackable
    from backend.service import FLIP_RESAMPLE_STEPS

    wp = SEQUENCE_PLAUSIBILITY_WEIGHT
    cands = [service._flip_candidates(smp, r, c, wp, sources=SEQUENCE_FLIP_SOURCES) for r, c in zip(res, conds)]
    have = [i for i, fc in enumerate(cands) if fc is not None]
    flips: dict[int, object] = {}
    if SEQUENCE_FLIP_RESAMPLE > 0 and have:
        sub = [conds[i] for i in have]
        args = ([cands[i][0] for i in have], [res[i].pitch[cands[i][2]] for i in have],
                [res[i].roll[cands[i][2]] for i in have])
        if len(have) > 1 and stackable(sub):
            flips = dict(zip(have, resample_stacked(smp, sub, *args, SEQUENCE_FLIP_RESAMPLE, seed=seed,
                                                    steps=FLIP_RESAMPLE_STEPS)))
        else:
            flips = {i: smp.resample(w, p, r, conds[i], SEQUENCE_FLIP_RESAMPLE, seed=seed, steps=FLIP_RESAMPLE_STEPS)
                     for i, w, p, r in zip(have, *args)}
    return [(r, None) if fc is None else service._append_flips(smp, r, *fc, flips.get(i))
            for i, (r, fc) in enumerate(zip(res, cands))]


def apply_filtered_anchors(ev, uv: np.ndarray) -> None:
    """Put a frame's filtered 2D keypoints (``[J, 2]`` normalised) in place of its raw ones, in place:
    the evidence of each seen joint moves by (filtered - raw) (:meth:`Evidence2D.shift`: keypoint
    Gaussians re-centred, heatmaps translated); unseen joints (weight 0) stay as they are."""
    raw = ev.anchor_uv.cpu().numpy().astype(np.float64)
    seen = ev.weight.cpu().numpy() > 0
    ev.shift(np.where(seen[:, None], np.asarray(uv, np.float64) - raw, 0.0))


def _estimate_uploaded(service, req: schemas.EstimateRequest, progress, cancel) -> schemas.EstimateResponse:
    """:func:`estimate_sequence` of an uploaded video (``video.data``): streamed from a temporary file,
    which is removed afterwards; errors about the file name ``video.data``."""
    from backend.vision.video import uploaded_video

    with uploaded_video(req.video.data, "video.data") as path:
        local = req.model_copy(update={"video": req.video.model_copy(update={"path": path, "data": None})})
        try:
            return estimate_sequence(service, local, progress, cancel)
        except InputError as e:
            if e.field != "video.path":
                raise
            raise InputError("video.data", e.message.replace(os.path.basename(path), "the uploaded video")) from None


def sample_frames(sampler, conds: list, num: list[int], seed=0, progress=None, cancel=None,
                  tilt: tuple[float, float] | None = None) -> list:
    """Sample hypotheses for several frames; returns one SampleResult per frame (same order).

    Frames with 2D evidence only share one batch (:func:`backend.prior.batch.sample_stacked`);
    others are sampled one by one. ``tilt``: the clip's camera (pitch, roll), radians, held fixed
    (:func:`clip_tilt_of`); None: searched per hypothesis.
    """
    from backend.prior.batch import sample_stacked, stackable

    if stackable(conds):
        return sample_stacked(sampler, conds, num, seed=seed, progress=progress, cancel=cancel, temporal_sigma=TEMPORAL_SIGMA,
                              tilt=tilt)
    out = []
    for n, (c, k) in enumerate(zip(conds, num)):
        sub = None if progress is None else (lambda f, n=n: progress((n + f) / len(conds)))
        fixed = None if tilt is None else (np.full(k, tilt[0]), np.full(k, tilt[1]))  # ignored without 2D
        out.append(sampler.sample(k, c, seed=seed, progress=sub, cancel=cancel, tilt=fixed))
    return out


def clip_tilt_of(service, conds: list, seed=0) -> tuple[float, float] | None:
    """The clip's camera pitch and roll (radians, :func:`backend.prior.clip_tilt.clip_tilt`) from a
    quick first pass over the first chunk's frames (:data:`CLIP_TILT_CANDIDATES` candidates each,
    :data:`CLIP_TILT_STEPS` steps, the :data:`CLIP_TILT_TOP` best by rank score), or None where the
    frames cannot share a batch (known joints, fewer than 2 frames) or :data:`CLIP_TILT` is off."""
    from backend.prior.batch import sample_stacked, stackable
    from backend.prior.clip_tilt import clip_tilt
    from backend.ranking import rank_score

    if not CLIP_TILT or not stackable(conds):
        return None
    smp = service.sampler(CLIP_TILT_STEPS, CLIP_TILT_STEPS)
    smp.common_plausibility = True
    res = sample_stacked(smp, conds, [CLIP_TILT_CANDIDATES] * len(conds), seed=seed)
    poses, roots = [], []
    for r in res:
        score = rank_score(r.loglik, r.plausibility, len(r.world_rel), plausibility_weight=SEQUENCE_PLAUSIBILITY_WEIGHT)
        top = np.argsort(-score)[:CLIP_TILT_TOP]
        poses.append(r.camera_rel[top])
        roots.append(r.camera_root[top])
    return clip_tilt(smp, np.stack(poses), np.concatenate(roots).mean(0))


def _frames_of(req: schemas.EstimateRequest, frame_source):
    """(fps of the kept frames, iterator of (source index, EstimateFrame, Photo or None), frame count, source fps,
    the :class:`backend.vision.video.FrameSource` or None for frames in the request)."""
    fps_req = req.sequence.fps if req.sequence is not None else None
    if req.video is None:
        if fps_req is None:
            raise InputError("sequence.fps", "give the frame rate of the sequence (frames per second > 0)")
        return fps_req, ((i, fr, None) for i, fr in enumerate(req.frames)), len(req.frames), fps_req, None
    from backend.vision.video import open_frames

    src = frame_source or open_frames(req.video.path, every=req.video.every, start=req.video.start, end=req.video.end,
                                      fps=fps_req, field="video")
    frame = schemas.EstimateFrame(image="<video frame>", camera=req.video.camera)  # video.person: the follower's

    mirrored = req.video.mirrored  # flipped before the camera turn, the cut search and the detector see it

    def gen():
        for fr in src:
            yield fr.index, frame, mirror_photo(fr.photo()) if mirrored else fr.photo()

    return src.fps / src.every, gen(), src.count, src.fps, src


def _shared_keypoint_intrinsics(service, req: schemas.EstimateRequest) -> Intrinsics | None:
    """One camera for keypoint sequences: the first frame's camera, image size from all frames' keypoints,
    a missing focal length footage's (:data:`backend.camera.DEFAULT_FOOTAGE_FOCAL_35MM`)."""
    if req.frames is None or any(fr.keypoints is None for fr in req.frames):
        return None
    from backend.camera import DEFAULT_FOOTAGE_FOCAL_35MM
    from backend.service import keypoint_arrays

    uv = np.concatenate([keypoint_arrays(fr.keypoints, f"frames[{i}].keypoints")[0] for i, fr in enumerate(req.frames)])
    return service._intrinsics(req.frames[0].camera, "frames[0].camera", uv, default_35mm=DEFAULT_FOOTAGE_FOCAL_35MM)


def anchors_of(fr: schemas.FrameResult) -> tuple[np.ndarray, np.ndarray] | None:
    """Normalised 2D anchors ``[J, 2]`` and weights ``[J]`` of a frame result's keypoints and camera."""
    if not fr.keypoints or not fr.camera:
        return None
    K = Intrinsics(**fr.camera)
    uv = np.zeros((NUM_JOINTS, 2))
    w = np.zeros(NUM_JOINTS)
    for name, kp in fr.keypoints.items():
        if name in JOINT_INDEX:
            j = JOINT_INDEX[name]
            uv[j] = ((kp[0] - K.cx) / K.fx, (kp[1] - K.cy) / K.fy)
            w[j] = kp[2] if len(kp) > 2 else 1.0
    return uv, w


def shared_tilt(frames: list[schemas.FrameResult], motion: np.ndarray | None = None) -> tuple[float, float]:
    """One camera pitch and roll (radians) for the clip: the median over frames of the best hypothesis';
    with ``motion`` (``[T, 3, 3]``, :func:`add_track`), each frame's tilt turned back to the first frame's camera."""
    from backend.prior.geometry import pitch_roll_of

    p, r = [], []
    for t, fr in enumerate(frames):
        h = fr.hypotheses[0] if fr.hypotheses else None
        if h is None or h.camera_pitch_deg is None or h.camera_roll_deg is None:
            continue
        pt, rt = math.radians(h.camera_pitch_deg), math.radians(h.camera_roll_deg)
        if motion is not None:
            pt, rt = pitch_roll_of(motion[t].T @ tilt_rotation(pt, rt))
        p.append(pt)
        r.append(rt)
    return (float(np.median(p)) if p else 0.0, float(np.median(r)) if r else 0.0)


def relative_motion(motion, frames: int | None) -> np.ndarray:
    """A clip's camera turns ``[T, 3, 3]`` made relative to its first frame's camera (``M_t M_0^T``).

    Raises:
        InputError: not one per frame (``frames``, when known; field ``sequence.camera_motion``).
    """
    motion = np.asarray(motion, np.float64)
    if frames is not None and len(motion) != frames:
        raise InputError("sequence.camera_motion", f"{len(motion)} rotations for the sequence's {frames} frames: "
                         "give one per frame")
    return motion @ motion[0].T if len(motion) else motion


def turn_from_background(seq: schemas.SequenceOptions | None) -> bool:
    """Whether a clip of images estimates its camera's turn from their background
    (:mod:`backend.vision.camera_motion`): yes unless ``estimate_camera_motion`` is false, and, for a
    camera that travels (``moving_camera``), only when ``estimate_camera_motion`` is given true: the
    turn model is a camera turning about its centre, and a travelling camera's background parallax
    reads as a turn (a wall 5 m away passing by 3 m as a 31-degree pan), which would turn the walk."""
    if seq is None:
        return True
    if seq.moving_camera:
        return bool(seq.estimate_camera_motion and "estimate_camera_motion" in seq.model_fields_set)
    return bool(seq.estimate_camera_motion)


#: A track taken from a camera in one place whose supporting feet would need a camera travelling at
#: this speed or more to stand still (m/s, :func:`backend.prior.camera_path.camera_path_from_feet` on
#: the track) gets a clip warning that the camera may have travelled with the person. ``posediff eval
#: tracking``'s responses (4 walks, 4 px): 0.85-1.34 m/s from a camera travelling with the walker,
#: 0.12-0.29 m/s from one staying in place.
TRAVEL_HINT_SPEED = 0.5
#: The least clip length for that hint (seconds).
TRAVEL_HINT_MIN_S = 1.0


def travel_hint(tr: Track, fps: float) -> list[str]:
    """A clip warning when the track's feet slide as if the camera travelled with the person (a
    tracking shot estimated as a camera in one place: the person walks on the spot), else none."""
    from backend.prior.camera_path import camera_path_from_feet

    if len(tr.world) < TRAVEL_HINT_MIN_S * fps:
        return []
    C, supported = camera_path_from_feet(tr.world + tr.world_root[:, None], fps)
    if not supported.any():
        return []
    speed = float(np.linalg.norm(np.gradient(C[:, :2], axis=0), axis=-1)[supported].mean() * fps)
    if speed < TRAVEL_HINT_SPEED:
        return []
    return [f"the person's feet slide as if the camera travelled with them at {speed:.1f} m/s (the person walking "
            "on the spot): if it did (a tracking shot), estimate with sequence.moving_camera (add-on: 'Camera travels "
            "with the person'; CLI: --moving-camera)"]


def add_track(frames: list[schemas.FrameResult], fps: float, rotation: np.ndarray | None = None,
              fixed: dict[int, int] | None = None, opts: TrackOptions | None = None,
              motion: np.ndarray | None = None, moving_camera: bool = False,
              cuts: list[int] | None = None, times: list[float] | None = None) -> schemas.SequenceInfo:
    """Solve the track over frame results (in place: sets ``frames[i].track``, adds gap warnings).

    Works only on the response's per-frame hypotheses (joints, score, root_translation) and
    keypoints, so it also re-solves a track from a previous response (per-frame override).
    ``rotation``: the first frame's world->camera rotation when known; ``motion``: ``[T, 3, 3]``
    the camera's turn from the first frame's camera to each frame's (:func:`backend.prior.track.solve_track`);
    ``moving_camera``: the camera travels with the person, its path recovered from their feet
    (reported in ``sequence.camera_translation``); ``cuts``: frames where a new shot begins (an
    edited clip): each shot is solved on its own with its own tilt (``rotation`` is the first
    shot's), and the shots' worlds are joined so that the person's motion continues
    (:mod:`backend.prior.shots`; every frame's camera reported in ``sequence.camera_motion`` and
    ``camera_translation``). A shot in which nobody is found joins the shot before it. ``times``:
    each frame's time in seconds (a variable-frame-rate video's ``sequence.source_times``): the
    track then takes the frames' own spacing (:func:`backend.prior.track.solve_track`), where it
    is uneven (:func:`uneven_times`).

    Raises:
        InputError: no frame has a person (field ``frames``), a fixed choice that does not exist
            (field ``sequence.fixed``), or a camera motion of another length (``sequence.camera_motion``).
    """
    from backend.prior.geometry import pitch_roll_of

    joints, scores, roots, anchors, reproj = [], [], [], [], []
    for fr in frames:
        if fr.hypotheses:
            joints.append(np.array([h.joints for h in fr.hypotheses]))
            scores.append(np.array([h.score for h in fr.hypotheses]))
            roots.append(np.array([h.root_translation for h in fr.hypotheses]))
            reproj.append(np.array([np.nan if h.reprojection_error_px is None else h.reprojection_error_px
                                    for h in fr.hypotheses]))
        else:
            joints.append(None)
            scores.append(None)
            roots.append(None)
            reproj.append(None)
        anchors.append(anchors_of(fr))
    if motion is not None:
        motion = relative_motion(motion, len(frames))
    for t, k in (fixed or {}).items():
        if not 0 <= t < len(frames):
            raise InputError(f"sequence.fixed.{t}", f"frame {t} is not in the sequence (its {len(frames)} frames are "
                                                    f"0-{len(frames) - 1})")
        n = len(frames[t].hypotheses)
        if not 0 <= k < n:
            raise InputError(f"sequence.fixed.{t}", f"frame {t} has no hypothesis {k} (it has {n}: 0-{n - 1})" if n
                             else f"frame {t} has no hypotheses (nobody was found there)")
    if all(j is None for j in joints):
        raise InputError("frames", "no person found in any frame of the sequence")
    breaks = {t for t, fr in enumerate(frames) if any(w.startswith(REPICK_WARNING) for w in fr.warnings)}
    ft = uneven_times(times, fps, len(frames))
    shots = shot_ranges(cuts, joints)
    solved = []
    for si, (a, b) in enumerate(shots):
        m = None if motion is None else relative_motion(motion[a:b], None)
        if si == 0 and rotation is not None:
            R = np.asarray(rotation, np.float64)
            p, r = pitch_roll_of(R)
        else:
            p, r = shared_tilt(frames[a:b], m)
            R = tilt_rotation(p, r)
        tr_s = solve_track(joints[a:b], scores[a:b], roots[a:b], fps, rotation=R, anchors=anchors[a:b],
                           fixed={t - a: k for t, k in (fixed or {}).items() if a <= t < b}, opts=opts,
                           reprojection=reproj[a:b], motion=m, breaks={t - a for t in breaks if a < t < b},
                           moving_camera=moving_camera, times=None if ft is None else ft[a:b])
        solved.append(_Shot(tr_s, R, m, p, r))
    tr: Track = solved[0].track
    rotation, pitch, roll = solved[0].rotation, solved[0].pitch, solved[0].roll
    camera_translation = None if tr.camera is None else _r(tr.camera @ rotation.T)
    if len(shots) > 1:
        from backend.prior.shots import join_shots

        tr, motion, centres = join_shots([x.track for x in solved], [x.rotation for x in solved], [x.motion for x in solved], fps)
        camera_translation = _r(centres)
    for t, fr in enumerate(frames):
        fr.track = schemas.TrackPose(joints=_r(tr.joints[t]), root_translation=_r(tr.root[t]), world_joints=_r(tr.world[t]),
                                     world_root=_r(tr.world_root[t]), hypothesis=int(tr.choice[t]),
                                     contacts={"left_foot": bool(tr.contacts[t, 0]), "right_foot": bool(tr.contacts[t, 1])})
        for w in tr.warnings.get(t, []):
            if w not in fr.warnings:
                fr.warnings.append(w)
        if not fr.hypotheses:
            fr.aggregate = fr.track.joints
    for a, _ in shots[1:]:
        if CUT_WARNING not in frames[a].warnings:
            frames[a].warnings.append(CUT_WARNING)
    clip_warnings = [] if moving_camera else list(dict.fromkeys(w for x in solved for w in travel_hint(x.track, fps)))
    if len(shots) > 1:
        clip_warnings.append(f"{len(shots) - 1} cut{'s' if len(shots) > 2 else ''} (a new shot at frame"
                             f"{'s' if len(shots) > 2 else ''} {', '.join(str(a) for a, _ in shots[1:])}): each shot "
                             "has its own camera, placed so that the person's motion continues across the cut")
    return schemas.SequenceInfo(warnings=clip_warnings, fps=float(fps), camera_pitch_deg=round(math.degrees(pitch), 2),
                                camera_roll_deg=round(math.degrees(roll), 2), frames=len(frames), floor_z=round(tr.floor, 5),
                                gaps=[t for t in range(len(frames)) if not frames[t].hypotheses],
                                camera_motion=None if motion is None else _r(motion, 7), moving_camera=moving_camera,
                                camera_translation=camera_translation, cuts=[a for a, _ in shots[1:]],
                                shots=[] if len(shots) < 2 else [
                                    schemas.ShotInfo(start=a, frames=b - a, camera_pitch_deg=round(math.degrees(x.pitch), 2),
                                                     camera_roll_deg=round(math.degrees(x.roll), 2))
                                    for (a, b), x in zip(shots, solved)])


class _Shot(NamedTuple):
    """One shot's solved track, its first frame's world->camera rotation, its camera's turn (or None)
    and its tilt (radians)."""

    track: Track
    rotation: np.ndarray
    motion: np.ndarray | None
    pitch: float
    roll: float


def shot_ranges(cuts, joints: list) -> list[tuple[int, int]]:
    """The shots ``[(first frame, end frame)]`` between ``cuts`` (frames where a new shot begins) of a
    sequence whose frames have hypotheses ``joints`` (None: nobody found): cuts outside ``1..T-1``
    are dropped, and a shot in which nobody is found joins the shot before it (the first, the one
    after it), so that every shot has a pose to solve from."""
    T = len(joints)
    bounds = [0, *sorted({int(c) for c in (cuts or ()) if 0 < int(c) < T}), T]
    shots = [(a, b) for a, b in zip(bounds[:-1], bounds[1:])]
    seen = [any(joints[t] is not None for t in range(a, b)) for a, b in shots]
    out: list[list[int]] = []
    for (a, b), ok in zip(shots, seen):
        if out and (not ok or not out[-1][2]):
            out[-1][1] = b
            out[-1][2] = out[-1][2] or ok
        else:
            out.append([a, b, ok])
    return [(a, b) for a, b, _ in out]
