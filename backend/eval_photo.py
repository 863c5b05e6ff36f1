"""``posediff eval lift --protocol photo``: lifting measured on photos as people take them.

The lab protocol (:mod:`backend.evaluate`) projects held-out Human3.6M poses through H3.6M-like
cameras (f = 1145 px, 4.5-6.5 m, 0-20 degrees pitch, the subject at the image centre, mostly
standing). This protocol draws the camera the way a hand-held or tripod photo is taken:

* **Camera**: its centre 0.3-2.5 m above the floor (floor = the lowest joint of the pose), 3-7 m
  from the pelvis horizontally, from any side; aimed *near* the person (the pelvis lands anywhere
  within 80 % of the half field of view from the image centre), roll ~ N(0, 5 deg) clipped to
  +-15 deg. Every joint must lie inside the image (at least 2 px from the border, in front of
  the camera); a draw that fails is drawn again (up to 200 times), so people who do not fit
  are photographed from further away, as a photographer steps back.
* **Lens**: 24 / 35 / 50 mm equivalent, ``f = long image side * focal / 36`` pixels; the image is a
  4:3 phone frame, 1440x1080 landscape or (30 %) 1080x1440 portrait; square pixels, principal
  point at the centre (until a crop moves it, see truncation). The lenses are paired: a frame's
  24 / 35 / 50 mm photos are taken from the same place with the same aim and roll
  (:data:`PAIRED_LENS`), so two lens rows differ by the lens alone.
* **Pose subsets** of the evaluated subjects (counts printed): ``all``; ``away`` from standing
  (torso pelvis->thorax tilted more than 35 deg from vertical, or a knee bent more than 80 deg:
  sitting, crouching, bending, lying); ``floor`` (torso tilt more than 55 deg: lying, on all fours).
* **2D evidence**: the 17 Human3.6M joints projected, Gaussian noise (4 px unless ``exact``), and
  detector-like errors: ``swap`` (the left/right labels of one limb pair below the hip or
  shoulder exchanged: knee+ankle or elbow+wrist, as BlazePose does on back views), ``outliers``
  (one or two joints displaced by 15-40 % of the person's height), ``truncated`` (the image cropped
  so that the feet - ankles and toes - fall outside it; the request's camera is the cropped one;
  the hidden joints are reported as a detector that extrapolates past the border does, BlazePose
  among them: confidence 0 at their noisy position beyond the border, so only the side of the
  border they lie on is evidence; ``truncated dropped``, ``truncated legs dropped``,
  ``swap+truncated dropped``: the same draws with the hidden joints absent from the request, a
  detector that reports nothing; ``truncated at edge``, ``swap+truncated at edge``: the same draws
  with the hidden joints reported as the shipped BlazePose reports cut-off landmarks, measured on
  cropped sample photos: at the crop's edge, -5.5..+4.6 % of the image side outwards, so some
  inside the photo, at confidence 0.02-0.75), ``truncated legs`` (the knees too), ``missing`` (one to three random joints
  absent), ``noexif`` (the lens is drawn from 24/35/50 mm and the request gives only the image
  size: the backend's own default focal length is used); ``noisy 77mm`` / ``noisy 120mm`` and
  ``no EXIF 77mm`` / ``no EXIF 120mm``: a phone's 3x / 5x telephoto (or a portrait lens), its
  lens given, and not (a picture from the web or a messenger's copy: the default 40 mm is used),
  from the same place as the 50 mm photo (so only where that lens still sees the whole person);
  ``mirror image``: the noisy row's photo saved as a mirror image (a selfie as previewed, a webcam's
  picture, a photo in a mirror: the keypoints a detector labels on it, ``u -> width - u`` with the
  left and right names swapped) estimated as it is, and ``mirror image+mirrored``: the same with
  the request's ``mirrored`` (``backend/vision/mirror.py``), which should match ``noisy``.

Metrics as in the lab protocol (17 joints, root-aligned camera frame, mm): best-of-1, best-of-5,
best-of-N, aggregate, PA-MPJPE, plus the camera pitch error of the top hypothesis (degrees; the
truth from the drawn camera) and the top hypothesis' relative pelvis depth error (%).

The protocol only builds requests and scores responses, so it measures whichever prior the
:class:`~backend.service.PoseService` has loaded.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from backend.camera import Intrinsics, project
from backend.skeleton import H36M17, JOINT_INDEX, JOINT_NAMES

#: Photo frames: 4:3 phone images (width, height) in pixels.
LANDSCAPE = (1440, 1080)
PORTRAIT = (1080, 1440)
PORTRAIT_P = 0.3
HEIGHT_RANGE = (0.3, 2.5)  # camera centre above the floor, metres
DIST_RANGE = (3.0, 7.0)  # horizontal distance camera -> pelvis, metres
AIM_SPREAD = 0.8  # pelvis anywhere within this fraction of the half field of view
ROLL_SD, ROLL_MAX = 5.0, 15.0  # degrees
BORDER_PX = 2.0
#: Every lens is drawn from this lens' random stream and must fit the person at it too: the 24 / 35
#: / 50 mm rows of a frame share the camera's place, height, aim (as a fraction of the field of
#: view) and roll, so they differ by the lens alone (unpaired draws made 35 mm look worse than both
#: 24 and 50 mm on 8 frames, see :func:`photo_case`); the 50 mm rows draw as they always did.
PAIRED_LENS = 50.0
AWAY_TILT, AWAY_KNEE, FLOOR_TILT = 35.0, 80.0, 55.0  # degrees

_J = JOINT_INDEX


@dataclass(frozen=True)
class Setting:
    """One row of a photo table: lens (mm equivalent, 0 = drawn per frame), 2D noise (px), errors."""

    lens: float
    noise: float
    errors: tuple = ()
    known_focal: bool = True


SETTINGS: dict[str, Setting] = {
    "exact": Setting(50, 0.0),
    "noisy": Setting(50, 4.0),
    "noisy 35mm": Setting(35, 4.0),
    "noisy 24mm": Setting(24, 4.0),
    "swap": Setting(50, 4.0, ("swap",)),
    "outliers": Setting(50, 4.0, ("outliers",)),
    "truncated": Setting(50, 4.0, ("truncate",)),
    "truncated legs": Setting(50, 4.0, ("truncate_legs",)),
    "missing": Setting(50, 4.0, ("missing",)),
    "swap+truncated": Setting(50, 4.0, ("swap", "truncate")),
    "no EXIF": Setting(0, 4.0, (), known_focal=False),
    # paired with their base rows (paired_seed); listed last so the rows above keep their seeds
    "truncated dropped": Setting(50, 4.0, ("truncate", "drop_hidden")),
    "truncated legs dropped": Setting(50, 4.0, ("truncate_legs", "drop_hidden")),
    "swap+truncated dropped": Setting(50, 4.0, ("swap", "truncate", "drop_hidden")),
    "truncated at edge": Setting(50, 4.0, ("truncate", "report_at_edge")),
    "swap+truncated at edge": Setting(50, 4.0, ("swap", "truncate", "report_at_edge")),
    "no EXIF pillarboxed": Setting(0, 4.0, ("pillarbox",), known_focal=False),
    # telephotos (a phone's 3x / 5x, a portrait lens), their lens given and not (the default used)
    "noisy 77mm": Setting(77, 4.0),
    "no EXIF 77mm": Setting(77, 4.0, (), known_focal=False),
    "noisy 120mm": Setting(120, 4.0),
    "no EXIF 120mm": Setting(120, 4.0, (), known_focal=False),
    # the noisy row's draws as a mirror-image picture, estimated as it is and with 'mirrored'
    "mirror image": Setting(50, 4.0, ("mirror",)),
    "mirror image+mirrored": Setting(50, 4.0, ("mirror", "flag_mirrored")),
}
DEFAULT_SETTINGS = "exact,noisy,noisy 24mm,swap+truncated"
SUBSETS = ("all", "away", "floor")
SUBSET_TITLES = {"all": "all poses", "away": "away from standing (torso tilt > 35 deg or a knee bent > 80 deg)",
                 "floor": "floor (torso tilt > 55 deg)"}


def paired_seed(name: str) -> int:
    """The random stream of a setting's noise and errors: its place in :data:`SETTINGS`; a
    ``... dropped`` or ``... at edge`` row shares its base row's (same noise, swap and crop: the
    rows are paired)."""
    if name.startswith("mirror image"):
        return list(SETTINGS).index("noisy")
    return list(SETTINGS).index(name.removesuffix(" dropped").removesuffix(" at edge").removesuffix(" pillarboxed"))


# ------------------------------------------------------------------------------------ poses


def torso_tilt_deg(poses: np.ndarray) -> np.ndarray:
    """Angle (degrees) between the torso (pelvis -> thorax) and world up; ``[N, J, 3] -> [N]``."""
    v = poses[:, _J["thorax"]] - poses[:, _J["pelvis"]]
    c = v[:, 2] / np.maximum(np.linalg.norm(v, axis=-1), 1e-9)
    return np.degrees(np.arccos(np.clip(c, -1, 1)))


def knee_bend_deg(poses: np.ndarray) -> np.ndarray:
    """Larger knee flexion of the two legs (0 = straight leg), degrees; ``[N, J, 3] -> [N]``."""
    out = []
    for s in ("left", "right"):
        thigh = poses[:, _J[f"{s}_knee"]] - poses[:, _J[f"{s}_hip"]]
        shin = poses[:, _J[f"{s}_ankle"]] - poses[:, _J[f"{s}_knee"]]
        c = (thigh * shin).sum(-1) / np.maximum(np.linalg.norm(thigh, axis=-1) * np.linalg.norm(shin, axis=-1), 1e-9)
        out.append(np.degrees(np.arccos(np.clip(c, -1, 1))))
    return np.maximum(*out)


def subset_masks(poses: np.ndarray) -> dict[str, np.ndarray]:
    """``{"all", "away", "floor"}`` -> ``[N]`` bool masks of world poses ``[N, J, 3]`` (Z up)."""
    tilt, knee = torso_tilt_deg(poses), knee_bend_deg(poses)
    return {"all": np.ones(len(poses), bool), "away": (tilt > AWAY_TILT) | (knee > AWAY_KNEE), "floor": tilt > FLOOR_TILT}


# ------------------------------------------------------------------------------------ camera


def look_rotation(forward: np.ndarray, roll: float) -> np.ndarray:
    """World -> camera rotation (OpenCV camera, world Z up) looking along ``forward`` with ``roll`` (rad).

    Rows are the camera's x (right), y (down) and z (forward) axes in world coordinates, the
    right axis horizontal before the roll about the optical axis.
    """
    f = forward / np.linalg.norm(forward)
    right = np.cross(f, [0.0, 0.0, 1.0])
    right = right / max(np.linalg.norm(right), 1e-9)
    down = np.cross(f, right)
    cr, sr = math.cos(roll), math.sin(roll)
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1.0]])
    return rz @ np.stack([right, down, f])


def lens_intrinsics(lens_mm: float, size: tuple[int, int]) -> Intrinsics:
    """``f = long side * lens / 36`` pixels, centred principal point, for an image ``(width, height)``."""
    w, h = size
    f = max(w, h) * lens_mm / 36.0
    return Intrinsics(f, f, w / 2.0, h / 2.0, int(w), int(h))


def _fits(cam: np.ndarray, K: Intrinsics) -> bool:
    """Every joint of ``cam`` (``[J, 3]`` camera frame) at least 0.3 m in front and ``BORDER_PX`` inside the image."""
    if cam[:, 2].min() < 0.3:
        return False
    uv = project(cam, K)
    return bool((uv >= BORDER_PX).all() and (uv[:, 0] <= K.width - BORDER_PX).all() and (uv[:, 1] <= K.height - BORDER_PX).all())


def photo_camera(pose: np.ndarray, lens_mm: float, rng: np.random.Generator, tries: int = 200,
                 fit_lens_mm: float | None = None):
    """Draw a photo camera that sees every joint of ``pose`` (``[J, 3]`` world, pelvis at the origin).

    With ``fit_lens_mm`` a draw is kept only if every joint is also inside the image of that lens
    (same position, aim fraction of the field of view and roll): the lenses' rows are then paired,
    the same photographer in the same place with another lens (:data:`PAIRED_LENS`).

    Returns:
        (R ``[3, 3]`` world->camera, T ``[3]`` pelvis in the camera frame (metres), K, height above the floor (m)).
    Raises:
        RuntimeError: no draw in ``tries`` fits the person into the image.
    """
    floor = float(pose[:, 2].min())
    for _ in range(tries):
        K = lens_intrinsics(lens_mm, PORTRAIT if rng.random() < PORTRAIT_P else LANDSCAPE)
        h = rng.uniform(*HEIGHT_RANGE)
        d = rng.uniform(*DIST_RANGE)
        az = rng.uniform(0, 2 * math.pi)
        C = np.array([d * math.cos(az), d * math.sin(az), floor + h])
        to = -C / np.linalg.norm(C)  # towards the pelvis
        yaw = math.atan2(to[1], to[0]) + rng.uniform(-1, 1) * AIM_SPREAD * math.atan(K.width / 2 / K.fx)
        elev = math.asin(to[2]) + rng.uniform(-1, 1) * AIM_SPREAD * math.atan(K.height / 2 / K.fy)
        fwd = np.array([math.cos(elev) * math.cos(yaw), math.cos(elev) * math.sin(yaw), math.sin(elev)])
        roll = math.radians(float(np.clip(rng.normal(0, ROLL_SD), -ROLL_MAX, ROLL_MAX)))
        if fit_lens_mm is not None and fit_lens_mm != lens_mm:
            Kf = lens_intrinsics(fit_lens_mm, (K.width, K.height))
            yf = math.atan2(to[1], to[0]) + (yaw - math.atan2(to[1], to[0])) * math.atan(K.width / 2 / Kf.fx) / math.atan(K.width / 2 / K.fx)
            ef = math.asin(to[2]) + (elev - math.asin(to[2])) * math.atan(K.height / 2 / Kf.fy) / math.atan(K.height / 2 / K.fy)
            Rf = look_rotation(np.array([math.cos(ef) * math.cos(yf), math.cos(ef) * math.sin(yf), math.sin(ef)]), roll)
            if not _fits((pose - C) @ Rf.T, Kf):
                continue
        R = look_rotation(fwd, roll)
        cam = (pose - C) @ R.T
        if _fits(cam, K):
            return R, cam[0], K, h
    raise RuntimeError("photo_camera: no camera draw fits the person into the image")


def paired_photo_camera(pose: np.ndarray, lens_mm: float, seed: int):
    """:func:`photo_camera` drawn from ``seed`` alone and paired across lenses (:data:`PAIRED_LENS`):
    every lens' photo of ``pose`` (``[J, 3]`` world, pelvis at the origin; any number of joints, e.g.
    a whole clip's) is taken from the same place with the same aim fraction and roll. Returns and
    raises as :func:`photo_camera`."""
    return photo_camera(pose, lens_mm, np.random.default_rng([seed, int(PAIRED_LENS)]), fit_lens_mm=PAIRED_LENS)


# ------------------------------------------------------------------------------------ 2D errors

_SWAP_PAIRS = {"legs": [("left_knee", "right_knee"), ("left_ankle", "right_ankle")],
               "arms": [("left_elbow", "right_elbow"), ("left_wrist", "right_wrist")]}
_OUTLIER_JOINTS = [n for n in JOINT_NAMES[:17] if n.split("_")[-1] in ("knee", "ankle", "elbow", "wrist")]


def swap_limb_pair(kps: dict, rng: np.random.Generator) -> str:
    """Exchange the left/right labels of the legs' or the arms' knee+ankle / elbow+wrist (in place)."""
    limb = "legs" if rng.random() < 0.5 else "arms"
    for a, b in _SWAP_PAIRS[limb]:
        if a in kps and b in kps:
            kps[a], kps[b] = kps[b], kps[a]
    return limb


def add_outliers(kps: dict, uv: np.ndarray, rng: np.random.Generator) -> None:
    """Move one or two limb-end joints by 15-40 % of the person's 2D height (in place)."""
    height = float(np.ptp(uv[list(H36M17), 1])) if len(uv) else 100.0
    height = max(height, float(np.ptp(uv[list(H36M17), 0])))
    names = [n for n in _OUTLIER_JOINTS if n in kps]
    for n in rng.choice(names, size=min(len(names), int(rng.integers(1, 3))), replace=False):
        a = rng.uniform(0, 2 * math.pi)
        r = rng.uniform(0.15, 0.4) * height
        kps[n] = [kps[n][0] + r * math.cos(a), kps[n][1] + r * math.sin(a), kps[n][2]]


