"""Estimation off the lab protocol (issue 13): a person lying on the floor photographed from eye
height, a swapped limb pair, a truncated person, a wide lens and an off-centre subject.

Cameras are built like ``posediff eval lift --protocol photo`` (:mod:`backend.eval_photo`);
poses are real Human3.6M frames of training subjects (never S9/S11).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from backend import eval_photo as P
from backend.camera import Intrinsics, project
from backend.http import schemas
from backend.mocap import datasets as D
from backend.skeleton import H36M17, JOINT_INDEX, JOINT_NAMES

IDX = list(H36M17)


@pytest.fixture(scope="module")
def s5_poses():
    if not D.H36M_FILE.exists():
        pytest.skip(f"{D.H36M_FILE} not found (shared data)")
    clips = D.load_h36m(("S5",), stride=25)
    return np.concatenate([clips[k] for k in sorted(clips)])


def _photo(pose, K: Intrinsics, height: float, dist: float, azimuth: float, aim=(0.0, 0.0)):
    """Photograph a world pose: camera ``height`` m above the floor (lowest joint), ``dist`` m from the
    pelvis horizontally, looking at the pelvis turned by ``aim`` = (yaw, elevation) radians.

    Returns (keypoints of the 17 joints, gt camera-frame root-relative ``[J, 3]``, pelvis depth m,
    camera pitch degrees, pixels ``[J, 2]``).
    """
    from backend.prior.geometry import pitch_roll_of

    C = np.array([dist * math.cos(azimuth), dist * math.sin(azimuth), float(pose[:, 2].min()) + height])
    to = -C / np.linalg.norm(C)
    yaw = math.atan2(to[1], to[0]) + aim[0]
    elev = math.asin(to[2]) + aim[1]
    R = P.look_rotation(np.array([math.cos(elev) * math.cos(yaw), math.cos(elev) * math.sin(yaw), math.sin(elev)]), 0.0)
    cam = (pose - C) @ R.T
    uv = project(cam, K)
    assert (uv >= 0).all() and (uv[:, 0] <= K.width).all() and (uv[:, 1] <= K.height).all(), "person outside the photo"
    kps = {JOINT_NAMES[j]: [float(uv[j, 0]), float(uv[j, 1]), 1.0] for j in H36M17}
    return kps, cam - cam[:1], float(cam[0, 2]), math.degrees(pitch_roll_of(R)[0]), uv


def _estimate(service, kps, K: Intrinsics, num=20, seed=0):
    req = schemas.EstimateRequest(frames=[{"keypoints": kps, "camera": K.as_dict()}], num_hypotheses=num, seed=seed)
    return service.estimate(req).frames[0]


def _errors(fr, gt, idx=IDX):
    """MPJPE (mm) of every hypothesis over joints ``idx``, root-aligned camera frame."""
    H = np.array([h.joints for h in fr.hypotheses]) * 1000
    return np.linalg.norm(H[:, idx] - gt[idx][None] * 1000, axis=-1).mean(-1)


def test_lying_pose_from_eye_height_keeps_the_camera_pitch(pose_service, s5_poses):
    """The issue's failure: lying on the floor, seen from eye height 4.7 m away; on main every
    hypothesis turned it into a near-standing figure seen steeply (45 degrees) from about 1 m."""
    pose = s5_poses[np.argmax(P.torso_tilt_deg(s5_poses))]
    assert P.torso_tilt_deg(pose[None])[0] > 70
    K = P.lens_intrinsics(50, P.LANDSCAPE)
    kps, gt, depth, pitch, _ = _photo(pose, K, height=1.6, dist=4.7, azimuth=0.6)
    fr = _estimate(pose_service, kps, K)
    e = _errors(fr, gt)
    pitches = np.array([h.camera_pitch_deg for h in fr.hypotheses])
    depths = np.array([h.root_translation[2] for h in fr.hypotheses])
    assert e.min() < LYING_BEST_MM, (e.min(), pitch, pitches, depth, depths)
    # the best-ranked hypotheses keep the camera near its true pitch and the person at its distance
    assert np.median(np.abs(pitches[:5] - pitch)) < 12, (pitch, pitches)
    assert np.median(np.abs(depths[:5] / depth - 1)) < 0.25, (depth, depths)


def _facing(joints):
    """Unit horizontal-ish facing direction of a pose (camera frame, y down): hip line x up."""
    j = np.asarray(joints)
    hips = j[JOINT_INDEX["left_hip"]] - j[JOINT_INDEX["right_hip"]]
    up = j[JOINT_INDEX["thorax"]] - j[JOINT_INDEX["pelvis"]]
    f = np.cross(up, hips)
    return f / np.linalg.norm(f)


def test_swapped_leg_labels_do_not_flip_the_body(pose_service, h36m_train_poses):
    pose = h36m_train_poses[37]
    K = P.lens_intrinsics(50, P.PORTRAIT)
    kps, gt, _, _, _ = _photo(pose, K, height=1.5, dist=4.0, azimuth=2.0)
    clean = _estimate(pose_service, kps, K)
    swapped = dict(kps)
    for a, b in (("left_knee", "right_knee"), ("left_ankle", "right_ankle")):
        swapped[a], swapped[b] = kps[b], kps[a]
    fr = _estimate(pose_service, swapped, K)
    f_true = _facing(gt)
    cos = np.array([float(_facing(h.joints) @ f_true) for h in fr.hypotheses[:5]])
    assert (cos > 0.7).all(), cos  # the top hypotheses face the way the person faces
    torso = [JOINT_INDEX[n] for n in ("left_hip", "right_hip", "spine", "thorax", "neck", "head",
                                      "left_shoulder", "right_shoulder")]
    e_torso, e_clean = _errors(fr, gt, torso)[:5].mean(), _errors(clean, gt, torso)[:5].mean()
    assert e_torso < e_clean + 20, (e_torso, e_clean)
    # some hypothesis has the legs where they are (measured 94 mm best-of-20 with nu 8 and every
    # hypothesis swapping from 0.3 of the steps; 53 without the swap; passes with the two kinds).
    # One request's best-of-20 on the legs is luck: over seeds 0-7 31-140 mm (mean 113) with 60
    # candidates drawn, 38-157 (mean 98) with 100 (service.PHOTO_OVERSAMPLE); so some of 4 requests
    legs = [JOINT_INDEX[n] for n in ("left_knee", "right_knee", "left_ankle", "right_ankle")]
    best = [_errors(fr, gt, legs).min()] + [_errors(_estimate(pose_service, swapped, K, seed=s), gt, legs).min()
                                            for s in (1, 2, 3)]
    assert min(best) < 120, best


def test_truncated_person_fits_what_is_seen_and_warns(pose_service, h36m_train_poses):
    pose = h36m_train_poses[37]
    K = P.lens_intrinsics(35, P.PORTRAIT)
    kps, gt, _, _, uv = _photo(pose, K, height=1.5, dist=3.2, azimuth=1.0)
    hidden = ["left_knee", "right_knee", "left_ankle", "right_ankle"]
    cut = int(min(uv[JOINT_INDEX[n], 1] for n in hidden)) - 5
    kps = {n: v for n, v in kps.items() if n not in hidden}
    assert max(v[1] for v in kps.values()) < cut
    Kc = Intrinsics(K.fx, K.fy, K.cx, K.cy, K.width, cut)  # the photo ends above the knees
    fr = _estimate(pose_service, kps, Kc)
    assert any("legs" in w and "not seen" in w for w in fr.warnings), fr.warnings
    seen = [JOINT_INDEX[n] for n in kps]
    for h in fr.hypotheses[:5]:
        p = project(np.array(h.joints) + np.array(h.root_translation), Kc)
        assert np.linalg.norm(p[seen] - np.array([kps[JOINT_NAMES[j]][:2] for j in seen]), axis=-1).mean() < 10
        w = np.array(h.world_joints)  # hidden legs plausible: below the hips, knees not bent backwards
        for s in ("left", "right"):
            hip, knee, ankle = (w[JOINT_INDEX[f"{s}_{n}"]] for n in ("hip", "knee", "ankle"))
            assert ankle[2] < hip[2] - 0.2
            assert float((knee - hip) @ (ankle - knee)) > -0.9 * 0.44 * 0.45
    assert _errors(fr, gt, [JOINT_INDEX[n] for n in hidden]).min() < 300  # measured 222 mm: a guess, not a measurement


def test_wide_lens_and_off_centre_subject_as_good_as_centred(pose_service, h36m_train_poses):
    errs = {"50 mm centred": [], "24 mm centred": [], "24 mm corner": []}
    for k, i in enumerate((37, 120)):
        pose = h36m_train_poses[i]
        for name in errs:
            K = P.lens_intrinsics(50 if name.startswith("50") else 24, P.LANDSCAPE)
            dist = 5.0 if name.startswith("50") else 3.0
            # aim so that the pelvis lands about half way to an image corner
            aim = (0.0, 0.0) if "centred" in name else (0.5 * math.atan(K.cx / K.fx), -0.3 * math.atan(K.cy / K.fy))
            kps, gt, _, _, _ = _photo(pose, K, height=1.4, dist=dist, azimuth=0.7 + k, aim=aim)
            errs[name].append(_errors(_estimate(pose_service, kps, K), gt).min())
    m = {k: float(np.mean(v)) for k, v in errs.items()}
    assert m["24 mm centred"] < m["50 mm centred"] + 15, m
    assert m["24 mm corner"] < m["50 mm centred"] + 15, m


LYING_BEST_MM = 90.0


def test_outside_bounds_keep_the_reported_side_only():
    """Evidence2D.set_outside: a joint reported past a border must project past that border; the
    position reported is not evidence (only the side), joints inside the photo get no bound."""
    import torch

    from backend.prior.evidence import KeypointEvidence

    K = Intrinsics(1000.0, 1000.0, 500.0, 400.0, 1000, 800)
    uv = np.full((len(JOINT_NAMES), 2), np.nan)
    uv[JOINT_INDEX["left_ankle"]] = (450.0, 900.0)  # below the bottom
    uv[JOINT_INDEX["right_wrist"]] = (-30.0, -10.0)  # left of and above the top-left corner
    uv[JOINT_INDEX["head"]] = (500.0, 300.0)  # inside: no bound
    ev = KeypointEvidence(uv, np.zeros(len(JOINT_NAMES)), K)
    ev.set_outside(uv, np.ones(len(JOINT_NAMES), bool), K)
    probe = torch.zeros(1, len(JOINT_NAMES), 2)  # every joint projected at the principal point
    tgt, dist = ev.outside_target(probe)
    la, rw = JOINT_INDEX["left_ankle"], JOINT_INDEX["right_wrist"]
    assert torch.allclose(tgt[0, la], torch.tensor([0.0, 0.4])) and abs(float(dist[0, la]) - 0.4) < 1e-6
    assert torch.allclose(tgt[0, rw], torch.tensor([-0.5, -0.4]))
    others = [j for j in range(len(JOINT_NAMES)) if j not in (la, rw)]
    assert float(dist[0, others].abs().max()) == 0.0


def test_truncated_legs_reported_past_the_border_stay_past_it(pose_service, h36m_train_poses):
    """Legs cut off by the bottom of the photo, reported there with confidence 0 (as BlazePose
    extrapolates): every hypothesis' hidden knees and ankles project below the photo's bottom, or
    within a few pixels of it (the hinge's sigma is 8 px). Measured: at most 11 px inside with the
    bound, 130 px inside without it (one of 20 hypotheses bends a leg up into the photo)."""
    pose = h36m_train_poses[21]
    K = P.lens_intrinsics(35, P.PORTRAIT)
    kps, _, _, _, uv = _photo(pose, K, height=1.5, dist=3.2, azimuth=1.0)
    hidden = ["left_knee", "right_knee", "left_ankle", "right_ankle"]
    cut = int(min(uv[JOINT_INDEX[n], 1] for n in hidden)) - 5
    for n in hidden:
        kps[n] = [kps[n][0], kps[n][1], 0.0]
    Kc = Intrinsics(K.fx, K.fy, K.cx, K.cy, K.width, cut)
    fr = _estimate(pose_service, kps, Kc)
    assert any("legs" in w and "not seen" in w for w in fr.warnings), fr.warnings
    for h in fr.hypotheses:
        p = project(np.array(h.joints) + np.array(h.root_translation), Kc)
        assert (p[[JOINT_INDEX[n] for n in hidden], 1] > cut - 25).all(), p[[JOINT_INDEX[n] for n in hidden], 1] - cut


def test_photo_cut_above_the_knees_keeps_the_detectors_outside_legs_outside(pose_service):
    """A real photo cropped between the hips and the knees: BlazePose places the knees and ankles
    beyond the bottom border (measured 417-520 px for a 379 px high crop of samples/image1.png);
    the evidence bounds them below the border and every hypothesis keeps them there (within the
    hinge's few pixels)."""
    import base64
    import io
    from pathlib import Path

    from PIL import Image

    im = Image.open(Path(__file__).resolve().parents[1] / "samples" / "image1.png").convert("RGB")
    cut = 379
    buf = io.BytesIO()
    im.crop((0, 0, im.width, cut)).save(buf, "PNG")
    req = schemas.EstimateRequest(frames=[{"image": base64.b64encode(buf.getvalue()).decode()}], num_hypotheses=20, seed=0)
    fr = pose_service.estimate(req).frames[0]
    K = Intrinsics(**{k: fr.camera[k] for k in ("fx", "fy", "cx", "cy", "width", "height")})
    from backend.vision.photo import load_image

    det = pose_service.detector.detect(load_image(req.frames[0].image, "image"), field="image")
    outside = [n for n in ("left_knee", "right_knee", "left_ankle", "right_ankle") if det.keypoints[n][1] > cut]
    assert len(outside) >= 2, det.keypoints
    cond = pose_service.frame_conditions(req.frames[0], "frames[0]")[0]  # the wiring: bounds for them
    lo = cond.evidence.out_lo.numpy()
    assert all(np.isfinite(lo[JOINT_INDEX[n], 1]) for n in outside), lo
    for h in fr.hypotheses:
        p = project(np.array(h.joints) + np.array(h.root_translation), K)
        assert (p[[JOINT_INDEX[n] for n in outside], 1] > cut - 25).all(), p[[JOINT_INDEX[n] for n in outside], 1] - cut


def test_photo_eval_lenses_share_the_camera_place(h36m_train_poses):
    """The photo eval's 24 / 35 / 50 mm rows of a frame are the same photo taken with another lens:
    the same camera height and place, the pelvis at the same place in the frame (as a fraction of the
    half image), every joint inside; the 50 mm draw is the one drawn without pairing."""
    pose = h36m_train_poses[0] - h36m_train_poses[0][:1]
    draws = {lens: P.photo_camera(pose, lens, np.random.default_rng([3, 50]), fit_lens_mm=P.PAIRED_LENS)
             for lens in (50.0, 35.0, 24.0)}
    R50, T50, K50, h50 = P.photo_camera(pose, 50.0, np.random.default_rng([3, 50]))
    assert np.allclose(R50, draws[50.0][0]) and np.allclose(T50, draws[50.0][1]) and h50 == draws[50.0][3]
    for lens, (R, T, K, h) in draws.items():
        assert h == h50 and (K.width, K.height) == (K50.width, K50.height)
        assert np.allclose(-R.T @ T, -R50.T @ T50, atol=1e-9)  # camera centre (pelvis at the origin)
        uv = project(pose @ R.T + T, K)
        assert (uv >= P.BORDER_PX).all() and (uv <= np.array([K.width, K.height]) - P.BORDER_PX).all()
        frac = np.arctan2(T[:2], T[2]) / np.arctan(np.array([K.width, K.height]) / 2 / K.fx)
        frac50 = np.arctan2(T50[:2], T50[2]) / np.arctan(np.array([K50.width, K50.height]) / 2 / K50.fx)
        assert np.allclose(frac, frac50, atol=0.15), (lens, frac, frac50)


def test_known_rotation_eval_requests_give_the_true_camera_rotation(h36m_train_poses):
    """``posediff eval ... --known-rotation``: a photo case's and a clip's cameras carry the world->camera
    rotation that maps the true pose onto the ground truth (what the add-on's "Use my camera as it is"
    sends), and only then; the request validates."""
    from backend.eval_sequence import clip_request
    from backend.http import schemas

    pose = h36m_train_poses[5] - h36m_train_poses[5][:1]
    plain = P.photo_case(pose, P.SETTINGS["noisy 24mm"], frame_seed=4, setting_seed=1)
    known = P.photo_case(pose, P.SETTINGS["noisy 24mm"], frame_seed=4, setting_seed=1, known_rotation=True)
    assert "rotation" not in plain.camera and known.keypoints == plain.keypoints
    R = np.array(known.camera["rotation"])
    cam = pose @ R.T
    np.testing.assert_allclose(cam - cam[:1], known.gt, atol=1e-9)
    schemas.EstimateRequest.model_validate({"frames": [{"keypoints": known.keypoints, "camera": known.camera}]})
    clip = h36m_train_poses[:6] - h36m_train_poses[:6, :1]
    req, gt, Rc, _ = clip_request(clip, np.random.default_rng(0), num=2, seed=1, lens_mm=35.0, known_rotation=True)
    assert all(np.allclose(f["camera"]["rotation"], Rc) for f in req["frames"])
    np.testing.assert_allclose(clip @ Rc.T - (clip @ Rc.T)[:, :1], gt, atol=1e-9)
    assert "rotation" not in clip_request(clip, np.random.default_rng(0), num=2, seed=1)[0]["frames"][0]["camera"]
    schemas.EstimateRequest.model_validate(req)


def test_photo_cut_between_knees_and_ankles_does_not_pin_the_feet_to_the_edge(pose_service):
    """samples/image2.jpeg cropped to 508 px high, between the knees and the ankles (labelled at
    538 and 564 px in samples/pose_landmark_truth.csv): BlazePose reports the cut-off ankles
    *inside* the crop at its edge (measured 480 / 482 px, confidence 0.63 / 0.73), which the
    evidence used to take at face value (the shins shortened to the edge). They are taken for
    cut-off landmarks (``visibility.at_border``): not seen, named in the warning, and bounded to
    project at the border band or beyond; some hypothesis then puts them nearer their labels than
    the detector did."""
    import base64
    import csv
    import io
    from pathlib import Path

    from PIL import Image

    from backend.vision.photo import load_image
    from backend.vision.visibility import border_band

    root = Path(__file__).resolve().parents[1] / "samples"
    truth = list(csv.DictReader(open(root / "pose_landmark_truth.csv")))[1]
    im = Image.open(root / "image2.jpeg").convert("RGB")
    cut = 508
    buf = io.BytesIO()
    im.crop((0, 0, im.width, cut)).save(buf, "PNG")
    req = schemas.EstimateRequest(frames=[{"image": base64.b64encode(buf.getvalue()).decode()}], num_hypotheses=20, seed=0)
    det = pose_service.detector.detect(load_image(req.frames[0].image, "image"), field="image")
    ankles = ["left_ankle", "right_ankle"]
    assert all(det.keypoints[n][1] < cut and det.keypoints[n][2] >= 0.1 for n in ankles), det.keypoints  # inside, "present"
    cond, K, _, _, warnings = pose_service.frame_conditions(req.frames[0], "frames[0]")
    assert any("feet" in w and "not seen" in w for w in warnings), warnings
    w = cond.evidence.weight.numpy()
    lo = cond.evidence.out_lo.numpy()
    band = border_band(K)[1]
    for n in ankles:
        assert w[JOINT_INDEX[n]] == 0.0 and abs(lo[JOINT_INDEX[n], 1] * K.fy + K.cy - (cut - band)) < 1e-3
    fr = pose_service.estimate(req).frames[0]
    label = np.array([[float(truth[f"{n}_x"]), float(truth[f"{n}_y"])] for n in ankles])
    reported = np.array([det.keypoints[n][:2] for n in ankles])
    err = []
    for h in fr.hypotheses:
        p = project(np.array(h.joints) + np.array(h.root_translation), K)[[JOINT_INDEX[n] for n in ankles]]
        assert (p[:, 1] > cut - band - 25).all(), p[:, 1] - cut
        err.append(np.linalg.norm(p - label, axis=-1).mean())
    print("ankle 2D error vs labels: reported", np.linalg.norm(reported - label, axis=-1).mean(), "hypotheses", np.round(err))
    assert min(err) < np.linalg.norm(reported - label, axis=-1).mean()


def test_a_chest_up_photo_warns_that_hips_and_legs_are_the_priors(pose_service):
    """A real photo cropped above the hips (samples/image2.jpeg, top 35 %: head, shoulders, elbows):
    hypotheses come back, and the frame says the hips and legs are not seen (they used to go unmentioned:
    the warning needed a hip seen)."""
    import base64
    import io
    from pathlib import Path

    from PIL import Image

    from backend.vision.visibility import unseen_warning

    im = Image.open(Path(__file__).resolve().parents[1] / "samples" / "image2.jpeg").convert("RGB")
    buf = io.BytesIO()
    im.crop((0, 0, im.width, int(0.35 * im.height))).save(buf, "PNG")
    req = schemas.EstimateRequest(frames=[{"image": base64.b64encode(buf.getvalue()).decode()}], num_hypotheses=4, seed=0)
    fr = pose_service.estimate(req).frames[0]
    assert len(fr.hypotheses) == 4 and not any(n in fr.keypoints for n in ("left_hip", "right_hip", "left_knee"))
    assert any(w.startswith("hips and legs not seen") for w in fr.warnings), fr.warnings
    seen = np.zeros(len(JOINT_NAMES), bool)
    seen[[JOINT_INDEX[n] for n in ("left_hip", "right_hip", "left_shoulder")]] = True
    assert unseen_warning(seen)[0].startswith("legs and arms not seen")
