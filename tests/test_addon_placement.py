# SPDX-License-Identifier: GPL-3.0-or-later
"""Pure placement math (addon/placement.py, no Blender): limb IK for pinned joints, root reach,
the photo camera fitted to keypoints, Blender camera settings, agreement with the backend."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from addon_helpers import load_poses

from addon import camera_math
from addon import linalg as la
from addon import placement as pl


def test_two_bone_ik_reaches_and_keeps_lengths():
    rng = random.Random(0)
    for _ in range(200):
        base = [rng.uniform(-1, 1) for _ in range(3)]
        l1, l2 = rng.uniform(0.2, 0.5), rng.uniform(0.2, 0.5)
        d = la.normalized([rng.gauss(0, 1) for _ in range(3)])
        goal = la.add(base, la.scale(d, rng.uniform(abs(l1 - l2) + 0.01, l1 + l2 - 0.01)))
        pole = [rng.uniform(-1, 1) for _ in range(3)]
        mid = pl.two_bone_ik(base, goal, l1, l2, pole)
        assert la.norm(la.sub(mid, base)) == pytest.approx(l1, abs=1e-9)
        assert la.norm(la.sub(goal, mid)) == pytest.approx(l2, abs=1e-9)
    # out of reach: straight toward the goal
    mid = pl.two_bone_ik([0, 0, 0], [0, 0, 2], 0.5, 0.5, [1, 0, 0])
    assert mid == pytest.approx([0, 0, 0.5], abs=1e-4)


def _chain_positions(targets, posed_base, lengths, chain):
    """Rig joints when the rig's segments (``lengths``) follow the target directions."""
    out = {chain[0]: posed_base}
    for i in range(1, len(chain)):
        d = la.normalized(la.sub(targets[chain[i]], targets[chain[i - 1]]))
        out[chain[i]] = la.add(out[chain[i - 1]], la.scale(d, lengths[i - 1]))
    return out


def test_pin_targets_make_a_rig_with_other_proportions_reach_the_pins():
    pose = load_poses()["S9/walking_1@100"]
    goal_pose = list(load_poses().values())[2]
    chain = pl.LIMB_CHAINS[0]  # left leg
    # the rig: 10 % longer thigh, 5 % shorter shin than the pose
    lengths = [la.norm(la.sub(pose[chain[i + 1]], pose[chain[i]])) * f for i, f in zip(range(3), (1.1, 0.95, 1.0))]
    posed = _chain_positions(pose, pose[chain[0]], lengths, chain)
    goals = {"left_ankle": la.add(pose[chain[0]], la.scale(la.sub(goal_pose["left_ankle"], goal_pose["left_hip"]), 0.95))}
    new = pl.pin_targets(pose, posed, goals)
    got = _chain_positions(new, pose[chain[0]], lengths, chain)
    assert la.norm(la.sub(got["left_ankle"], goals["left_ankle"])) < 1e-6
    # untouched chains keep their targets
    assert new["right_knee"] == pose["right_knee"] and new["left_wrist"] == pose["left_wrist"]


def test_reach_shift_pulls_the_root_toward_far_pins():
    posed = {"left_hip": [0.1, 0, 1.0], "left_knee": [0.1, 0, 0.55], "left_ankle": [0.1, 0, 0.1]}
    goals = {"left_ankle": [0.1, 0, -0.2]}  # 0.3 m lower than the straight leg reaches
    d = pl.reach_shift(posed, goals, slack=1.0)
    assert d == pytest.approx([0, 0, -0.3], abs=1e-6)
    assert pl.reach_shift(posed, {"left_ankle": [0.1, 0.1, 0.3]}) == [0.0, 0.0, 0.0]


def test_photo_camera_is_recovered_from_keypoints_and_matches_blender_intrinsics():
    K = {"fx": 900.0, "fy": 900.0, "cx": 310.0, "cy": 420.0, "width": 600, "height": 800}
    R = pl.tilt_rotation(math.radians(17), math.radians(-4))
    centre = [0.4, -4.2, 1.6]
    pose = load_poses()["S9/walking_1@100"]
    pts = [la.add(p, [0, 0, 1.0]) for p in pose.values()]
    px = [pl.project(R, centre, K, p) for p in pts]
    got = pl.solve_camera_position(R, pts, px, K)
    assert got == pytest.approx(centre, abs=1e-6)
    bc = pl.blender_camera(R, got, K)
    # the Blender camera's intrinsics and rotation, as camera_math reads them back, are the same
    k2 = camera_math.intrinsics(bc["lens"], bc["sensor_width"], 24.0, bc["sensor_fit"], K["width"], K["height"],
                                bc["shift_x"], bc["shift_y"])
    assert [k2[k] for k in ("fx", "cx", "cy")] == pytest.approx([K[k] for k in ("fx", "cx", "cy")])
    assert np.allclose(camera_math.world_to_opencv_rotation(bc["matrix_world"]), R, atol=1e-9)


def test_tilt_rotation_matches_the_backend():
    camera = pytest.importorskip("backend.camera")
    for pitch, roll in ((0.0, 0.0), (0.3, -0.05), (-0.2, 0.1)):
        assert np.allclose(pl.tilt_rotation(pitch, roll), camera.tilt_rotation(pitch, roll), atol=1e-12)


def test_ground_shift_and_unscale():
    assert pl.ground_shift([0.3, 0.25, 0.4], 0.02) == pytest.approx(-0.23)
    assert pl.ground_shift([], 0.0) == 0.0
    c = [1.0, 2.0, 0.9]
    p = la.add(c, la.scale([0.1, -0.2, 0.3], 1.3))
    assert pl.unscale_about(p, c, 1.3) == pytest.approx(la.add(c, [0.1, -0.2, 0.3]))


def test_a_photo_fitted_inside_a_render_of_another_shape_projects_where_it_is_shown():
    """``photo_in_render``: a 1000x640 landscape photo shown whole in a 384x640 portrait render
    (scaled by 0.384, centred, bars above and below): a point's render pixel is its photo pixel
    moved as the picture is; the same size gives the photo's own intrinsics."""
    K = {"fx": 900.0, "fy": 900.0, "cx": 480.0, "cy": 330.0, "width": 1000, "height": 640}
    R = pl.tilt_rotation(math.radians(10.0))
    p = [0.3, 4.0, 0.9]
    u, v = pl.project(R, [0.0, 0.0, 1.2], K, p)
    Kr = pl.photo_in_render(K, 384, 640)
    ur, vr = pl.project(R, [0.0, 0.0, 1.2], Kr, p)
    s = 384 / 1000
    assert (ur, vr) == pytest.approx((192 + s * (u - 500), 320 + s * (v - 320)))
    assert (Kr["width"], Kr["height"]) == (384, 640)
    assert pl.photo_in_render(K, 1000, 640) == pytest.approx(K)
    # Blender's camera of the fitted photo renders the point there too (camera_math is the inverse)
    bc = pl.blender_camera(R, [0.0, 0.0, 1.2], Kr)
    back = camera_math.intrinsics(bc["lens"], bc["sensor_width"], 24.0, bc["sensor_fit"], 384, 640, bc["shift_x"], bc["shift_y"])
    assert [back[k] for k in ("fx", "fy", "cx", "cy")] == pytest.approx([Kr[k] for k in ("fx", "fy", "cx", "cy")])
