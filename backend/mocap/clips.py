"""Motion capture clips (BVH) as model-skeleton joint positions for training the pose prior.

:func:`load_mocap` reads BVH files (one file, a folder, a ``.zip``, or ``zip::member_prefix``),
maps the file's joints onto the model joints of :data:`backend.skeleton.JOINT_NAMES` with a
mapping file (``backend/mocap/mappings/<name>.toml``), converts to metres and the world frame
(right-handed, **Z up**; a Y-up file is turned by ``(x, y, z) -> (x, -z, y)``, a +90 degree
rotation about X, so a character facing +Z in the file faces -Y, Blender's front view),
puts the pelvis at the origin and subsamples to about ``stride_fps`` frames per second.

The mapping file format is described in :mod:`backend.mocap.mapping`.

Joints a source lacks get a derived position and ``mask`` False (see :func:`fill_missing`):

============== ==================================================================
joint          derived as (``s`` = the clip's leg length / H3.6M leg length)
============== ==================================================================
head           neck + s*0.115 m along H3.6M's mean neck->head-top direction in the torso frame
neck           thorax + s*0.121 m along H3.6M's mean thorax->neck direction in the torso frame
spine          pelvis + 0.476 (thorax - pelvis) (H3.6M's mean fraction)
left/right_hand  wrist + s*0.119 m along elbow->wrist
left/right_toe   ankle + s*0.163 m along H3.6M's mean ankle->toe direction in the heading frame
                 (forward = left x up, 0.95 forward, 0.3 down)
============== ==================================================================

The other joints (pelvis, hips, knees, ankles, thorax, shoulders, elbows, wrists) are required.

Which joints each shipped source lacks (mask False), and how the others are defined. Joint
definitions follow Human3.6M (pelvis = hip centre; thorax = base of the neck; neck = H3.6M's
"Head" point, in front of the head at nose level; head = head top; shoulder = upper-arm joint;
toe = toe base; hand = ~0.1 m beyond the wrist):

============ ====== ==========================================================================
mapping      lacks  notes
============ ====== ==========================================================================
bandai       none   end sites have zero length: neck, head top and hand ends are points fixed
                    in the Head / Hand joint frames
cmu          none   02_01 / 05_06 layout (Hips, LeftUpLeg ... Head); first frame skipped;
                    thorax, neck and head top are points fixed in the Spine1 / Head frames
cmu_aclstm   none   hip/abdomen/chest layout, cm; hand end = middle-finger knuckle
cmu_przestr  none   as cmu_aclstm; files with ASF bone names fall back to cmu_asf
cmu_asf      none   BVH with ASF bone names (lfemur, ltibia ...), CMU units
cmu_amc      none   ASF/AMC files (backend.mocap.amc): bones at their start, ``<bone>_End`` at their end
============ ====== ==========================================================================

The points fixed in joint frames were fitted (least squares over each source's clips) so that
their mean position in the torso frame matches Human3.6M's, then made left/right symmetric.
"""

from __future__ import annotations

import os
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backend.errors import InputError
from backend.mocap.amc import parse_amc, parse_asf
from backend.mocap.bvh import BvhMotion, decode_text, parse_bvh
from backend.mocap.mapping import Mapping, load_mapping, resolve_spec
from backend.skeleton import BONE_LENGTHS, JOINT_INDEX, NUM_JOINTS

#: Y-up file axes -> Z-up world: (x, y, z) -> (x, -z, y), a proper rotation (+90 deg about X).
Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])

# Human3.6M mean bone directions (S1+S5, chirality-corrected), used to derive missing joints.
# Torso frame: (left, forward, up) with up = pelvis->thorax, left from hips+shoulders.
_H36M_NECK_DIR = np.array([-0.03, 0.68, 0.58])
_H36M_HEAD_DIR = np.array([0.0, -0.52, 0.73])
_H36M_TOE_DIR = np.array([0.0, 0.95, -0.30])  # heading frame: (left, forward, up=Z)
_H36M_SPINE_FRACTION = 0.476
_H36M_LEG = float(BONE_LENGTHS[JOINT_INDEX["left_knee"]] + BONE_LENGTHS[JOINT_INDEX["left_ankle"]])


