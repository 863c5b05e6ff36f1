"""One world for the shots of an edited clip: the person's motion continues across a cut.

At a cut (:mod:`backend.vision.shot_cuts`) the camera changes and the person does not. Each shot's
track is solved on its own (:func:`backend.prior.track.solve_track`: that shot's camera tilt, its
world with that camera at the origin, Z up, yaw as the camera looks); the world of every shot
after the first is then turned about the vertical and moved so that the person goes on as they
were (:func:`shot_alignment`): the facing of their hips and shoulders over the shot's first
:data:`HEADING_FRAMES` frames continues that over the last frames of the shot before, at the
rate it was turning; the pelvis continues from where it was at the velocity it had; the floors
coincide. The two cameras' relative pose (a turn about the vertical and a position) follows from
the body, as a matchmover lines up the shots of an edit by hand: the body is continuous across
the cut, the camera is not. Front/back of the body must be right on both sides of the cut (a
shot estimated facing away turns its camera by 180 degrees).

:func:`join_shots` puts the shots' tracks into the first shot's world and gives every frame's
camera in it, as the response reports a turning and travelling camera (``sequence.camera_motion``,
``sequence.camera_translation``), so the add-on keys the scene camera jumping at each cut.
"""

from __future__ import annotations

import math

import numpy as np

from backend.prior.track import Track
from backend.skeleton import JOINT_INDEX

#: Frames of each side of a cut whose facing and pelvis are matched.
HEADING_FRAMES = 3
#: Frames before a cut whose turning rate and velocity are carried across it.
RATE_FRAMES = 5

_LH, _RH = JOINT_INDEX["left_hip"], JOINT_INDEX["right_hip"]
_LS, _RS = JOINT_INDEX["left_shoulder"], JOINT_INDEX["right_shoulder"]


def rotation_z(yaw: float) -> np.ndarray:
    """``[3, 3]`` the turn by ``yaw`` radians about the world's vertical (Z)."""
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def body_heading(world: np.ndarray) -> np.ndarray:
    """``[T]`` the body's facing (radians about Z from +X) of poses ``[T, J, 3]`` (world frame, Z up):
    the horizontal normal of the hip and shoulder lines, forward = (left - right) x up."""
    side = (world[:, _LH] - world[:, _RH]) + (world[:, _LS] - world[:, _RS])
    return np.arctan2(-side[:, 0], side[:, 1])


def _circular_mean(a: np.ndarray) -> float:
    return float(math.atan2(np.sin(a).mean(), np.cos(a).mean()))


def shot_alignment(before: np.ndarray, after: np.ndarray, fps: float) -> tuple[float, np.ndarray]:
    """The turn and shift that continue a person across a cut (see the module docstring).

    Args:
        before: ``[Tb, J, 3]`` the shot before the cut, absolute joints in the clip's world (Z up, metres).
        after: ``[Ta, J, 3]`` the shot after it, absolute joints in its own world.
        fps: frames per second (the velocity is carried over one frame).
    Returns:
        (yaw radians, offset ``[3]`` metres): ``x_clip = rotation_z(yaw) x_own + offset`` for the
        shot after the cut; the offset's Z puts the lowest foot of both shots' ends on one floor.
    Raises:
        ValueError: a shot without frames.
    """
    if not len(before) or not len(after):
        raise ValueError("both shots of a cut need frames")
    n = min(HEADING_FRAMES, len(before), len(after))
    hb = np.unwrap(body_heading(before[-RATE_FRAMES:]))
    rate = float(np.diff(hb).mean()) if len(hb) > 1 else 0.0  # radians per frame
    expected = hb[-1] + rate * np.arange(1, n + 1)
    yaw = _circular_mean(expected - body_heading(after[:n]))
    Rz = rotation_z(yaw)
    pb = before[-RATE_FRAMES:, 0]
    velocity = (pb[-1] - pb[0]) / max(len(pb) - 1, 1) if len(pb) > 1 else np.zeros(3)
    target = before[-1, 0] + velocity
    offset = target - Rz @ after[0, 0]
    feet = (JOINT_INDEX["left_ankle"], JOINT_INDEX["right_ankle"], JOINT_INDEX["left_toe"], JOINT_INDEX["right_toe"])
    fb = float(before[-n:][:, feet, 2].min())
    fa = float(after[:n][:, feet, 2].min())
    offset[2] = fb - fa
    return yaw, offset


def join_shots(tracks: list[Track], rotations: list[np.ndarray], motions: list[np.ndarray | None],
               fps: float) -> tuple[Track, np.ndarray, np.ndarray]:
    """The shots' tracks as one, in the first shot's world.

    Args:
        tracks: per shot, its :class:`backend.prior.track.Track` (its own world: its camera at
            the origin at its first frame).
        rotations: per shot, the world->camera rotation ``[3, 3]`` of its first frame (its tilt).
        motions: per shot, ``[T_s, 3, 3]`` its camera's turn from its first frame, or None.
        fps: frames per second.
    Returns:
        (the joined track: camera-frame ``joints`` / ``root`` each frame's own camera's, ``world`` /
        ``world_root`` / ``floor`` the first shot's world; ``motion [T, 3, 3]`` every frame's camera
        turn from the first frame's (``x_t = M_t x_0``); ``centres [T, 3]`` every frame's camera
        centre in the first frame's camera frame, metres).
    """
    R0 = rotations[0]
    parts: dict[str, list] = {k: [] for k in ("joints", "root", "world", "world_root", "choice", "contacts")}
    motion, centres, warnings = [], [], {}
    prev_abs = None
    start = 0
    for tr, R, M in zip(tracks, rotations, motions):
        T = len(tr.joints)
        own_abs = tr.world + tr.world_root[:, None]
        yaw, offset = (0.0, np.zeros(3)) if prev_abs is None else shot_alignment(prev_abs, own_abs, fps)
        Rz = rotation_z(yaw)
        world_root = tr.world_root @ Rz.T + offset
        parts["joints"].append(tr.joints)
        parts["root"].append(tr.root)
        parts["world"].append(tr.world @ Rz.T)
        parts["world_root"].append(world_root)
        parts["choice"].append(tr.choice)
        parts["contacts"].append(tr.contacts)
        travel = tr.camera if tr.camera is not None else np.zeros((T, 3))
        Ms = M if M is not None else np.tile(np.eye(3), (T, 1, 1))
        motion.append(np.einsum("tij,jk->tik", Ms, R @ Rz.T @ R0.T))  # own turn, then the shot's camera
        centres.append((travel @ Rz.T + offset) @ R0.T)
        warnings.update({start + t: w for t, w in tr.warnings.items()})
        prev_abs = tr.world @ Rz.T + world_root[:, None]
        start += T
    joined = Track(**{k: np.concatenate(v) for k, v in parts.items()}, warnings=warnings, floor=tracks[0].floor,
                   camera=None)
    return joined, np.concatenate(motion), np.concatenate(centres)
