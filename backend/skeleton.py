"""The model skeleton: joint names, parents, left/right pairs and canonical bone lengths.

The 17 joints of the Human3.6M evaluation set (names fixed by ``shared/design/CONTRACT.md``)
plus toes and hand ends, which retargeting needs to orient feet and hands. Joint order is
the order of every ``[..., J, 3]`` array in the backend and of ``joint_names`` in responses.

Canonical bone lengths are those of the Human3.6M canonical skeleton (all subjects share
them in the exponential-map release), in metres; the two hand-end bones, which differ
left/right in H3.6M, are set to their mean so that mirroring keeps the skeleton.
"""

from __future__ import annotations

import numpy as np

#: Joint names in model order. The first 17 are the contract's Human3.6M joints.
JOINT_NAMES: tuple[str, ...] = (
    "pelvis",
    "right_hip",
    "right_knee",
    "right_ankle",
    "left_hip",
    "left_knee",
    "left_ankle",
    "spine",
    "thorax",
    "neck",
    "head",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "right_toe",
    "left_toe",
    "left_hand",
    "right_hand",
)
NUM_JOINTS = len(JOINT_NAMES)
JOINT_INDEX: dict[str, int] = {n: i for i, n in enumerate(JOINT_NAMES)}

#: Parent index of each joint (-1 for the root, the pelvis).
PARENTS: tuple[int, ...] = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15, 3, 6, 13, 16)

#: Index of each model joint in the 32-joint Human3.6M layout of ``shared/data``.
H36M32_INDEX: tuple[int, ...] = (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27, 4, 9, 22, 30)

#: The 17 Human3.6M evaluation joints (indices into JOINT_NAMES): MPJPE is reported on these.
H36M17: tuple[int, ...] = tuple(range(17))