@dataclass
class MocapClip:
    """One motion capture clip on the model skeleton.

    Attributes:
        name: ``<file or zip member>`` the clip came from.
        joints: ``[F, 21, 3]`` float32, metres, world frame (right-handed, Z up), pelvis at the origin
            (or on its captured trajectory: ``load_mocap(keep_root=True)``).
        mask: ``[21]`` bool, False for joints the source lacks (their positions are derived).
        fps: frames per second of ``joints`` after subsampling.
    """

    name: str
    joints: np.ndarray
    mask: np.ndarray
    fps: float


# ----------------------------------------------------------------------------- conversion


def motion_to_model(motion: BvhMotion, mapping: Mapping, frames: np.ndarray | slice | None = None,
                    keep_root: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Model-joint positions of a parsed BVH through a mapping.

    Args:
        motion: the parsed file.
        mapping: the mapping.
        frames: frame selection (all if None).
        keep_root: keep the pelvis where the capture put it (its trajectory over the floor, for
            evaluating a moving camera) instead of at the origin.
    Returns:
        ``(joints [F, 21, 3] float64 metres, world frame Z up, pelvis at the origin (or where it was
        captured, ``keep_root``); mask [21] bool)``.
        Unmapped joints are derived by :func:`fill_missing`.
    Raises:
        InputError: if the mapping names a joint the file lacks (names the joint, the mapping
            file and lists the file's joints).
    """
    resolved = {mj: resolve_spec(motion, mapping, mj) for mj in mapping.joints}
    needed = sorted({n for spec in resolved.values() for n in spec.names})
    pos, rot = motion.forward_kinematics(frames, needed)
    f = pos.shape[0]
    out = np.zeros((f, NUM_JOINTS, 3))
    mask = np.zeros(NUM_JOINTS, bool)
    for mj, spec in resolved.items():
        idx = [motion.index(n) for n in spec.names]
        if spec.offset is not None:
            j = idx[0]
            out[:, JOINT_INDEX[mj]] = pos[:, j] + rot[:, j] @ spec.offset
        else:
            out[:, JOINT_INDEX[mj]] = np.einsum("k,fkc->fc", spec.weights, pos[:, idx])
        mask[JOINT_INDEX[mj]] = True
    out *= mapping.unit_m
    if mapping.up == "y":
        out = out @ Y_UP_TO_Z_UP.T
    root = out[:, :1].copy()
    out = fill_missing(out - root, mask)
    return (out + root if keep_root else out), mask


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(n, 1e-9)


def torso_frame(joints: np.ndarray) -> np.ndarray:
    """Body-fixed torso axes.

    Args:
        joints: ``[F, 21, 3]`` world frame.
    Returns:
        ``[F, 3, 3]`` rows (left, forward, up): up = pelvis->thorax, left from the hip and
        shoulder lines made orthogonal to up, forward = left x up.
    """
    J = JOINT_INDEX
    up = _unit(joints[:, J["thorax"]] - joints[:, J["pelvis"]])
    left = (joints[:, J["left_hip"]] - joints[:, J["right_hip"]]) + (joints[:, J["left_shoulder"]] - joints[:, J["right_shoulder"]])
    left = _unit(left - np.sum(left * up, -1, keepdims=True) * up)
    return np.stack([left, np.cross(left, up), up], -2)


def fill_missing(joints: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Plausible positions for joints a source lacks (rules in the module docstring).

    Args:
        joints: ``[F, 21, 3]`` metres, world frame (Z up); rows where ``mask`` is False are ignored.
        mask: ``[21]`` bool, True where the source has the joint.
    Returns:
        ``[F, 21, 3]`` with the missing rows filled.
    """
    J = JOINT_INDEX
    out = joints.copy()
    leg = np.mean(
        np.linalg.norm(out[:, J["left_knee"]] - out[:, J["left_hip"]], axis=-1)
        + np.linalg.norm(out[:, J["left_ankle"]] - out[:, J["left_knee"]], axis=-1)
    )
    s = leg / _H36M_LEG if leg > 0 else 1.0

    def bone(name: str) -> float:
        return float(BONE_LENGTHS[J[name]]) * s

    if not mask[J["spine"]]:
        out[:, J["spine"]] = out[:, J["pelvis"]] + _H36M_SPINE_FRACTION * (out[:, J["thorax"]] - out[:, J["pelvis"]])
    frame = torso_frame(out)
    if not mask[J["neck"]]:
        out[:, J["neck"]] = out[:, J["thorax"]] + bone("neck") * (_unit(_H36M_NECK_DIR) @ frame)
    if not mask[J["head"]]:
        out[:, J["head"]] = out[:, J["neck"]] + bone("head") * (_unit(_H36M_HEAD_DIR) @ frame)
    for side in ("left", "right"):
        hand, wrist, elbow = J[f"{side}_hand"], J[f"{side}_wrist"], J[f"{side}_elbow"]
        if not mask[hand]:
            out[:, hand] = out[:, wrist] + bone(f"{side}_hand") * _unit(out[:, wrist] - out[:, elbow])
    if not (mask[J["left_toe"]] and mask[J["right_toe"]]):
        left = out[:, J["left_hip"]] - out[:, J["right_hip"]]
        left[:, 2] = 0.0
        left = _unit(left)
        up = np.broadcast_to(np.array([0.0, 0.0, 1.0]), left.shape)
        heading = np.stack([left, np.cross(left, up), up], -2)
        for side in ("left", "right"):
            toe = J[f"{side}_toe"]
            if not mask[toe]:
                out[:, toe] = out[:, J[f"{side}_ankle"]] + bone(f"{side}_toe") * (_unit(_H36M_TOE_DIR) @ heading)
    return out


# ----------------------------------------------------------------------------- loading


def _iter_sources(path: str) -> list[tuple[str, callable, callable | None]]:
    """(name, read bytes, read the ASF skeleton bytes or None) for every BVH / AMC under ``path``.

    ``path`` is a file, a folder (recursive), a zip or ``zip::prefix``. An AMC file
    ``SS_TT...amc`` uses the skeleton ``SS.asf`` beside it (CMU naming).
    """
    zpath, _, prefix = str(path).partition("::")
    p = Path(zpath)
    if not p.exists():
        raise FileNotFoundError(f"{zpath}: no such file or folder (give a .bvh, a folder of .bvh, a .zip or zip::prefix)")

    def asf_name(amc: str) -> str:
        folder, _, base = amc.rpartition("/")
        return f"{folder}/{base.split('_')[0]}.asf" if folder else f"{base.split('_')[0]}.asf"

    if p.is_dir():
        files = sorted(q for q in p.rglob("*") if q.suffix.lower() in (".bvh", ".amc"))
        out = []
        for q in files:
            asf = q.parent / f"{q.name.split('_')[0]}.asf"
            out.append((str(q), q.read_bytes, asf.read_bytes if q.suffix.lower() == ".amc" else None))
        return out
    if zipfile.is_zipfile(p):
        with zipfile.ZipFile(p) as zf:
            members = sorted(
                n for n in zf.namelist()
                if n.startswith(prefix) and n.lower().endswith((".bvh", ".amc")) and not n.endswith("/")
            )
        return [
            (f"{p}::{n}", (lambda n=n: _zip_member(p, n)),
             (lambda n=n: _zip_member(p, asf_name(n))) if n.lower().endswith(".amc") else None)
            for n in members
        ]
    if prefix:
        raise InputError(str(path), "'::member_prefix' is only valid after a .zip file")
    if p.suffix.lower() == ".amc":
        asf = p.parent / f"{p.name.split('_')[0]}.asf"
        return [(str(p), p.read_bytes, asf.read_bytes)]
    if p.suffix.lower() != ".bvh":
        raise InputError(str(path), "expected a .bvh or .amc file, a folder of them or a .zip of them")
    return [(str(p), p.read_bytes, None)]


def _zip_member(zpath: Path, name: str) -> bytes:
    """The bytes of member ``name`` of the zip ``zpath`` (opened and closed again: no handle is
    kept between the reads; raises KeyError for a missing member)."""
    with zipfile.ZipFile(zpath) as zf:
        return zf.read(name)


class _NoSkeleton(InputError):
    """An AMC file whose ASF skeleton is missing."""


def _read_motion(name: str, read, read_asf, fps: float | None):
    if read_asf is None:
        return parse_bvh(decode_text(read(), name), name)
    try:
        asf_bytes = read_asf()
    except (FileNotFoundError, KeyError):
        raise _NoSkeleton(name, "no ASF skeleton for this AMC file (expected SS.asf beside SS_TT*.amc)") from None
    skel = parse_asf(decode_text(asf_bytes, name), name.rsplit("_", 1)[0] + ".asf")
    return parse_amc(decode_text(read(), name), skel, name, fps=fps or 120.0)


def load_amc(asf_path: str | os.PathLike, amc_path: str | os.PathLike, mapping: str | os.PathLike = "cmu_amc",
             stride_fps: float = 25.0, fps: float = 120.0) -> MocapClip:
    """Load one ASF/AMC clip (the original CMU format) on the model skeleton.

    Args:
        asf_path: the skeleton file.
        amc_path: the motion file.
        mapping: mapping name or .toml (joint names are ASF bone names at the bone start,
            ``<bone>_End`` at its end; see :mod:`backend.mocap.amc`).
        stride_fps: frames per second kept.
        fps: the AMC frame rate (not stored in the file; CMU: 120). A mapping's ``fps`` wins.
    Returns:
        A :class:`MocapClip` as :func:`load_mocap` gives.
    Raises:
        AmcError: malformed files (names file and line). InputError: mapping problems.
    """
    m = load_mapping(mapping)
    skel = parse_asf(decode_text(Path(asf_path).read_bytes(), str(asf_path)), str(asf_path))
    motion = parse_amc(decode_text(Path(amc_path).read_bytes(), str(amc_path)), skel, str(amc_path), fps=m.fps or fps)
    return _to_clip(str(amc_path), motion, m.for_motion(motion), stride_fps)


def _to_clip(name: str, motion, m: Mapping, stride_fps: float, keep_root: bool = False) -> MocapClip | None:
    fps = m.fps or motion.fps
    step = max(1, int(round(fps / stride_fps)))
    frames = np.arange(m.skip_frames, motion.num_frames, step)
    if len(frames) == 0:
        return None
    joints, mask = motion_to_model(motion, m, frames, keep_root=keep_root)
    return MocapClip(name, joints.astype(np.float32), mask, fps / step)


def load_mocap(path: str | os.PathLike, mapping: str | os.PathLike, stride_fps: float = 25.0,
               keep_root: bool = False) -> list[MocapClip]:
    """Load BVH clips as model-skeleton joint positions.

    Args:
        path: a ``.bvh`` file, a folder (searched recursively), a ``.zip``, or
            ``zip_path::member_prefix`` (e.g. ``shared/data/cmu_more.zip::bvh_aclstm/``).
        mapping: a shipped mapping name (``"bandai"``, ``"cmu"``, ``"cmu_aclstm"``,
            ``"cmu_przestr"``) or a path to a mapping ``.toml``.
        stride_fps: frames per second kept (every ``round(fps / stride_fps)``-th frame, at least 1).
        keep_root: keep each clip's pelvis trajectory (:func:`motion_to_model`).
    Returns:
        One :class:`MocapClip` per file that has frames left after ``skip_frames``, in name order
        (AMC files are read too, with the ``SS.asf`` beside ``SS_TT*.amc``; in a folder or zip,
        AMC files without their skeleton are skipped with a warning naming them):
        ``joints [F, 21, 3]`` float32, metres, world frame (Z up), pelvis at the origin.
    Raises:
        FileNotFoundError: no such path or mapping.
        BvhError: a malformed file (names the file and line).
        InputError: a mapping problem or a joint the file lacks (names joint and mapping file).
    """
    if not stride_fps > 0:
        raise InputError("stride_fps", f"must be positive, found {stride_fps!r}")
    mapping_ = load_mapping(mapping)
    clips = []
    sources = _iter_sources(str(path))
    no_skeleton = []
    for name, read, read_asf in sources:
        try:
            motion = _read_motion(name, read, read_asf, mapping_.fps)
        except _NoSkeleton:
            if len(sources) == 1:
                raise
            no_skeleton.append(name)
            continue
        clip = _to_clip(name, motion, mapping_.for_motion(motion), stride_fps, keep_root)
        if clip is not None:
            clips.append(clip)
    if no_skeleton:
        warnings.warn(
            f"{len(no_skeleton)} AMC file(s) skipped, no SS.asf skeleton beside them: {', '.join(no_skeleton)}",
            stacklevel=2,
        )
    return clips