#: Where BlazePose reports a cut-off landmark (``truncated at edge``): at the crop's edge, offset
#: outwards by a fraction of the image side drawn from this range (negative: inside the photo), at
#: a confidence drawn from ``EDGE_CONFIDENCE``; measured on the sample photos cropped between the
#: knees and the ankles (see :func:`backend.vision.visibility.at_border`).
EDGE_OFFSET = (-0.055, 0.046)
EDGE_CONFIDENCE = (0.02, 0.75)


def truncate(kps: dict, uv: np.ndarray, K: Intrinsics, legs: bool = False,
             report: bool = True, edge_rng: np.random.Generator | None = None) -> tuple[Intrinsics, list[str]]:
    """Crop the image so that the feet (with ``legs`` the knees too) fall outside it.

    The crop edge is the image side the hidden joints are nearest to, placed between them and the
    kept joints; the cropped camera is returned (principal point shifted when the top or left is
    cut). The hidden joints (in ``kps``, in place) keep their position beyond the border with
    confidence 0 when ``report`` (what an extrapolating detector gives), else they are removed;
    with ``edge_rng`` they are reported as the shipped BlazePose reports cut-off landmarks: at the
    crop's edge (:data:`EDGE_OFFSET`, so some inside the photo) at a low confidence
    (:data:`EDGE_CONFIDENCE`). When no straight crop separates them they are removed and the
    camera kept.

    Returns:
        (intrinsics of the cropped image, names of the hidden joints).
    """
    hidden = ["left_ankle", "right_ankle", "left_toe", "right_toe"]
    if legs:
        hidden += ["left_knee", "right_knee"]
    hid = [_J[n] for n in hidden]
    kept = [j for j in H36M17 if j not in hid]
    hu, ku = uv[hid], uv[kept]
    cands = []  # (crop, margin)
    if hu[:, 1].min() > ku[:, 1].max():
        cands.append(("bottom", hu[:, 1].min() - ku[:, 1].max()))
    if hu[:, 1].max() < ku[:, 1].min():
        cands.append(("top", ku[:, 1].min() - hu[:, 1].max()))
    if hu[:, 0].min() > ku[:, 0].max():
        cands.append(("right", hu[:, 0].min() - ku[:, 0].max()))
    if hu[:, 0].max() < ku[:, 0].min():
        cands.append(("left", ku[:, 0].min() - hu[:, 0].max()))
    reported = {n: [kps[n][0], kps[n][1], 0.0] for n in hidden if n in kps}
    for n in hidden:
        kps.pop(n, None)
    if not cands:
        return K, hidden
    if report:
        kps.update(reported)
    side, _ = max(cands, key=lambda c: c[1])
    cx, cy, w, h = K.cx, K.cy, K.width, K.height
    if side == "bottom":
        h = int(math.floor((hu[:, 1].min() + ku[:, 1].max()) / 2))
    elif side == "top":
        cut = int(math.ceil((ku[:, 1].min() + hu[:, 1].max()) / 2))
        cy, h = cy - cut, h - cut
        for n in kps:
            kps[n] = [kps[n][0], kps[n][1] - cut, kps[n][2]]
    elif side == "right":
        w = int(math.floor((hu[:, 0].min() + ku[:, 0].max()) / 2))
    else:
        cut = int(math.ceil((ku[:, 0].min() + hu[:, 0].max()) / 2))
        cx, w = cx - cut, w - cut
        for n in kps:
            kps[n] = [kps[n][0] - cut, kps[n][1], kps[n][2]]
    if edge_rng is not None:
        for n in reported:
            u, v, _ = kps[n]
            o = edge_rng.uniform(*EDGE_OFFSET) * (h if side in ("bottom", "top") else w)
            u, v = {"bottom": (u, h + o), "top": (u, -o), "right": (w + o, v), "left": (-o, v)}[side]
            kps[n] = [float(u), float(v), float(edge_rng.uniform(*EDGE_CONFIDENCE))]
    return Intrinsics(K.fx, K.fy, cx, cy, max(int(w), 16), max(int(h), 16)), hidden