#: The 12 limb joints a 2D detector sees reliably (hips, knees, ankles, shoulders, elbows, wrists).
LIMB_JOINTS: tuple[int, ...] = tuple(
    JOINT_INDEX[n]
    for n in (
        "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
        "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    )
)

#: Bone length of each joint to its parent in metres (0 for the root).
BONE_LENGTHS: np.ndarray = np.array(
    [
        0.0,
        0.1329, 0.4429, 0.4542,  # right hip, thigh, shin
        0.1329, 0.4429, 0.4542,  # left
        0.2335, 0.2571, 0.1211, 0.1150,  # spine, thorax, neck, head top
        0.1510, 0.2789, 0.2517,  # left collar, upper arm, forearm
        0.1510, 0.2789, 0.2517,  # right
        0.1628, 0.1628,  # toes
        0.11875, 0.11875,  # hand ends (mean of H3.6M's 0.1 / 0.1375)
    ],
    dtype=np.float32,
)


def _mirror_map() -> tuple[int, ...]:
    out = []
    for name in JOINT_NAMES:
        if name.startswith("left_"):
            out.append(JOINT_INDEX["right_" + name[5:]])
        elif name.startswith("right_"):
            out.append(JOINT_INDEX["left_" + name[6:]])
        else:
            out.append(JOINT_INDEX[name])
    return tuple(out)


#: ``MIRROR[j]`` is the joint that ``j`` becomes under a left/right mirror.
MIRROR: tuple[int, ...] = _mirror_map()

#: (child, parent) pairs, one per bone, in joint order.
BONES: tuple[tuple[int, int], ...] = tuple((j, p) for j, p in enumerate(PARENTS) if p >= 0)


def joint_index(name: str) -> int:
    """Index of a joint name.

    Raises:
        KeyError: with the list of valid names, if ``name`` is not a model joint.
    """
    try:
        return JOINT_INDEX[name]
    except KeyError:
        raise KeyError(f"unknown joint name {name!r}; valid names: {', '.join(JOINT_NAMES)}") from None


def bone_lengths(pose: np.ndarray) -> np.ndarray:
    """Bone lengths of poses.

    Args:
        pose: ``[..., J, 3]`` joint positions (metres).
    Returns:
        ``[..., J]`` length of each joint's bone to its parent (0 for the root), metres.
    """
    pose = np.asarray(pose)
    par = np.array([max(p, 0) for p in PARENTS])
    return np.linalg.norm(pose - pose[..., par, :], axis=-1)


def anchor_directions(known: np.ndarray, known_w: np.ndarray, dirs: np.ndarray,
                      dirs_w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Known bone directions turned into known joint positions of the canonical skeleton wherever
    they hang from a known position.

    A rig of other proportions sends the directions of its known bones (parent -> joint) and the
    positions of the known chains' roots (``addon/retarget.py`` ``chain_root_positions``;
    ``backend.eval_complete.complete_request`` builds the same request). On the model's skeleton a
    direction whose parent joint is placed fixes the joint itself: ``X_j = X_parent + L_j d_j``
    (``L_j`` = :data:`BONE_LENGTHS`), walked root-outward so a chain of known bones becomes a chain
    of known positions. The completion then has the same evidence as from positions (each known
    bone keeps its direction exactly); directions whose chain has no placed joint stay directions.

    Args:
        known: ``[J, 3]`` positions (metres; rows with ``known_w`` 0 ignored); known_w: ``[J]`` 0/1.
        dirs: ``[J, 3]`` directions (any length > 0; rows with ``dirs_w`` 0 ignored); dirs_w: ``[J]`` 0/1.
    Returns:
        (known ``[J, 3]``, known_w ``[J]``, dirs ``[J, 3]``, dirs_w ``[J]``): the given positions and
        the derived ones, and the directions that could not be placed.
    """
    known, known_w = np.array(known, np.float64), np.array(known_w, np.float64)
    dirs, dirs_w = np.array(dirs, np.float64), np.array(dirs_w, np.float64)
    for j, p in enumerate(PARENTS):  # parents come before their children
        if p < 0 or dirs_w[j] <= 0 or known_w[j] > 0 or known_w[p] <= 0:
            continue
        n = np.linalg.norm(dirs[j])
        if not n > 1e-9:
            continue
        known[j] = known[p] + BONE_LENGTHS[j] * dirs[j] / n
        known_w[j] = 1.0
        dirs_w[j] = 0.0
        dirs[j] = 0.0
    return known, known_w, dirs, dirs_w


def canonical_rest_pose() -> np.ndarray:
    """A T-pose of the canonical skeleton in the world frame (Z up, facing -Y), pelvis at origin.

    Returns:
        ``[J, 3]`` metres. Used as a neutral pose and by tests.
    """
    d = {
        "right_hip": (-1, 0, 0), "right_knee": (0, 0, -1), "right_ankle": (0, 0, -1),
        "left_hip": (1, 0, 0), "left_knee": (0, 0, -1), "left_ankle": (0, 0, -1),
        "spine": (0, 0, 1), "thorax": (0, 0, 1), "neck": (0, 0, 1), "head": (0, 0, 1),
        "left_shoulder": (1, 0, 0), "left_elbow": (1, 0, 0), "left_wrist": (1, 0, 0),
        "right_shoulder": (-1, 0, 0), "right_elbow": (-1, 0, 0), "right_wrist": (-1, 0, 0),
        "right_toe": (0, -1, 0), "left_toe": (0, -1, 0), "left_hand": (1, 0, 0), "right_hand": (-1, 0, 0),
    }
    pose = np.zeros((NUM_JOINTS, 3), np.float32)
    for j, p in enumerate(PARENTS):
        if p >= 0:
            pose[j] = pose[p] + BONE_LENGTHS[j] * np.asarray(d[JOINT_NAMES[j]], np.float32)
    return pose


def describe() -> list[dict]:
    """The skeleton as JSON-ready rows: name, index, parent name, mirror name, bone length (m)."""
    return [
        {
            "index": j,
            "name": JOINT_NAMES[j],
            "parent": JOINT_NAMES[p] if p >= 0 else None,
            "mirror": JOINT_NAMES[MIRROR[j]],
            "bone_length_m": float(BONE_LENGTHS[j]),
        }
        for j, p in enumerate(PARENTS)
    ]
