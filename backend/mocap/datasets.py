"""Training and evaluation data for the pose prior.

* Human3.6M (``shared/data/h36m_joints32_25fps.npz``): 32-joint layout, metres, Z up, pelvis at
  the origin; the model joints are picked with :data:`backend.skeleton.H36M32_INDEX`. The file's
  left/right labels describe a mirrored body, so x is negated on load (see :func:`load_h36m`).
  Subjects S1 S5 S6 S7 S8 train; **S9 and S11 are held out** for evaluation and never enter
  training (:func:`load_h36m` refuses them unless ``allow_eval=True``).
* BVH mocap (Bandai-Namco, CMU, a user's own) through :mod:`backend.mocap.clips` with a joint-name
  mapping file, each clip with a per-joint mask of the joints its source actually has.

Every pose is normalised to the canonical skeleton (:func:`normalise_bone_lengths`: joint
directions kept, bones rescaled to :data:`backend.skeleton.BONE_LENGTHS`) so the prior learns
one skeleton; augmentation (:func:`augment`) is a random rotation about the vertical (Z) axis
and left/right mirroring.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backend.skeleton import BONE_LENGTHS, H36M32_INDEX, MIRROR, NUM_JOINTS, PARENTS

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
H36M_FILE = SHARED_DATA / "h36m_joints32_25fps.npz"
TRAIN_SUBJECTS = ("S1", "S5", "S6", "S7", "S8")
EVAL_SUBJECTS = ("S9", "S11")


@dataclass
class PoseSet:
    """Poses with a per-joint validity mask.

    Attributes:
        poses: ``[N, J, 3]`` float32, metres, world frame (Z up), pelvis at the origin.
        mask: ``[N, J]`` bool, False where the source has no such joint (its value is derived).
        source: ``[N]`` int, index into ``names`` of the clip's source set.
        names: source set names.
    """

    poses: np.ndarray
    mask: np.ndarray
    source: np.ndarray
    names: list[str]

    def __len__(self) -> int:
        return len(self.poses)

    @staticmethod
    def concat(sets: list["PoseSet"]) -> "PoseSet":
        names: list[str] = []
        srcs = []
        for s in sets:
            offset = len(names)
            names.extend(s.names)
            srcs.append(s.source + offset)
        return PoseSet(
            np.concatenate([s.poses for s in sets]).astype(np.float32),
            np.concatenate([s.mask for s in sets]),
            np.concatenate(srcs),
            names,
        )


def load_h36m(subjects=TRAIN_SUBJECTS, stride: int = 1, path: Path = H36M_FILE, allow_eval: bool = False) -> dict[str, np.ndarray]:
    """Human3.6M clips as model-joint arrays.

    Args:
        subjects: subject ids (``"S1"`` ...).
        stride: keep every ``stride``-th frame (the file is 25 fps).
        allow_eval: must be True to load S9/S11 (evaluation only).
    Returns:
        ``{"S1/walking_1": [F, J, 3]}`` float32, metres, Z up, pelvis at the origin.
    Raises:
        ValueError: if an evaluation subject is asked for without ``allow_eval``.
        FileNotFoundError: if the data file is missing.
    """
    held = [s for s in subjects if s in EVAL_SUBJECTS]
    if held and not allow_eval:
        raise ValueError(f"subjects {held} are held out for evaluation and never enter training")
    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: Human3.6M joint file not found (see shared/README.md)")
    out = {}
    with np.load(path) as f:
        for key in f.files:
            if key.split("/")[0] in subjects:
                arr = f[key][::stride][:, list(H36M32_INDEX)].astype(np.float64)
                # The joint file's left/right labels sit on a mirrored body (the right knee's hinge
                # axis points to the labelled left side); negating x restores real anatomy, so
                # the BVH sources and H3.6M agree (the labels are kept).
                arr[..., 0] *= -1
                out[key] = (arr - arr[:, :1]).astype(np.float32)
    return out


def h36m_poseset(subjects=TRAIN_SUBJECTS, stride: int = 2, allow_eval: bool = False) -> PoseSet:
    """Human3.6M as a :class:`PoseSet` (all joints valid), normalised to canonical bone lengths."""
    clips = load_h36m(subjects, stride=stride, allow_eval=allow_eval)
    poses = normalise_bone_lengths(np.concatenate(list(clips.values())))
    return PoseSet(poses, np.ones(poses.shape[:2], bool), np.zeros(len(poses), np.int64), ["h36m"])


def mocap_poseset(path: str, mapping: str, stride_fps: float = 12.5, name: str | None = None) -> PoseSet:
    """BVH (or other :mod:`backend.mocap.clips`) clips as a normalised :class:`PoseSet`.

    Args:
        path: a .bvh file, a folder, a .zip, or ``zip::member_prefix``.
        mapping: a mapping name (``backend/mappings/<name>.toml``) or a .toml path.
        stride_fps: frames per second kept from each clip.
    """
    from backend.mocap.clips import load_mocap

    clips = load_mocap(path, mapping, stride_fps=stride_fps)
    if not clips:
        raise ValueError(f"{path}: no clips loaded")
    poses = np.concatenate([c.joints for c in clips]).astype(np.float32)
    mask = np.concatenate([np.broadcast_to(c.mask, (len(c.joints), NUM_JOINTS)) for c in clips])
    poses = normalise_bone_lengths(poses - poses[:, :1])
    return PoseSet(poses, mask.copy(), np.zeros(len(poses), np.int64), [name or str(path)])


def normalise_bone_lengths(poses: np.ndarray, lengths: np.ndarray = BONE_LENGTHS) -> np.ndarray:
    """Rescale every bone to the canonical length, keeping its direction.

    Walks the hierarchy from the pelvis: ``x_j = x_parent + L_j * unit(p_j - p_parent)``.
    A zero-length bone keeps the canonical length along the parent bone's direction (or +Z).

    Args:
        poses: ``[N, J, 3]`` metres (any root placement).
        lengths: ``[J]`` canonical bone lengths, metres.
    Returns:
        ``[N, J, 3]`` float32, pelvis at the origin.
    """
    poses = np.asarray(poses, np.float64)
    out = np.zeros_like(poses)
    for j, p in enumerate(PARENTS):
        if p < 0:
            continue
        d = poses[:, j] - poses[:, p]
        n = np.linalg.norm(d, axis=-1, keepdims=True)
        fallback = np.array([0.0, 0.0, 1.0])
        d = np.where(n > 1e-8, d / np.maximum(n, 1e-12), fallback)
        out[:, j] = out[:, p] + lengths[j] * d
    return out.astype(np.float32)


def rotation_z(theta: np.ndarray) -> np.ndarray:
    """Rotations about the world Z (vertical) axis: ``[N]`` radians -> ``[N, 3, 3]``."""
    c, s = np.cos(theta), np.sin(theta)
    z, o = np.zeros_like(theta), np.ones_like(theta)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


def mirror(poses: np.ndarray, mask: np.ndarray | None = None):
    """Left/right mirror: negate world x and swap left and right joints.

    Args:
        poses: ``[N, J, 3]``; mask: optional ``[N, J]``.
    Returns:
        mirrored poses (and mask if given).
    """
    m = poses[:, list(MIRROR)] * np.array([-1.0, 1.0, 1.0], dtype=poses.dtype)
    if mask is None:
        return m
    return m, mask[:, list(MIRROR)]


def augment(poses: np.ndarray, mask: np.ndarray, rng: np.random.Generator):
    """Random yaw (uniform 0..2pi about Z) and mirroring (probability 0.5).

    Args:
        poses: ``[N, J, 3]`` metres, pelvis at the origin; mask: ``[N, J]`` bool.
    Returns:
        (poses, mask) augmented copies.
    """
    n = len(poses)
    flip = rng.random(n) < 0.5
    mp, mm = mirror(poses, mask)
    poses = np.where(flip[:, None, None], mp, poses)
    mask = np.where(flip[:, None], mm, mask)
    rot = rotation_z(rng.uniform(0, 2 * math.pi, n)).astype(poses.dtype)
    return np.einsum("nij,nkj->nki", rot, poses), mask


def remove_yaw(poses: np.ndarray) -> np.ndarray:
    """Rotate each pose about Z so that its hip line (left_hip - right_hip) points along +X.

    Used to compare poses regardless of facing (evaluation of the prior). ``[N, J, 3] -> [N, J, 3]``.
    """
    from backend.skeleton import JOINT_INDEX

    hip = poses[:, JOINT_INDEX["left_hip"]] - poses[:, JOINT_INDEX["right_hip"]]
    theta = -np.arctan2(hip[:, 1], hip[:, 0])
    return np.einsum("nij,nkj->nki", rotation_z(theta).astype(poses.dtype), poses)