def drop_missing(kps: dict, rng: np.random.Generator) -> None:
    """Remove one to three random joints (in place)."""
    names = sorted(kps)
    for n in rng.choice(names, size=min(len(names) - 2, int(rng.integers(1, 4))), replace=False):
        kps.pop(n)


def pillarboxed(K: Intrinsics, kps: dict) -> tuple[Intrinsics, dict]:
    """The photo as a video platform or a screen recording shows it: centred in a 16:9 landscape frame
    of its height, black bars left and right (a portrait phone clip, a 4:3 one). Returns the padded
    frame's camera (the same lens, the principal point moved with the picture) and the keypoints in
    its pixels."""
    pad = (round(K.height * 16 / 9) - K.width) / 2.0
    if pad <= 0:
        return K, kps
    moved = {n: [v[0] + pad, *v[1:]] for n, v in kps.items()}
    return Intrinsics(K.fx, K.fy, K.cx + pad, K.cy, int(K.width + 2 * pad), K.height), moved


@dataclass
class PhotoCase:
    """One evaluation request: keypoints (pixels), the request camera, and the truth."""

    keypoints: dict
    camera: dict
    gt: np.ndarray  # [J, 3] camera frame, root-relative, metres
    pitch_deg: float
    depth: float  # true pelvis depth, metres
    hidden: list
    mirrored: bool = False  # the request says the picture is a mirror image


