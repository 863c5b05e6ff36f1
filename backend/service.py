"""PoseService: the one object that the CLI and the HTTP server call.

It holds the diffusion prior (loaded once), the 2D detector (loaded on first use) and runs the
three tasks of the method on requests validated by :mod:`backend.http.schemas`, the one place that
checks what can be checked without the data; the service only reports what needs it (an
unreadable image, nobody in a photo) as :class:`backend.errors.InputError` naming the field.
Every method takes optional ``progress(fraction)`` and ``cancel() -> bool`` callbacks; a
cancelled request raises :class:`backend.errors.Cancelled` between denoising steps.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Callable

import numpy as np
import torch

from backend import __version__, ranking
from backend.camera import DEFAULT_FOCAL_35MM, DEFAULT_FOOTAGE_FOCAL_35MM, Intrinsics, default_intrinsics, resolve_intrinsics
from backend.errors import InputError
from backend.http import schemas
from backend.prior.evidence import Evidence2D, KeypointEvidence
from backend.prior.guidance import GuidanceWeights
from backend.prior.model import load_prior, pick_device
from backend.prior.sampler import Conditions, GuidedSampler, SampleResult
from backend.ranking import aggregate, completion_selection, consensus_first, diversity, rank_score
from backend.skeleton import JOINT_INDEX, JOINT_NAMES, NUM_JOINTS, PARENTS, anchor_directions
from backend.vision.mirror import mirror_photo, unmirrored_keypoint_frame
from backend.vision.visibility import MIN_PRESENCE, at_border, border_band, inside_frame, unseen_warning

Progress = Callable[[float], None] | None
CancelCheck = Callable[[], bool] | None

#: Default sampling settings (see ``posediff eval`` for how they were chosen). Photos, re-checked
#: (2026-12-04, S8 16 frames away from standing, best-of-1 / best-of-20 mm, noisy and 24 mm): 40
#: steps 42.6 / 31.9 and 59.2 / 43.4; 25 steps 50.2 / 33.3 and 64.7 / 41.9; 60 steps 49.0 / 34.9 and
#: 57.1 / 44.3.
ESTIMATE_STEPS = 40
GENERATE_STEPS = 25
#: Keypoints of one person spanning fewer pixels than this get a warning (all on one spot: the
#: depth is unconstrained; a person that small is no detector's output).
MIN_PERSON_PX = 8.0
OVERSAMPLE = 3
#: A single frame's estimate from 2D evidence alone (a photo or its keypoints, no sequence) draws
#: this many candidates per kept hypothesis instead (:func:`_oversampled`; S9+S11 photos away from
#: standing, best-of-20 -3.5 mm, best-of-1 unchanged, +35 % time: see there).
PHOTO_OVERSAMPLE = 5
#: Measured and not kept (2026-12-04): particle guidance (Corso et al. 2024, "Particle Guidance:
#: non-i.i.d. diverse sampling with diffusion models"), each DDIM step moving every candidate's x0
#: away from the kernel-weighted mean of the others (RBF, median bandwidth) by a share ``g (1 -
#: frac)``, in the camera frame for photos and on the free joints in the world frame for completion.
#: S8 photos away from standing, 16 frames, best-of-1 / best-of-20 mm, noisy and 24 mm: none 42.6 /
#: 31.9 and 59.2 / 43.4; g 0.2 43.5 / 32.5 and 56.7 / 44.1; depth only, g 0.5: 48.1 / 31.7 and 66.3 /
#: 45.5. Completion (S8 24 frames, 17-joint best-of-20 legs / arms / one side): none 47.5 / 87.1 /
#: 51.5, g 0.1 47.3 / 85.5 / 53.0, g 0.3 49.6 / 86.0 / 52.2. The covering-set selection and the
#: re-sampled flips already spread the kept hypotheses; pushing the samples apart makes them less typical.
#: Kinematic flips (:mod:`backend.prior.flips`) widen a single photo's pool: each of the
#: ``FLIP_SOURCES`` best-scored candidates gives one variant per limb bone (thigh, shin, upper arm,
#: forearm) turned to its other depth along the camera rays; they fit the 2D as their source does and
#: are scored by the same common-draw plausibility. A variant is ranked at most level with the
#: sampler's own ``FLIP_BELOW``-th best candidate, so the first hypotheses stay the sampler's
#: (:meth:`PoseService._frame_result`; plain flips: sequences; a photo's re-sampled flips use
#: ``RESAMPLED_FLIP_BELOW``). See :meth:`PoseService._with_flips` for the measurements.
#: Sequences use them too (``backend.sequence.SEQUENCE_FLIPS``): per-frame best-of-20 falls, the
#: track stays (flips of the best 20 ranked freely: 8 S8 clips track 42.1 -> 42.2).
FLIP_SOURCES = 10
FLIP_BELOW = 5
#: Re-sampled flips (below) are capped at the sampler's best instead: level with it, they take part
#: in the consensus that picks the default key (:func:`backend.ranking.consensus_first`, the best 5
#: by score), which plain flips made worse (held-out noisy best-of-1 62.2 -> 70.3 ranked freely).
#: S8 16 frames away from standing, best-of-1 of exact / noisy / 24 mm / swapped+cut off at the edge
#: (cap at the 5th -> 3rd -> 2nd -> 1st): 53.2 / 61.2 / 72.5 / 78.9 -> 49.7 / 54.4 / 66.3 / 70.1 ->
#: 46.7 / 53.4 / 67.1 / 72.7 -> 46.3 / 47.0 / 60.4 / 69.6, best-of-20 unchanged. Held-out S9/S11 16
#: frames, best-of-1 (5th -> 1st): away exact 63.9 -> 54.3, noisy 62.4 -> 64.8, 24 mm 83.5 -> 86.6,
#: swapped+cut off 102.4 -> 95.6, no EXIF 86.0 -> 74.5; floor 59.0 -> 46.8, 69.5 -> 58.0, 79.2 ->
#: 80.2, 104.1 -> 91.0, 79.8 -> 63.5; lab (``eval lift --frames 30``) exact 52.6 -> 44.6, noisy 70.0
#: -> 66.9, limbs 87.2 -> 80.2, aggregate 44.0 / 64.6 / 80.0 -> 41.6 / 63.5 / 77.7.
RESAMPLED_FLIP_BELOW = 1
#: A single photo's flips are then re-sampled from this share of the schedule
#: (:meth:`backend.prior.sampler.GuidedSampler.resample`: noised part-way, denoised under the same
#: guidance, so each flip becomes a pose the prior finds typical near it, still fitting the 2D);
#: 0 keeps the plain flips (sequences: ``backend.sequence`` keeps them, for speed; there the
#: flips did not move the track either). ``FLIP_RESAMPLE_STEPS`` denoising steps do it. Chosen on
#: S8 (``eval lift --protocol photo --subsets away --frames 16``, best-of-20 mean of exact, noisy,
#: 24 mm, swapped+cut off at the edge): plain flips 49.7 (36.8 / 43.0 / 52.5 / 66.6), strength
#: 0.2 with 8 steps 39.8, 6 steps 40.2, 4 steps 40.0 (24.6 / 33.1 / 45.3 / 57.0). Then, with the
#: flips level with the sampler's best (``RESAMPLED_FLIP_BELOW``), 4 steps, best-of-1 / best-of-20
#: means: strength 0.15 55.2 / 41.1, 0.2 55.8 / 40.0, 0.3 53.9 / 38.8 (this), 0.4 55.2 / 39.7, 0.5
#: 56.8 / 41.8; 0.3 with 6 steps 54.5 / 38.8, with the consensus temperature 1.0 (not 0.5) 53.9 /
#: 38.8, over the best 3 or 8 (not 5, at 0.2) 55.2 / 40.0, 55.7 / 40.0: none kept. Held-out S9/S11 16 frames, 0.2 -> 0.3, best-of-1 / best-of-20 means of exact,
#: noisy, 24 mm, swapped+cut off, no EXIF: away 75.2 / 49.0 -> 72.2 / 49.3, floor 67.9 / 50.0 ->
#: 66.6 / 49.2; lab 30 frames best-of-1 44.6 / 66.9 / 80.2 -> 42.5 / 67.5 / 84.5, best-of-20 27.9 /
#: 45.6 / 56.8 -> 28.9 / 45.9 / 55.8, aggregate 41.6 / 63.5 / 77.7 -> 42.1 / 62.9 / 77.9. Also
#: re-sampling the sampler's own 10 best 39.8 (not kept). Not kept either: where joints are
#: hidden (feet cut off), the 5 best re-sampled 4 times each from 0.5 of the schedule, to vary the
#: hidden limbs: S8 best-of-20 truncated / swapped+truncated at the edge 51.1 / 57.0 -> 48.8 / 54.2
#: (strength 0.35 / 0.7 with the 10 best twice: 50.3 / 55.0, 50.9 / 53.8), held-out S9/S11 61.6 /
#: 63.5 -> 62.1 / 63.3 and best-of-1 1-2 mm worse. Nor (2026-12-04) a completion of the hidden limbs
#: of the 40 best: each candidate's seen joints pinned in its upright frame (per-hypothesis known
#: joints as in pose assist, yaw kept), the hidden knees/ankles/elbows/wrists drawn from noise in 20
#: steps, kept where the border bounds hold: S8 16 frames best-of-1 / best-of-20 truncated 70.4 /
#: 51.3 -> 61.3 / 47.0, swapped+truncated 70.9 / 55.2 -> 65.5 / 45.7, but held-out S9/S11 48 frames
#: (paired, bootstrap 95 %) truncated 79.9 / 56.0 -> 84.4 / 57.4 (+4.5 [-1.4, +11.0] / +1.4 [-1.5,
#: +4.1]), swapped+truncated 82.1 / 58.7 -> 82.6 / 57.5 (+0.5 / -1.3 [-4.6, +2.1]); noisy unchanged.
#: The prior's own guess is the limit: given the *true* seen joints (held-out, 24 frames) its
#: completion puts the cut-off ankles 220 mm off (best-of-1) and 133 mm (best-of-20), against 250 /
#: 181 for the sampler's. Held-out S9/S11 and the lab rows: see :meth:`PoseService._with_flips`.
FLIP_RESAMPLE = 0.3
FLIP_RESAMPLE_STEPS = 4


def _r(a: np.ndarray, nd: int = 5) -> list:
    return np.round(np.asarray(a, np.float64), nd).tolist()


def keypoint_arrays(keypoints: dict, field: str) -> tuple[np.ndarray, np.ndarray]:
    """Request keypoints ``{name: [u, v(, conf)]}`` -> (``[J, 2]`` pixels with NaN rows, ``[J]`` conf)."""
    uv = np.full((NUM_JOINTS, 2), np.nan)
    conf = np.zeros(NUM_JOINTS)
    for name, kp in (keypoints or {}).items():
        if name not in JOINT_INDEX:
            raise InputError(f"{field}.{name}", f"unknown joint name; valid: {', '.join(JOINT_NAMES)}")
        j = JOINT_INDEX[name]
        uv[j] = kp[:2]
        conf[j] = kp[2] if len(kp) > 2 else 1.0
    return uv, conf


def joint_array(d: dict | None) -> tuple[np.ndarray, np.ndarray]:
    """``{name: [x, y, z]}`` -> (``[J, 3]`` with zeros for missing rows, ``[J]`` 0/1 mask)."""
    arr = np.zeros((NUM_JOINTS, 3))
    w = np.zeros(NUM_JOINTS)
    for name, v in (d or {}).items():
        arr[JOINT_INDEX[name]] = v
        w[JOINT_INDEX[name]] = 1.0
    return arr, w


class PoseService:
    """The backend's tasks on one loaded model.

    Args:
        weights: the prior: ``"default"`` (the shipped research prior), ``"cmu"`` (the
            commercially usable CMU-only prior) or the path of a ``.safetensors`` file
            (:mod:`backend.prior.registry`); None = ``"default"``.
        device: ``"cuda"``, ``"cpu"`` or None (CUDA when available).
    Raises:
        FileNotFoundError: no weights (:class:`~backend.prior.registry.PriorChoiceError`: an unknown
            prior name or a missing file, naming ``--prior``); ValueError: CUDA asked for but unavailable.
    """

    def __init__(self, weights=None, device: str | None = None):
        from backend.prior import registry

        self.prior = registry.describe(weights)
        self.device = pick_device(device)
        if self.device.type == "cpu":  # sampling's temporaries reuse freed memory (no page faults)
            from backend.prior.cpu_heap import keep_freed_memory

            keep_freed_memory()
        torch.set_grad_enabled(False)
        self.model = load_prior(self.prior.path, self.device)
        self.weights_path = self.prior.path
        self._detector = None
        self._detector_lock = threading.Lock()

    # ------------------------------------------------------------------------------ info

    def info(self) -> dict:
        """Model version, device, default camera, joint names (``GET /v1/info``).

        ``prior``: the loaded prior's name, file, training data and licence
        (:class:`~backend.prior.registry.PriorInfo`); ``training``: the file's training info.
        """
        cfg = self.model.cfg
        return {
            "version": __version__,
            "model_version": cfg.version,
            "device": str(self.device),
            "cuda_available": torch.cuda.is_available(),
            "joint_names": list(JOINT_NAMES),
            "parents": list(PARENTS),
            "default_camera": {"focal_35mm": DEFAULT_FOCAL_35MM, "footage_focal_35mm": DEFAULT_FOOTAGE_FOCAL_35MM,
                               "example_1000x1000": default_intrinsics(1000, 1000).as_dict()},
            "prior": self.prior.as_dict(),
            "training": getattr(self.model, "extra", {}),
            "defaults": {"estimate_steps": ESTIMATE_STEPS, "generate_steps": GENERATE_STEPS},
        }

    def sampler(self, steps: int | None, default: int, scale: float | None = None, eta: float = 0.5) -> GuidedSampler:
        w = GuidanceWeights.for_prior(self.model)
        if scale is not None:
            w.scale = float(scale)
        return GuidedSampler(self.model, steps=steps or default, eta=eta, weights=w)

    @property
    def detector(self):
        with self._detector_lock:
            if self._detector is None:
                from backend.vision.detector import PoseDetector

                self._detector = PoseDetector()
            return self._detector

    # ------------------------------------------------------------------------------ tasks

    def estimate(self, req: schemas.EstimateRequest, progress: Progress = None, cancel: CancelCheck = None) -> schemas.EstimateResponse:
        """3D hypotheses from 2D evidence (keypoints or a photo) per frame; see CONTRACT.md.

        With ``req.sequence`` (or ``req.video``) the frames are one clip: see :mod:`backend.sequence`.
        """
        if req.sequence is not None or req.video is not None:
            from backend.sequence import estimate_sequence

            return _mark_mirrored(estimate_sequence(self, req, progress=progress, cancel=cancel), req)
        frames = []
        n = len(req.frames)
        for i, fr in enumerate(req.frames):
            sub = _sub_progress(progress, i, n)
            cond, K, kp_out, photo, warnings = self.frame_conditions(fr, f"frames[{i}]")
            smp = self.sampler(req.steps, ESTIMATE_STEPS, req.guidance_scale)
            num = _oversampled(req.num_hypotheses, cond, photo=True)
            wp = _ranking_plausibility(smp, cond, num)
            res = smp.sample(num, cond, seed=req.seed, progress=sub, cancel=cancel)
            res, own = self._with_flips(smp, res, cond, wp, resample=FLIP_RESAMPLE, seed=req.seed)
            frames.append(self._frame_result(res, cond, K, kp_out, warnings, req.previews, photo, task="estimate",
                                             keep=req.num_hypotheses, plausibility_weight=wp, own=own,
                                             flip_below=RESAMPLED_FLIP_BELOW if FLIP_RESAMPLE > 0 else FLIP_BELOW))
        return _mark_mirrored(schemas.EstimateResponse(joint_names=list(JOINT_NAMES), frames=frames), req)

    def frame_conditions(self, fr: schemas.EstimateFrame, field: str, K: Intrinsics | None = None, photo=None,
                         follow=None):
        """Evidence of one estimate frame: (Conditions, Intrinsics, keypoints out, Photo or None, warnings).

        ``K`` overrides the frame's camera (a sequence shares one); ``photo`` is an already decoded
        image (video frames); ``follow`` a :class:`backend.vision.follow.PersonFollower` (the frames
        of one clip: the same person throughout). Raises InputError / NoPersonError naming ``field``.
        """
        warnings: list[str] = []
        if fr.image is not None or photo is not None:
            ev, K, kp_out, photo, warnings = self._evidence_from_image(fr.image, fr.camera, fr.person, field, K=K,
                                                                       photo=photo, follow=follow, mirrored=fr.mirrored)
        else:
            fr = unmirrored_keypoint_frame(fr, field)
            uv, conf = keypoint_arrays(fr.keypoints, f"{field}.keypoints")
            K = K or self._intrinsics(fr.camera, f"{field}.camera", uv)
            conf = np.where(inside_frame(uv, K) & ~at_border(uv, conf, K), conf, 0.0)  # outside the photo: not seen
            ev = KeypointEvidence(uv, conf, K, device=self.device)
            ev.set_outside(uv, conf <= 0, K, band_px=border_band(K))  # ... but known to project outside it
            kp_out = {k: list(v) for k, v in fr.keypoints.items()}
            seen = uv[conf > 0]
            extent = float(np.linalg.norm(seen.max(0) - seen.min(0))) if len(seen) >= 2 else np.inf
            if extent < MIN_PERSON_PX:
                warnings.append(f"the seen keypoints span only {extent:.1f} px: the person's depth and pose are barely "
                                "determined (are the keypoints in pixels of this camera?)")
        warnings += unseen_warning(ev.weight.cpu().numpy() > 0)
        cond = Conditions(evidence=ev, rotation=self._rotation(fr.camera))
        if fr.known:
            cond.known, cond.known_w = joint_array(fr.known)
        if ev.num_visible < 2 and not cond.has_known:
            warnings.append("no usable 2D evidence (fewer than 2 joints seen): hypotheses are samples of the prior")
            cond.evidence = None
        return cond, K, kp_out, photo, warnings

    def complete(self, req: schemas.CompleteRequest, progress: Progress = None, cancel: CancelCheck = None) -> schemas.EstimateResponse:
        """Fill in unknown joints; every known joint is reproduced (world frame, metres).

        Measured and not kept: RePaint resampling (Lugmayr et al. 2022: each DDIM step from 0.2 to
        0.9 of the schedule done 3 times, noising back between; 2.4x the denoiser time). 17-joint
        best-of-1 / best-of-20 (mm, legs | arms | one side): S8 24 frames 78.4/47.5 | 168.3/87.1 |
        90.3/51.5 -> 78.6/47.4 | 157.3/83.1 | 89.9/53.9 (steps 0-0.5: arms best-of-1 149.1 but one
        side best-of-20 61.5); held-out S9/S11 12 frames 112.6/64.6 | 183.7/107.2 | 108.6/66.8 ->
        112.3/63.0 | 163.5/108.6 | 109.0/78.3: more coherent, less diverse samples. Also measured and
        not kept (2026-12-06): hypotheses SDEdit-ed (strength 0.3 / 0.5 / 0.7) from the 20 training poses
        nearest on the known joints (a pose library; S8 16 frames, the library without S8), 17-joint
        best-of-20 legs | arms | one side 44.7 | 79.9 | 56.1 -> 48.4 / 43.5 / 44.9 | 112.3 / 99.7 / 90.2
        | 58.7 / 64.1 / 69.3; the prior's 10 best with 10 of them 40.2-44.6 | 85.8-98.9 | 58.0-60.4.
        """
        frames = []
        n = len(req.frames)
        for i, fr in enumerate(req.frames):
            field = f"frames[{i}]"
            cond = Conditions()
            K = None
            kp_out = None
            if fr.known:
                cond.known, cond.known_w = joint_array(fr.known)
            if fr.known_directions:
                cond.directions, cond.directions_w = joint_array(fr.known_directions)
                _anchor_directions(cond)
            if fr.keypoints:
                uv, conf = keypoint_arrays(fr.keypoints, f"{field}.keypoints")
                K = self._intrinsics(fr.camera, f"{field}.camera", uv)
                cond.evidence = KeypointEvidence(uv, conf, K, device=self.device)
                cond.rotation = self._rotation(fr.camera)
                kp_out = {k: list(v) for k, v in fr.keypoints.items()}
            res = self.sampler(req.steps, ESTIMATE_STEPS, req.guidance_scale).sample(
                _oversampled(req.num_hypotheses, cond), cond, seed=req.seed, progress=_sub_progress(progress, i, n),
                cancel=cancel)
            frames.append(self._frame_result(res, cond, K, kp_out, [], req.previews, None, task="complete",
                                             keep=req.num_hypotheses))
        return schemas.EstimateResponse(joint_names=list(JOINT_NAMES), frames=frames)

    def generate(self, req: schemas.GenerateRequest, progress: Progress = None, cancel: CancelCheck = None) -> schemas.GenerateResponse:
        """Unconditional samples of the prior: world frame, Z up, pelvis at the origin."""
        res = self.sampler(req.steps, GENERATE_STEPS, eta=1.0).sample(req.num, None, seed=req.seed, progress=progress, cancel=cancel)
        return schemas.GenerateResponse(joint_names=list(JOINT_NAMES), poses=_r(res.world_rel),
                                        previews=self._previews(res.world_rel) if req.previews else None)

    def variations(self, req: schemas.VariationsRequest, progress: Progress = None, cancel: CancelCheck = None) -> schemas.GenerateResponse:
        """Poses near ``req.pose`` (SDEdit with ``strength``); ``fixed`` joints stay where they are."""
        pose, w = joint_array(req.pose)
        if w.sum() < NUM_JOINTS:
            # fill joints the request does not give from a completion of the given ones
            filled = self.complete(schemas.CompleteRequest(frames=[schemas.CompleteFrame(known=req.pose)], num_hypotheses=1,
                                                           seed=req.seed))
            pose = np.asarray(filled.frames[0].hypotheses[0].joints)
        root = pose[0].copy()
        cond = Conditions(fix_yaw=True)
        if req.fixed:
            fixed = {k: req.pose.get(k, pose[JOINT_INDEX[k]].tolist()) for k in req.fixed}
            cond.known, cond.known_w = joint_array(fixed)
            cond.known = cond.known - root * (cond.known_w[:, None] > 0)
        res = self.sampler(None, ESTIMATE_STEPS, eta=1.0).sample(req.num, cond, seed=req.seed, init=pose - root,
                                                                 strength=req.strength, progress=progress, cancel=cancel)
        poses = res.world_rel + (res.world_root[:, None] if cond.has_known else 0) + root
        return schemas.GenerateResponse(joint_names=list(JOINT_NAMES), poses=_r(poses),
                                        previews=self._previews(poses) if req.previews else None)

    def assist(self, req: schemas.AssistRequest, progress: Progress = None, cancel: CancelCheck = None) -> schemas.AssistResponse:
        """Pose assist: one completed pose, warm-started from ``req.previous`` (:mod:`backend.assist`)."""
        from backend.assist import assist

        return assist(self, req, progress, cancel)

    def track(self, req: schemas.TrackRequest, progress: Progress = None, cancel: CancelCheck = None) -> schemas.EstimateResponse:
        """Re-solve a sequence's track from its response frames with ``req.sequence.fixed`` choices (no sampling;
        ``req.sequence.camera_motion`` / ``cuts``: the estimate's ``sequence.camera_motion`` / ``cuts``, sent back)."""
        from backend.sequence import add_source_times, add_track, uneven_times

        if req.sequence.fps is None:
            raise InputError("sequence.fps", "give the frame rate of the sequence (frames per second > 0), as the "
                             "estimate's sequence.fps")
        if req.source_times is not None:  # one per frame, increasing (the estimate's as it was)
            uneven_times(req.source_times, req.sequence.fps, len(req.frames), field="source_times")
        # add_track sets each frame's track and adds to its warnings: copies of those, the rest shared
        frames = [fr.model_copy(update={"warnings": list(fr.warnings)}) for fr in req.frames]
        rot = self._rotation(req.camera)
        motion = req.sequence.camera_motion
        info = add_track(frames, req.sequence.fps, rot, fixed=dict(req.sequence.fixed or {}),
                         motion=None if motion is None else np.asarray(motion, np.float64),
                         moving_camera=req.sequence.moving_camera, cuts=req.sequence.cuts,
                         times=req.source_times if req.source_times is not None else req.sequence.times)
        info.source_frames, info.source_fps = req.source_frames, req.source_fps
        if req.source_times is not None:
            src = req.source_frames or []
            every = int(np.median(np.diff(src))) if len(src) > 1 else 1
            add_source_times(info, req.source_times, req.source_fps or req.sequence.fps * every, every)
        return schemas.EstimateResponse(joint_names=list(JOINT_NAMES), frames=frames, sequence=info)

    def detect(self, req: schemas.DetectRequest, progress: Progress = None, cancel: CancelCheck = None) -> schemas.DetectResponse:
        """2D keypoints (and optionally heatmaps) per image, original pixels, model joint names."""
        return run_detect(self.detector, req, progress)

    def image(self, req: schemas.ImageRequest, progress: Progress = None, cancel: CancelCheck = None) -> schemas.ImageResponse:
        """The photo as the detector sees it, upright, as a JPEG (:func:`backend.vision.photo.upright_jpeg`).

        Raises:
            InputError: unreadable image (field ``image``).
        """
        import base64

        from backend.vision.photo import load_image, upright_jpeg

        photo = load_image(req.image, "image")
        h, w = photo.rgb.shape[:2]
        return schemas.ImageResponse(jpeg=base64.b64encode(upright_jpeg(photo)).decode(), width=w, height=h,
                                     original_size=list(photo.original_size), focal_35mm=photo.focal_35mm)

    # ------------------------------------------------------------------------------ helpers

    def _intrinsics(self, cam: schemas.Camera | None, field: str, uv: np.ndarray,
                    default_35mm: float | None = None) -> Intrinsics:
        """Keypoints' camera: the request's, its missing focal length ``default_35mm`` (mm, 35 mm
        equivalent; None: :data:`backend.camera.DEFAULT_FOCAL_35MM`), its missing size from the keypoints."""
        partial = cam.model_dump(exclude_none=True, exclude={"rotation"}) if cam else {}
        if default_35mm and not {"fx", "fy", "focal_35mm"} & partial.keys():
            partial["focal_35mm"] = default_35mm
        try:
            return resolve_intrinsics(partial, None, None)
        except ValueError:
            pass
        # no image size: assume the keypoints' bounding box sits inside a default-sized frame
        seen = uv[np.isfinite(uv).all(-1)]
        if len(seen) == 0:
            return default_intrinsics(1000, 1000)
        w = int(max(2 * np.abs(seen[:, 0]).max(), 64))
        h = int(max(2 * np.abs(seen[:, 1]).max(), 64))
        return resolve_intrinsics(partial, w, h)

    @staticmethod
    def _rotation(cam: schemas.Camera | None) -> np.ndarray | None:
        """The request's world->camera rotation ``[3, 3]`` (checked orthonormal by the schema), or None."""
        return None if cam is None or cam.rotation is None else np.asarray(cam.rotation, np.float64)

    def _evidence_from_image(self, image: str | None, cam, person, field, K: Intrinsics | None = None, photo=None,
                             follow=None, mirrored: bool = False):
        """``mirrored``: the image loaded here is flipped left-right (:mod:`backend.vision.mirror`; a
        ``photo`` passed in, a video's frame, was flipped by its source)."""
        from backend.prior.evidence import HeatmapEvidence
        from backend.vision.photo import intrinsics_for, load_image

        if photo is None:
            photo = load_image(image, f"{field}.image")
            photo = mirror_photo(photo) if mirrored else photo
        det = self.detector.detect(photo, person=person, field=f"{field}.image", follow=follow)
        K = K or intrinsics_for(photo, cam.model_dump(exclude_none=True, exclude={"rotation"}) if cam else None)
        # a landmark outside the photo, at its edge with a low confidence (a cut-off limb), or of low
        # presence is absent (weight 0), not pinned to the border
        seen = {n: kp for n, kp in det.keypoints.items()
                if kp[2] >= MIN_PRESENCE and inside_frame(np.array([kp[:2]], np.float64), K)[0]
                and not at_border(np.array([kp[:2]], np.float64), np.array([kp[2]]), K)[0]}
        conf = [seen[n][2] if n in seen else 0.0 for n in det.heatmap_joints]
        idx = [JOINT_INDEX[n] for n in det.heatmap_joints]
        ev: Evidence2D = HeatmapEvidence(det.heatmaps, idx, det.image_to_heatmap, conf, K, device=self.device)
        # landmarks the detector places beyond the photo's border: the projection stays beyond it
        reported = np.full((len(JOINT_NAMES), 2), np.nan)
        for n, kp in det.keypoints.items():
            if n in JOINT_INDEX and n not in seen:
                reported[JOINT_INDEX[n]] = kp[:2]
        ev.set_outside(reported, np.isfinite(reported).all(-1), K, band_px=border_band(K))
        # anchor the root solve on the detector's sub-cell keypoints rather than the heatmap argmax
        for n, j in zip(det.heatmap_joints, idx):
            if n in seen:
                u, v = seen[n][:2]
                ev.anchor_uv[j, 0] = (u - K.cx) / K.fx
                ev.anchor_uv[j, 1] = (v - K.cy) / K.fy
        kp_out = {k: [round(float(x), 2) for x in v] for k, v in seen.items()}
        return ev, K, kp_out, photo, list(det.warnings)

    def _frame_result(self, res: SampleResult, cond: Conditions, K, kp_out, warnings, previews, photo, task,
                      keep: int | None = None, consensus: bool = True, plausibility_weight: float = 1.0,
                      own: int | None = None, flip_below: int = FLIP_BELOW) -> schemas.FrameResult:
        """One frame of a response from a sample: ranked (:func:`rank_score` with ``plausibility_weight``),
        kept, first the consensus (``consensus``).

        ``own``: the first ``own`` candidates are the sampler's, the rest kinematic flips
        (:meth:`_with_flips`): scores are standardised on the sampler's candidates (whose order is
        then what it is without flips) and a flip's is capped at the ``flip_below``-th best of
        the sampler's (at the cap the sampler's candidate first, then the flips by their own score;
        the reported scores stay sorted), so with :data:`FLIP_BELOW` (plain flips) the first 5
        hypotheses, best-of-1, the default key and the aggregate (of the sampler's candidates) are
        as without flips; with :data:`RESAMPLED_FLIP_BELOW` the flips may be level with the best
        and the consensus may choose one as the default key.

        A sequence passes ``consensus=False``: its track chooses among the hypotheses by score and
        motion (:mod:`backend.prior.track`), and the consensus, whose errors are alike from frame
        to frame, does not average out there (4 S8 clips, 2D filtered: track 48.7 -> 50.8 mm with it).
        """
        B = res.world_rel.shape[0]
        score = rank_score(res.loglik, res.plausibility, B, camera_logprior=self._camera_logprior(res, cond),
                           plausibility_weight=plausibility_weight, reference=own)
        if own is not None and own < B:
            cap = np.sort(score[:own])[::-1][min(max(flip_below, 1), own) - 1]
            capped = score.copy()
            capped[own:] = np.minimum(score[own:], cap)
            flip = np.arange(B) >= own
            order = np.lexsort((-score, flip, -capped))[:keep]  # at the cap: the sampler's first
            score = capped
        else:
            order = np.argsort(-score)[:keep]
        # estimate: camera frame, root-relative + the root in the camera; complete: world, absolute
        if task == "estimate" and res.camera_rel is not None:
            joints_all, roots = res.camera_rel, res.camera_root
        elif cond.has_known:
            joints_all, roots = res.world_rel + res.world_root[:, None], res.world_root
        else:
            joints_all, roots = res.world_rel, np.zeros((B, 3))
        if task == "complete" and not cond.has_2d and keep is not None and keep < B:
            # completion: the consensus of all candidates, then a covering set (ranking.completion_selection)
            order = completion_selection(res.world_rel, joints_all, score, res.plausibility, keep)
            score = score.copy()
            score[order[0]] = score[order[1:]].max(initial=score[order[0]])  # tied at the top: the order stays sorted
        elif consensus and (cond.has_2d or cond.has_known or cond.has_directions):
            # the default key: the consensus of the best-scored, not the single best score
            first = consensus_first(joints_all[order], score[order], task=task)
            if first:
                score = score.copy()
                score[order[first]] = score[order[0]]  # tied at the top, the tie going to the consensus
                order = np.concatenate([order[first : first + 1], np.delete(order, first)])
        hyps = []
        for k in order:
            h = schemas.Hypothesis(joints=_r(joints_all[k]), score=round(float(score[k]), 4), root_translation=_r(roots[k]),
                                   world_joints=_r(res.world_rel[k]))
            if res.pitch is not None:
                h.camera_pitch_deg = round(float(np.degrees(res.pitch[k])), 2)
                h.camera_roll_deg = round(float(np.degrees(res.roll[k])), 2)
            if res.reproj_px is not None:
                h.reprojection_error_px = round(float(res.reproj_px[k]), 2)
            if cond.rotation is not None and res.camera_rel is not None:
                h.world_joints = _r(res.camera_rel[k] @ cond.rotation)  # Blender world axes, pelvis at origin
            hyps.append(h)
        # in the frame of the hypotheses' joints: root-relative camera frame (estimate), absolute world (complete)
        # the aggregate: of the sampler's own best (kinematic flips are alternatives to look at, not votes)
        mean_of = order if own is None else np.array([order[0]] + [k for k in np.argsort(-score[:own]) if k != order[0]])
        agg = aggregate(joints_all[mean_of], score[mean_of])
        world_sorted = res.world_rel[order]
        fr = schemas.FrameResult(hypotheses=hyps, aggregate=_r(agg),
                                 aggregate_world=_r(aggregate(res.world_rel[mean_of], score[mean_of])),
                                 camera=K.as_dict() if K is not None else None, keypoints=kp_out,
                                 diversity_mm=round(float(diversity(world_sorted)) * 1000, 1), warnings=warnings)
        if previews:
            for h, k in zip(fr.hypotheses, order):
                h.preview_png = self._previews(res.world_rel[k : k + 1])[0]
            if photo is not None and res.camera_rel is not None:
                fr.preview_png = self._overlay(photo, kp_out, res, order, K)
        return fr

    def _with_flips(self, smp: GuidedSampler, res: SampleResult, cond: Conditions, wp: float,
                    resample: float = 0.0, seed: int | None = 0) -> tuple[SampleResult, int | None]:
        """A frame's candidates (a photo's, or a sequence frame's) and their kinematic flips (:mod:`backend.prior.flips`):
        (the sample with the flips appended, the number of the sampler's own candidates), or
        (``res``, None) where flips do not apply (known joints or directions, no 2D, one candidate,
        or a plausibility not measured with common draws, which the flips' must share).

        The :data:`FLIP_SOURCES` best by :func:`rank_score` each give one variant per bone of
        :data:`backend.prior.flips.FLIP_JOINTS`; a variant keeps its source's evidence fit,
        reprojection error, camera tilt and root (it projects where the source does) and gets its
        own plausibility (the sampler's draws, common to all).

        Measured (``eval lift --protocol photo --subsets away``, 100 candidates, 20 kept; best-of-1 /
        best-of-20 mm, the mean over the rows exact, noisy, noisy 24mm, swap+truncated; offline on
        the same pools). S8, 24 frames per row: without flips 65.4 / 51.6; flips of the best 20
        ranked freely 65.0 / 48.1 (exact 54.2 / 40.1 -> 55.3 / 35.9), of the best 10 65.7 / 48.5,
        of the best 5 65.3 / 48.7; of the best 10 capped at the sampler's 3rd best 64.6 / 48.5,
        at its 5th with the scores standardised on the sampler's candidates (this) 65.4 / 48.4
        (best-of-1 and -5 unchanged by construction); a flat penalty instead of the cap (0.5-3
        standardised units) 64.1-65.0 / 48.2-51.2; both bones of a limb flipped as well (12
        variants a source, through the service) exact 35.9, noisy 42.2 (single bones 36.0 / 42.2).
        Held-out S9+S11, 16 frames per row: without 77.3 / 58.3; this 77.3 / 55.4 (exact 45.7 ->
        43.3, noisy 49.6 -> 46.2, 24 mm 62.2 -> 59.5, swap+truncated 75.7 -> 72.6); ranked freely
        79.1 / 55.3 (noisy best-of-1 62.2 -> 70.3), capped at the 3rd 77.3 / 55.3 (noisy 68.2):
        why the 5th. Through the service (flips whose rays miss by more than
        :data:`~backend.prior.flips.MAX_MISS` left out), S9+S11 best-of-20: 16 frames exact 43.3,
        noisy 46.8, 24 mm 59.5, swap+truncated 72.6, no EXIF 53.7 -> 53.2, floor subset noisy 49.0
        -> 46.6, swap+truncated 75.1 -> 72.1, no EXIF 60.0 -> 56.1; 48 frames noisy 50.6 -> 47.5,
        exact 45.7 -> 43.3, 24 mm 62.2 -> 59.8; lab protocol (``eval lift --frames 30``) exact
        39.5 -> 36.8, noisy 53.4 -> 54.3, limbs 68.8 -> 65.3; best-of-1 and aggregate unchanged.
        ``posediff bench``: keypoints through the service 777 ms, photo 1244 ms (from 816 / 1151).
        The best of the flipped pools (an oracle) is far lower: S9+S11 exact, every single flip of
        the kept 20 38.0 mm, every combination of the 8 bones 34.2. Not kept, better on S8 only
        (S8 16 frames / S9+S11 16 frames, best-of-20 of the four rows): also both thighs and both
        upper arms at once (12 variants a source) S8 49.7 -> 48.0, S9+S11 55.6 -> 55.7; a second
        round, the flips of the 10 best-scored flips, S8 -1.3, S9+S11 +1.5 (the prior has seen S8:
        its plausibility ranks S8 variants better than it does unseen people's). A kept set with
        each source's best flip (instead of the best-scored overall): +0.1 / -0.0. Also not kept:
        variants of a *hidden* forearm or shin (wrist or ankle without 2D, its parent seen; the
        subtree turned about the elbow or knee to 15 / 50 / 90 / 130 degrees of flexion in the
        bone's plane and in the plane turned 90 degrees about the upper bone, kept where the
        border bounds hold; ~86 per photo): feet cut off, best-of-20 S8 57.7 -> 53.0 but S9+S11
        69.9 -> 70.8 (swapped and cut off 72.6 -> 72.4).

        With ``resample > 0`` (a single photo: :data:`FLIP_RESAMPLE`) each variant is then
        re-sampled from that share of the schedule (:meth:`GuidedSampler.resample`, SDEdit under
        the same guidance): a flipped limb is carried to a pose the prior finds typical near it
        that still fits the 2D (the local optimisation after a kinematic jump of Sminchisescu &
        Triggs 2003), and scored on its own. Held-out S9/S11, 16 frames away from standing,
        best-of-20 (plain flips -> re-sampled at strength 0.2, 4 steps; 8 steps in brackets; 0.3,
        the default since: see :data:`FLIP_RESAMPLE`): exact 43.3 -> 35.6
        (34.8), noisy 46.8 -> 39.8 (39.9), 24 mm 59.5 -> 57.1 (57.4), swapped and cut off 72.6 ->
        65.1 (65.3), no EXIF 53.2 -> 48.0; floor subset noisy 46.6 -> 39.9, swapped and cut off
        72.1 -> 68.3, no EXIF 56.1 -> 50.9; lab
        protocol (``eval lift --frames 30``) exact 36.8 -> 28.8 (28.1), noisy 54.3 -> 46.0 (45.9),
        limbs 65.3 -> 56.3 (56.4); best-of-1 and aggregate unchanged by construction while the
        flips were capped at the sampler's 5th best (now its best: :data:`RESAMPLED_FLIP_BELOW`). Cost: 145 ms a photo
        (208 with 8 steps; ``posediff bench`` photo 1.15-1.27 s).
        """
        fc = self._flip_candidates(smp, res, cond, wp)
        if fc is None:
            return res, None
        world, _, src = fc
        if resample > 0:  # the flips re-sampled from part-way through the schedule (SDEdit)
            flips = smp.resample(world, res.pitch[src], res.roll[src], cond, resample, seed=seed, steps=FLIP_RESAMPLE_STEPS)
        else:
            flips = None
        return self._append_flips(smp, res, *fc, flips)

    def _flip_candidates(self, smp: GuidedSampler, res: SampleResult, cond: Conditions, wp: float,
                         sources: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The kinematic flips of a frame's ``sources`` (default :data:`FLIP_SOURCES`) best candidates (see
        :meth:`_with_flips`): (``[N, J, 3]`` upright-frame poses and ``[N, J, 3]`` the same in the
        camera frame, pelvis at the origin; ``[N]`` the index of each one's source in ``res``), or
        None where flips do not apply."""
        sources = FLIP_SOURCES if sources is None else sources
        if len(res.world_rel) < 2 or not sources or not smp.common_plausibility or res.camera_rel is None \
                or res.rotation is None or res.loglik is None or not _from_2d_alone(cond):
            return None
        from backend.prior.flips import kinematic_flips

        score = rank_score(res.loglik, res.plausibility, len(res.world_rel), camera_logprior=self._camera_logprior(res, cond),
                           plausibility_weight=wp)
        best = np.argsort(-score)[:sources]
        Y, src = kinematic_flips(res.camera_rel[best] + res.camera_root[best, None])
        if not len(src):
            return None
        src = best[src]
        cam = Y - Y[:, :1]
        return np.einsum("bjc,bcd->bjd", cam, res.rotation[src]), cam, src  # x_cam = R x_upright

    @staticmethod
    def _append_flips(smp: GuidedSampler, res: SampleResult, world: np.ndarray, cam: np.ndarray, src: np.ndarray,
                      flips: SampleResult | None) -> tuple[SampleResult, int]:
        """``res`` with its flips appended (:meth:`_with_flips`' result): ``flips`` as re-sampled,
        or with None the flips as they are (their source's fit, tilt and root, their own
        plausibility from the sampler's common draws)."""
        if flips is None:
            pl = smp.plausibility(torch.as_tensor(world, dtype=torch.float32, device=smp.device),
                                  draws=smp.plausibility_draws, common=True).cpu().numpy()
            flips = dataclasses.replace(res.take(src), world_rel=world, camera_rel=cam, plausibility=pl)
        elif res.swapped is None:  # a sequence's stacked batch does not report label swaps
            flips = dataclasses.replace(flips, swapped=None)
        return res.concat(flips), len(res.world_rel)

    def _camera_logprior(self, res: SampleResult, cond: Conditions) -> np.ndarray | None:
        """``[B]`` log prior (nats) of each hypothesis' camera tilt (the pitch at which its pelvis
        is seen, and the roll) and subject distance, when the tilt was estimated
        (:class:`backend.prior.camera_prior.CameraPrior`), else None."""
        cp = GuidanceWeights().camera_prior
        if cp is None or res.pitch is None or cond.rotation is not None or res.camera_root is None:
            return None
        lt = cp.log_tilt(torch.as_tensor(res.pitch), torch.as_tensor(res.roll),
                         torch.as_tensor(res.camera_root, dtype=torch.float32)).numpy()
        return lt + cp.log_distance(res.camera_root[:, 2])

    def _previews(self, poses: np.ndarray) -> list[str]:
        import base64

        from backend.vision.overlay import encode_png, skeleton_preview

        return [base64.b64encode(encode_png(skeleton_preview(p, PARENTS))).decode() for p in np.asarray(poses)]

    def _overlay(self, photo, kp_out, res: SampleResult, order, K: Intrinsics) -> str:
        import base64

        from backend.camera import project
        from backend.vision.overlay import draw_overlay, encode_png

        projs = [project(res.camera_rel[k] + res.camera_root[k], K) for k in order[:3]]
        side = [res.world_rel[k] for k in order[:3]]  # upright frame: the level camera looks along +Y
        img = draw_overlay(photo.rgb, kp_out or {}, projs, JOINT_NAMES, PARENTS, side_poses=side)
        return base64.b64encode(encode_png(img)).decode()


def _oversampled(num: int, cond: Conditions, photo: bool = False) -> int:
    """Candidates drawn for ``num`` guided hypotheses: ``OVERSAMPLE`` times as many, the best kept;
    :data:`PHOTO_OVERSAMPLE` times for a single frame's estimate (``photo``) from 2D evidence alone.

    Guided samples that the evidence and the prior disagree on are easy to spot by their score
    (evidence log-likelihood + denoiser agreement); drawing more and keeping the best ``num`` is a
    cheap selection step (the cost is mostly per-step overhead, not batch size).

    A single photo draws 5 x (:data:`PHOTO_OVERSAMPLE`, 100 for 20 kept) instead of 3 x: the 20
    best-scored already hold the best of all the candidates (287 of 288 S8 frames at 60 or 100
    drawn; so no choice of which 20 to keep, a covering set or MMR, can lower best-of-20: measured
    0.2 mm at most), and best-of-20 falls with the pool. ``eval lift --protocol photo --subsets
    away`` (settings noisy, exact, noisy 24mm; best-of-1 / best-of-20 mm; 3 x -> 5 x):

    ==========================================  ===========  ===========  ===========
    subjects, frames, candidates                noisy        exact        noisy 24mm
    ==========================================  ===========  ===========  ===========
    S8, 48 frames x 4 sampler seeds, 3 x        56.4 / 47.2  53.1 / 42.3  76.5 / 60.7
    S8, 48 frames x 4 sampler seeds, 5 x        58.1 / 44.9  51.9 / 39.4  75.1 / 57.9
    S9+S11, 48 frames, 3 x                      71.4 / 54.1  64.1 / 48.7  87.2 / 66.2
    S9+S11, 48 frames, 5 x                      67.4 / 50.6  63.8 / 45.7  88.4 / 62.2
    S9+S11, the first 16 of them, 3 x           73.7 / 56.0  65.0 / 47.5  85.2 / 66.9
    S9+S11, the first 16 of them, 5 x           62.4 / 49.6  63.9 / 45.7  83.5 / 62.2
    ==========================================  ===========  ===========  ===========

    Over the three rows, per frame (bootstrap 95 % over frames): S8 best-of-20 -2.7 mm [-4.1, -1.3],
    best-of-1 -0.3 [-2.8, +2.5]; S9+S11 (48) -3.5 [-6.2, -0.8] and -1.0 [-6.8, +4.6]. One run's
    row is noisy: per frame, two sampler seeds differ by 35 mm (sd) in best-of-1 and 22 mm in
    best-of-20, so a 48-frame row moves by about 5 / 3 mm from seed to seed (S8 3 x rows across 4
    seeds: noisy best-of-20 44.7-51.4). 4 x (80 drawn, S8, 4 seeds) was worse than 3 x, for no
    reason found: best-of-1 +3.8 [+1.2, +6.5], best-of-20 +1.5 [-0.3, +3.4].

    Cost, about +35 % (2026-12-02, the 2-core CPU nearly idle; 3 x and 5 x interleaved, median of
    6, ``posediff bench``'s requests): photo -> 20 hypotheses (samples/image2.jpeg, detection
    included, 2 torch threads) 721 -> 975 ms, keypoints through the service 590 -> 778 ms; one
    thread 1013 -> 1379 and 898 -> 1218 ms. ``posediff bench --repeats 3``, one run each: photo
    926 -> 1012 ms (target 1500), keypoints through the service 803 -> 987 ms (target 1000).
    """
    if cond.evidence is None and not cond.has_known and not cond.has_directions and not cond.terms:
        return num
    factor = PHOTO_OVERSAMPLE if photo and _from_2d_alone(cond) else OVERSAMPLE
    return min(num * factor, schemas.MAX_HYPOTHESES * factor)


def _anchor_directions(cond: Conditions) -> None:
    """A completion's known directions that hang from a known position become known positions of
    the canonical skeleton (:func:`backend.skeleton.anchor_directions`), in place; the others stay
    directions.

    Why: the direction term (``GuidanceWeights.direction_sigma``, yaw only in the world fit) is a
    weaker anchor than positions of the same bones. ``posediff eval complete --known
    positions,directions`` (known directions from a rig of 0.8-1.25x proportions, errors of the
    unknown joints after rebuilding with canonical bones; best-of-1 / best-of-20 mm, legs | arms |
    one side), S8 24 frames: directions 97.6 / 59.9 | 226.3 / 125.3 | 110.7 / 64.4 -> anchored
    96.4 / 57.9 | 225.0 / 111.9 | 112.3 / 62.3, positions 95.0 / 58.0 | 226.8 / 111.9 | 113.8 / 62.6;
    held-out S9/S11 48 frames: directions 151.8 / 94.3 | 258.2 / 151.4 | 141.5 / 96.0 -> anchored
    153.3 / 86.7 | 255.2 / 141.6 | 142.0 / 89.2, positions 156.4 / 86.0 | 252.1 / 142.6 | 139.0 / 89.6.
    Pose assist (:mod:`backend.assist`) is unchanged: the add-on sends it the position of every pin.
    """
    if not cond.has_directions:
        return
    kn, kw = (cond.known, cond.known_w) if cond.has_known else joint_array(None)
    kn, kw, dirs, dw = anchor_directions(kn, kw, cond.directions, cond.directions_w)
    if kw.any():
        cond.known, cond.known_w = kn, kw
    cond.directions, cond.directions_w = (dirs, dw) if dw.any() else (None, None)


def _from_2d_alone(cond: Conditions) -> bool:
    """Whether ``cond`` guides by 2D evidence only (no known joints or directions): a photo's or its
    keypoints' estimate, which draws :data:`PHOTO_OVERSAMPLE` and ranks on common-draw plausibility."""
    return cond.has_2d and not cond.has_known and not cond.has_directions


def _ranking_plausibility(smp: GuidedSampler, cond: Conditions, num: int) -> float:
    """A single frame's ``num`` candidates from 2D evidence alone: the sampler measures their final
    plausibility with :data:`~backend.ranking.PLAUSIBILITY_DRAWS` noise draws common to all (set on
    ``smp`` before sampling); returns the plausibility's weight in :func:`rank_score`
    (:data:`~backend.ranking.PLAUSIBILITY_WEIGHT`, 1 where the sampler's default is kept: known
    joints, no 2D, one candidate)."""
    if not _from_2d_alone(cond) or num < 2:
        return 1.0
    smp.common_plausibility, smp.plausibility_draws = True, ranking.PLAUSIBILITY_DRAWS
    return ranking.PLAUSIBILITY_WEIGHT


def _mark_mirrored(resp: schemas.EstimateResponse, req: schemas.EstimateRequest) -> schemas.EstimateResponse:
    """``FrameResult.mirrored`` on the frames of a request's mirrored frames (all of a mirrored video's)."""
    if req.video is not None:
        flags = [req.video.mirrored] * len(resp.frames)
    else:
        flags = [fr.mirrored for fr in req.frames]
    for fr, m in zip(resp.frames, flags):
        fr.mirrored = bool(m)
    return resp


def _sub_progress(progress: Progress, i: int, n: int) -> Progress:
    if progress is None:
        return None
    return lambda f: progress((i + f) / n)


def run_detect(detector, req: schemas.DetectRequest, progress: Progress = None) -> schemas.DetectResponse:
    """Run the 2D detector on each frame of a detect request (no prior needed).

    Raises:
        InputError: unreadable image (field ``frames[i].image``); NoPersonError: nobody found.
    """
    from backend.vision.photo import intrinsics_for, load_image

    out = []
    for i, fr in enumerate(req.frames):
        field = f"frames[{i}].image"
        photo = load_image(fr.image, field)
        photo = mirror_photo(photo) if fr.mirrored else photo
        det = detector.detect(photo, person=fr.person, field=field)
        K = intrinsics_for(photo, fr.camera.model_dump(exclude_none=True, exclude={"rotation"}) if fr.camera else None)
        hm = None
        if req.heatmaps:
            hm = {"joints": list(det.heatmap_joints), "shape": list(det.heatmaps.shape),
                  "image_to_heatmap": _r(det.image_to_heatmap, 6), "log_heatmaps": _r(det.heatmaps, 3)}
        out.append(schemas.DetectFrameResult(
            image=photo.name, keypoints={k: _r(v, 2) for k, v in det.keypoints.items()}, camera=K.as_dict(),
            box=_r(det.box, 1), heatmaps=hm, mirrored=photo.mirrored))
        if progress is not None:
            progress((i + 1) / len(req.frames))
    return schemas.DetectResponse(frames=out)
