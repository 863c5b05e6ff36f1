"""Thumbnails and overlays show each hypothesis from the camera and from the side (issue 13)."""

from __future__ import annotations

import base64

import cv2
import numpy as np

from backend.skeleton import JOINT_INDEX, JOINT_NAMES, PARENTS, canonical_rest_pose
from backend.vision.overlay import draw_overlay, side_panel, skeleton_preview

ARM = [JOINT_INDEX[n] for n in ("right_elbow", "right_wrist", "right_hand")]


def _arm_pointing(sign: float) -> np.ndarray:
    """The T-pose with the right arm swung about the shoulder to point along world ``sign * Y``
    (-Y: toward the camera of the front view, +Y: away from it)."""
    pose = canonical_rest_pose().astype(np.float64)
    sh = pose[JOINT_INDEX["right_shoulder"]]
    for j in ARM:
        r = np.linalg.norm(pose[j] - sh)
        pose[j] = sh + np.array([0.0, sign * r, 0.0])
    return pose


def _lit(img: np.ndarray) -> np.ndarray:
    return img.max(-1) > 60


def test_thumbnail_side_panel_shows_what_the_front_view_hides():
    fwd, back = _arm_pointing(-1.0), _arm_pointing(+1.0)
    a, b = skeleton_preview(fwd, PARENTS, size=128), skeleton_preview(back, PARENTS, size=128)
    assert a.shape == (128, 128, 3)
    front_a, front_b, side_a, side_b = _lit(a[:, :64]), _lit(b[:, :64]), _lit(a[:, 64:]), _lit(b[:, 64:])
    # from the camera the two poses look (almost) alike: the arm points along the line of sight
    assert (front_a ^ front_b).mean() < 0.01
    # from the side they differ: the arm reaching toward the camera is drawn on the camera's side (left)
    assert (side_a ^ side_b).mean() > 0.02
    def arm_offset(side):  # blue (right-side bones) minus white (spine) mean column, upper body rows
        up = side[:56, 12:].astype(int)
        blue = (up[..., 2] > 200) & (up[..., 0] < 60)
        white = (up.min(-1) > 200)
        return np.argwhere(blue)[:, 1].mean() - np.argwhere(white)[:, 1].mean()

    assert arm_offset(a[:, 64:]) < -8 and arm_offset(b[:, 64:]) > 8
    # the side panel marks the camera with a yellow triangle at its left edge
    mark = a[:, 64:72]
    assert ((mark[..., 0] > 200) & (mark[..., 1] > 180) & (mark[..., 2] < 140)).any()


def test_overlay_gets_a_side_panel_of_the_hypotheses():
    rgb = np.full((240, 320, 3), 255, np.uint8)
    fwd, back = _arm_pointing(-1.0), _arm_pointing(+1.0)
    uv = np.tile([[160.0, 120.0]], (len(JOINT_NAMES), 1)) + fwd[:, [0, 2]] * np.array([60, -60])
    out = draw_overlay(rgb, {}, [uv, uv], JOINT_NAMES, PARENTS, side_poses=[fwd, back])
    assert out.shape == (240, 320 + 120, 3)
    panel = out[:, 320:]
    np.testing.assert_array_equal(panel, side_panel([fwd, back], 240, PARENTS))
    assert _lit(panel).mean() > 0.01
    # the best hypothesis in colour, the other in grey
    colour = (np.abs(panel.astype(int) - panel.mean(-1, keepdims=True)).max(-1) > 40) & _lit(panel)
    grey = (np.ptp(panel.astype(int), -1) < 10) & (panel.mean(-1) > 90) & (panel.mean(-1) < 170)
    assert colour.sum() > 50 and grey.sum() > 20


def test_estimate_thumbnails_carry_the_side_view(pose_service):
    from backend.camera import project
    from backend.evaluate import H36M_K
    from backend.http import schemas

    pose = _arm_pointing(-1.0)
    cam = pose @ np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]]).T + np.array([0, 0, 5.0])
    uv = project(cam, H36M_K)
    kps = {n: [float(uv[j, 0]), float(uv[j, 1]), 1.0] for j, n in enumerate(JOINT_NAMES[:17])}
    req = schemas.EstimateRequest(frames=[{"keypoints": kps, "camera": H36M_K.as_dict()}], num_hypotheses=2, seed=0,
                                  steps=8, previews=True)
    fr = pose_service.estimate(req).frames[0]
    for h in fr.hypotheses:
        png = base64.b64decode(h.preview_png)
        img = cv2.cvtColor(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        assert img.shape == (128, 128, 3)
        ref = skeleton_preview(np.array(h.world_joints), PARENTS)  # world_joints are rounded: a few pixels differ
        assert (np.abs(img.astype(int) - ref.astype(int)).max(-1) > 0).mean() < 0.01
        assert _lit(img[:, :62]).mean() > 0.02 and _lit(img[:, 66:]).mean() > 0.02  # a front and a side panel