def photo_case(pose: np.ndarray, setting: Setting, frame_seed: int, setting_seed: int,
               known_rotation: bool = False) -> PhotoCase:
    """Build the request of one frame under one setting (with ``known_rotation`` its camera gives
    the true world->camera rotation, as the add-on's "Use my camera as it is" does).

    The camera depends on ``frame_seed`` and the lens only: paired across settings, and across
    lenses (:data:`PAIRED_LENS`: the same place, aim and roll, the lens alone differs); the noise
    and the detector-like errors on ``setting_seed``.
    """
    from backend.prior.geometry import pitch_roll_of

    lens = setting.lens
    if lens <= 0:
        lens = float(np.random.default_rng([frame_seed, 99]).choice([24.0, 35.0, 50.0]))
    R, T, K, _ = paired_photo_camera(pose, lens, frame_seed)
    cam = pose @ R.T
    uv = project(cam + T, K)
    rng = np.random.default_rng([frame_seed, setting_seed])
    if setting.noise > 0:
        uv = uv + rng.normal(0, setting.noise, uv.shape)
    kps = {JOINT_NAMES[j]: [float(uv[j, 0]), float(uv[j, 1]), 1.0] for j in H36M17}
    hidden: list = []
    if "swap" in setting.errors:
        swap_limb_pair(kps, rng)
    if "outliers" in setting.errors:
        add_outliers(kps, uv, rng)
    if "truncate" in setting.errors or "truncate_legs" in setting.errors:
        K, hidden = truncate(kps, uv, K, legs="truncate_legs" in setting.errors,
                             report="drop_hidden" not in setting.errors,
                             edge_rng=rng if "report_at_edge" in setting.errors else None)
    if "missing" in setting.errors:
        drop_missing(kps, rng)
    if "pillarbox" in setting.errors:
        K, kps = pillarboxed(K, kps)
    from backend.evaluate import with_rotation

    camera = with_rotation(K.as_dict() if setting.known_focal else {"width": K.width, "height": K.height}, R, known_rotation)
    if "mirror" in setting.errors:  # the picture saved flipped: a detector's keypoints on it, its principal point
        from backend.vision.mirror import mirror_keypoints, mirror_u

        kps = mirror_keypoints(kps, K.width)
        if "cx" in camera:
            camera["cx"] = mirror_u(camera["cx"], K.width)
    pitch, _ = pitch_roll_of(R)
    return PhotoCase(kps, camera, cam - cam[:1], math.degrees(pitch), float(T[2]), hidden,
                     mirrored="flag_mirrored" in setting.errors)


