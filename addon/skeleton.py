# SPDX-License-Identifier: GPL-3.0-or-later
"""The model skeleton as the add-on sees it, and the roles (body segments) rig bones map to.

The joint names, parents and canonical bone lengths mirror ``backend/skeleton.py`` (the add-on
cannot import the backend; ``tests/test_addon_retarget.py`` checks they agree).
"""

from __future__ import annotations

from dataclasses import dataclass

# Mirror of backend/skeleton.py (the add-on cannot import the backend); tests check they agree.
JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "spine", "thorax", "neck", "head", "left_shoulder", "left_elbow", "left_wrist",
    "right_shoulder", "right_elbow", "right_wrist", "right_toe", "left_toe", "left_hand", "right_hand",
)
PARENTS: tuple[int, ...] = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15, 3, 6, 13, 16)
JOINT_INDEX = {n: i for i, n in enumerate(JOINT_NAMES)}
#: Canonical bone lengths of the model skeleton (joint to parent), metres.
BONE_LENGTHS: tuple[float, ...] = (
    0.0, 0.1329, 0.4429, 0.4542, 0.1329, 0.4429, 0.4542, 0.2335, 0.2571, 0.1211, 0.1150,
    0.1510, 0.2789, 0.2517, 0.1510, 0.2789, 0.2517, 0.1628, 0.1628, 0.11875, 0.11875,
)
#: Thigh + shin of the model skeleton, metres (the yardstick between model and rig scale).
MODEL_LEG_LENGTH = BONE_LENGTHS[JOINT_INDEX["left_knee"]] + BONE_LENGTHS[JOINT_INDEX["left_ankle"]]


@dataclass(frozen=True)
class Role:
    """A body segment that rig bones can be mapped to.

    Attributes:
        name: role id (``"upper_arm.L"``...), the key of a bone mapping.
        from_joint, to_joint: model joints; mapped bones point from the first to the second.
        twist: candidate twist references, each a (joint_a, joint_b) pair whose vector
            ``b - a`` fixes the rotation about the bone axis; the first one that is not
            (nearly) parallel to the bone in both rest and target pose is used.
        head_joint: model joint located at the head of the role's first bone (or None).
        tail_joint: model joint located at the tail of the role's last bone (or None).
    """

    name: str
    from_joint: str
    to_joint: str
    twist: tuple[tuple[str, str], ...] = ()
    head_joint: str | None = None
    tail_joint: str | None = None


_HIPS = (("right_hip", "left_hip"),)
_SHOULDERS = (("right_shoulder", "left_shoulder"),)


def _side_roles(s: str, side: str) -> list[Role]:
    j = lambda n: f"{side}_{n}"  # noqa: E731
    return [
        Role(f"shoulder.{s}", "thorax", j("shoulder")),
        Role(f"upper_arm.{s}", j("shoulder"), j("elbow"), ((j("elbow"), j("wrist")),), head_joint=j("shoulder")),
        Role(f"forearm.{s}", j("elbow"), j("wrist"), ((j("wrist"), j("hand")),), head_joint=j("elbow")),
        Role(f"hand.{s}", j("wrist"), j("hand"), (), head_joint=j("wrist"), tail_joint=j("hand")),
        Role(f"thigh.{s}", j("hip"), j("knee"), ((j("knee"), j("ankle")), (j("ankle"), j("toe"))), head_joint=j("hip")),
        Role(f"shin.{s}", j("knee"), j("ankle"), ((j("ankle"), j("toe")),), head_joint=j("knee")),
        Role(f"foot.{s}", j("ankle"), j("toe"), ((j("knee"), j("ankle")),), head_joint=j("ankle"), tail_joint=j("toe")),
    ]


#: All roles, parents before children. Keys of a bone mapping are these names.
ROLES: tuple[Role, ...] = tuple(
    [
        Role("hips", "pelvis", "spine", _HIPS, head_joint="pelvis"),
        Role("spine", "pelvis", "spine", _HIPS, tail_joint="spine"),
        Role("chest", "spine", "thorax", _SHOULDERS, tail_joint="thorax"),
        Role("neck", "thorax", "neck", _SHOULDERS, tail_joint="neck"),
        Role("head", "neck", "head", _SHOULDERS, tail_joint="head"),
    ]
    + _side_roles("L", "left")
    + _side_roles("R", "right")
)
ROLE_BY_NAME = {r.name: r for r in ROLES}