# ------------------------------------------------------------------------------------ running


def select_frames(subjects, n: int, seed: int, pool: int = 4000) -> tuple[dict[str, np.ndarray], dict[str, tuple[int, int]]]:
    """``n`` poses of each subset from a fixed pool of ``pool`` random frames of ``subjects``.

    Returns:
        (``{subset: [n', J, 3]}`` world poses, ``{subset: (count in the pool, pool size)}``).
    """
    from backend.evaluate import eval_frames

    poses = eval_frames(subjects, pool, seed=seed)
    masks = subset_masks(poses)
    return ({k: poses[np.flatnonzero(m)[:n]] for k, m in masks.items()},
            {k: (int(m.sum()), len(poses)) for k, m in masks.items()})


def run_photo(service, poses: np.ndarray, setting: Setting, setting_seed: int, num: int, seed: int = 0,
              steps=None, scale=None, known_rotation: bool = False) -> dict:
    """Lift every pose under one photo setting; returns ``{metric: [n]}`` (mm, degrees, %, s)."""
    from backend.evaluate import frame_errors
    from backend.http import schemas

    rows: dict[str, list] = {}
    for i, pose in enumerate(poses):
        case = photo_case(pose, setting, frame_seed=seed * 100003 + i, setting_seed=setting_seed,
                          known_rotation=known_rotation)
        req = schemas.EstimateRequest(frames=[{"keypoints": case.keypoints, "camera": case.camera,
                                               "mirrored": case.mirrored}],
                                      num_hypotheses=num, seed=seed + i, steps=steps, guidance_scale=scale)
        t0 = time.perf_counter()
        fr = service.estimate(req).frames[0]
        dt = time.perf_counter() - t0
        m = frame_errors(fr, case.gt)
        h0 = fr.hypotheses[0]
        m["time"] = dt
        m["pitch"] = abs(h0.camera_pitch_deg - case.pitch_deg) if h0.camera_pitch_deg is not None else float("nan")
        m["depth"] = abs(h0.root_translation[2] - case.depth) / case.depth * 100
        for k, v in m.items():
            rows.setdefault(k, []).append(v)
    return {k: np.array(v, np.float64) for k, v in rows.items()}


def cmd_lift_photo(args, service) -> None:
    """Print one table per pose subset (rows: settings)."""
    from backend.evaluate import print_table, rotation_title

    subjects = tuple(args.subjects.split(","))
    names = [s.strip() for s in (args.settings or DEFAULT_SETTINGS).split(",") if s.strip()]
    bad = [s for s in names if s not in SETTINGS]
    if bad:
        raise SystemExit(f"--settings: unknown photo setting(s) {bad}; valid: {', '.join(SETTINGS)}")
    subsets = [s.strip() for s in args.subsets.split(",")]
    frames, counts = select_frames(subjects, args.frames, args.seed)
    for sub in subsets:
        poses = frames[sub]
        rows = []
        for name in names:
            m = run_photo(service, poses, SETTINGS[name], paired_seed(name), args.num, seed=args.seed,
                          steps=args.steps, scale=args.guidance_scale, known_rotation=getattr(args, "known_rotation", False))
            rows.append([name, f"{m['b1'].mean():.1f}", f"{m['b5'].mean():.1f}", f"{m['bN'].mean():.1f}",
                         f"{m['agg'].mean():.1f}", f"{m['pa_b1'].mean():.1f}", f"{m['pa_bN'].mean():.1f}",
                         f"{m['pa_agg'].mean():.1f}", f"{np.nanmean(m['pitch']):.1f}", f"{m['depth'].mean():.0f}",
                         f"{m['time'].mean():.2f}"])
        c, p = counts[sub]
        print_table(f"eval lift --protocol photo: H3.6M {'/'.join(subjects)}, {SUBSET_TITLES[sub]}: {len(poses)} frames "
                    f"({c} of {p} pool frames, {100 * c / p:.0f}%), {args.num} hypotheses{rotation_title(args)} (MPJPE mm, 17 joints, "
                    "root-aligned)",
                    ["setting", "best-of-1", "best-of-5", f"best-of-{args.num}", "aggregate", "PA b1", f"PA b{args.num}",
                     "PA agg", "pitch err deg", "depth err %", "s/frame"], rows)


def cmd_prior_coverage(args, service) -> None:
    """``eval prior --protocol photo``: does the prior cover the poses away from standing?

    Nearest-neighbour distance (mean per-joint, mm, yaw removed, canonical bone lengths) from each
    held-out pose of a subset to ``--frames`` generated poses and to as many training (S1-S8)
    poses; a ratio near 1 means the prior covers those poses about as well as its training data.
    """
    from backend.evaluate import eval_frames, print_table
    from backend.http import schemas
    from backend.mocap import datasets as D

    n = args.frames
    subjects = tuple(args.subjects.split(","))
    pool = eval_frames(subjects, 4000, seed=args.seed)
    masks = subset_masks(pool)
    chunks = [min(1000, n - k) for k in range(0, n, 1000)]  # generate takes at most 1024 per request
    gen = D.remove_yaw(np.concatenate([np.array(service.generate(schemas.GenerateRequest(num=c, seed=args.seed + i)).poses)
                                       for i, c in enumerate(chunks)]))
    train = D.remove_yaw(D.normalise_bone_lengths(eval_frames(D.TRAIN_SUBJECTS, n, seed=args.seed + 1)))

    def nn(a, b):  # mean over a of the distance to its nearest pose in b, mm
        return float(np.mean([np.linalg.norm(b - p[None], axis=-1).mean(-1).min() for p in a]) * 1000)

    rows = []
    for sub in [s.strip() for s in args.subsets.split(",")]:
        held = D.remove_yaw(D.normalise_bone_lengths(pool[masks[sub]][:500]))
        dg, dt = nn(held, gen), nn(held, train)
        rows.append([SUBSET_TITLES[sub], len(held), f"{dg:.1f}", f"{dt:.1f}", f"{dg / dt:.2f}"])
    print_table(f"eval prior --protocol photo: held-out H3.6M {'/'.join(subjects)} poses to {n} generated vs {n} training "
                "poses (nearest neighbour, yaw removed, mm)",
                ["subset", "held-out poses", "NN to generated", "NN to training", "ratio"], rows)
