"""A camera that turns during a clip (a handheld phone): its turn estimated from the frames'
background (``backend/vision/camera_motion.py``), and undone by the track (``solve_track(motion=)``)
so that a person standing still stays still in the world. Real OpenCV on synthetic footage: a
textured scene (and the sample photo's person in it) filmed by a camera turning about its centre."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic_clips import HANDHELD_H as H
from synthetic_clips import HANDHELD_K as K
from synthetic_clips import HANDHELD_W as W
from synthetic_clips import filmed, scene, write_video

from backend.eval_sequence import handheld_motion, root_wander
from backend.prior.track import solve_track
from backend.vision.camera_motion import CameraMotion, kabsch_rotation, turn_deg


def test_kabsch_recovers_a_rotation_of_rays():
    rng = np.random.default_rng(1)
    Q = handheld_motion(12, 8.0, rng)[-1]
    a = rng.normal(size=(50, 3))
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    np.testing.assert_allclose(kabsch_rotation(a, a @ Q.T), Q, atol=1e-12)


def test_the_turn_of_a_handheld_camera_is_recovered_from_the_background():
    truth = handheld_motion(15, 3.0, np.random.default_rng(2))
    assert max(turn_deg(m) for m in truth) > 2.0
    est = CameraMotion()
    for f in filmed(scene(), truth):
        f[150:400, 280:360] = 255  # a person-sized patch that moves with the camera: left out
        est.push(f, K, [280, 150, 360, 400])
    got = est.result()
    assert got is not None and got.shape == (15, 3, 3) and est.unsure == 0
    assert max(turn_deg(g @ m.T) for g, m in zip(got, truth)) < 0.05  # degrees
    # a camera on a tripod is a fixed camera; a plain wall gives no points: not turning, and said
    still = CameraMotion()
    for f in filmed(scene(), np.tile(np.eye(3), (5, 1, 1))):
        still.push(f, K)
    assert still.result() is None and still.unsure == 0
    plain = CameraMotion()
    for _ in range(3):
        plain.push(np.full((H, W, 3), 200, np.uint8), K)
    assert plain.result() is None and plain.unsure == 2
    # a cut to another scene (an edited clip) is no turn either
    cut = CameraMotion()
    cut.push(filmed(scene(), truth[:1])[0], K)
    cut.push(np.ascontiguousarray(filmed(scene(), truth[:1])[0][::-1, ::-1]), K)
    assert cut.unsure == 1 and turn_deg(cut.motion[-1]) == 0.0


def _still_person_hypotheses(motion: np.ndarray, rng):
    """Per-frame hypotheses of one still person (a fixed pose 4 m in front of the first camera) as each
    frame's turned camera sees it, with noise: (joints, scores, roots), camera frames."""
    from backend.skeleton import canonical_rest_pose

    pose = canonical_rest_pose() @ np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]]).T  # Z-up rest -> camera (y down)
    pose = pose - pose[:1]
    root0 = np.array([0.2, 0.1, 4.0])
    joints, scores, roots = [], [], []
    for m in motion:
        joints.append((pose @ m.T)[None] + rng.normal(0, 0.01, (3, *pose.shape)))
        roots.append((root0 @ m.T)[None] + rng.normal(0, 0.01, (3, 3)))
        scores.append(np.zeros(3))
    return joints, scores, roots


def test_the_track_undoes_the_turn_so_a_still_person_stays_still():
    motion = handheld_motion(40, 3.0, np.random.default_rng(3))
    joints, scores, roots = _still_person_hypotheses(motion, np.random.default_rng(4))
    undone = solve_track(joints, scores, roots, 25.0, motion=motion)
    taken_fixed = solve_track(joints, scores, roots, 25.0)
    wander = root_wander(undone.world_root * 1000), root_wander(taken_fixed.world_root * 1000)
    assert wander[0] < 1.0 < 5.0 < wander[1], wander  # cm: still vs swaying with the camera
    # the track's joints and root are in each frame's own camera, as the per-frame hypotheses
    mean_h = np.stack([j.mean(0) for j in joints])
    assert np.linalg.norm(undone.joints - mean_h, axis=-1).mean() < 0.02
    np.testing.assert_allclose(undone.root[5], (np.array([0.2, 0.1, 4.0]) @ motion[5].T), atol=0.05)
    with pytest.raises(ValueError, match="motion must be"):
        solve_track(joints, scores, roots, 25.0, motion=motion[:3])


@pytest.fixture(scope="module")
def service():
    from backend.service import PoseService

    return PoseService()


def test_a_video_from_a_turning_camera_is_estimated_with_its_turn_and_a_steadier_root(service, tmp_path):
    """The sample photo's person standing in a textured scene, filmed by a handheld camera: the
    response reports the camera's turn (within 0.2 degrees) and the track's world root sways less
    than when the camera is taken as fixed; a request can turn the estimate off."""
    from backend.http import schemas

    truth = handheld_motion(10, 4.0, np.random.default_rng(5))
    clip = tmp_path / "handheld.mp4"
    write_video(clip, filmed(scene(person=True), truth), 10.0)
    opts = {"num_hypotheses": 4, "steps": 8, "seed": 0}
    res = service.estimate(schemas.EstimateRequest.model_validate({"video": {"path": str(clip)}, **opts}))
    got = np.array(res.sequence.camera_motion)
    assert got.shape == (10, 3, 3) and max(turn_deg(g @ m.T) for g, m in zip(got, truth)) < 0.2
    fixed = service.estimate(schemas.EstimateRequest.model_validate(
        {"video": {"path": str(clip)}, "sequence": {"estimate_camera_motion": False}, **opts}))  # the video's own fps
    assert fixed.sequence.camera_motion is None
    wander = [root_wander(np.array([fr.track.world_root for fr in r.frames]) * 1000) for r in (res, fixed)]
    assert wander[0] < 0.5 * wander[1], wander
    # a per-frame override re-solves the track with the same turn (sent back as the response gave it)
    req = schemas.TrackRequest.model_validate({"frames": [fr.model_dump() for fr in res.frames],
                                               "sequence": {"fps": 10, "fixed": {"3": 1},
                                                            "camera_motion": res.sequence.camera_motion}})
    again = service.track(req)
    assert again.sequence.camera_motion == res.sequence.camera_motion and again.frames[3].track.hypothesis == 1
    # a travelling camera (moving_camera): its background's parallax would read as a turn, so the turn is
    # estimated only when asked for explicitly
    moving = service.estimate(schemas.EstimateRequest.model_validate(
        {"video": {"path": str(clip)}, "sequence": {"moving_camera": True}, **opts}))
    assert moving.sequence.camera_motion is None and moving.sequence.camera_translation is not None
    asked = service.estimate(schemas.EstimateRequest.model_validate(
        {"video": {"path": str(clip)}, "sequence": {"moving_camera": True, "estimate_camera_motion": True}, **opts}))
    assert asked.sequence.camera_motion == res.sequence.camera_motion


def test_a_camera_motion_of_the_wrong_length_or_not_a_rotation_is_refused_naming_the_field(service):
    from pydantic import ValidationError

    from backend.errors import InputError
    from backend.eval_sequence import clip_request, make_clips
    from backend.http import schemas

    poses = make_clips(("S1",), 1, 4, seed=0)[0][1]
    req, _, _, M = clip_request(poses, np.random.default_rng(0), num=2, shake_deg=2.0)
    assert len(req["sequence"]["camera_motion"]) == 4
    req["sequence"]["camera_motion"] = M[:3].tolist()
    with pytest.raises(InputError) as e:
        service.estimate(schemas.EstimateRequest.model_validate({**req, "steps": 4}))
    assert e.value.field == "sequence.camera_motion" and "3 rotations for the sequence's 4 frames" in e.value.message
    # orientations in another reference are taken relative to the first: the same track
    turned = handheld_motion(2, 20.0, np.random.default_rng(9))[-1]
    base = service.estimate(schemas.EstimateRequest.model_validate({**req, "sequence": {"fps": 25, "camera_motion": M.tolist()},
                                                                    "steps": 4}))
    other = service.estimate(schemas.EstimateRequest.model_validate(
        {**req, "sequence": {"fps": 25, "camera_motion": (M @ turned).tolist()}, "steps": 4}))
    np.testing.assert_allclose([f.track.joints for f in other.frames], [f.track.joints for f in base.frames], atol=1e-4)
    req["sequence"]["camera_motion"] = [np.diag([1.0, 1.0, -1.0]).tolist()] * 4
    with pytest.raises(ValidationError, match="frame 0: not a rotation matrix"):
        schemas.EstimateRequest.model_validate(req)


def test_a_known_first_camera_is_turned_with_the_motion_for_every_frame(service):
    """With the first frame's world->camera rotation known ("Use my camera") and the camera's turn given,
    each frame is estimated with its own turned camera: the hypotheses' pitch and roll are the truth's."""
    import math

    from backend.eval_sequence import clip_request, make_clips
    from backend.http import schemas
    from backend.prior.geometry import pitch_roll_of

    poses = make_clips(("S1",), 1, 6, seed=1)[0][1]
    req, _, R, M = clip_request(poses, np.random.default_rng(0), num=2, shake_deg=4.0, known_rotation=True)
    res = service.estimate(schemas.EstimateRequest.model_validate({**req, "steps": 4}))
    for fr, m in zip(res.frames, M):
        want = np.degrees(pitch_roll_of(m @ R))
        got = [fr.hypotheses[0].camera_pitch_deg, fr.hypotheses[0].camera_roll_deg]
        assert np.allclose(got, want, atol=0.05), (got, want)
    assert max(math.degrees(abs(a - b)) for a, b in zip(pitch_roll_of(M[-1] @ R), pitch_roll_of(R))) > 0.5


def test_a_still_camera_filming_two_moving_people_has_no_turn(service, tmp_path):
    """On a plain background the only corners are the people's: every person seen is left out of the
    background, and points bunched in one place are no turn (a second person walking closer, or two
    crossing, made a still camera turn by 6.6 / 22 degrees)."""
    from synthetic_clips import crossing_frames, two_people_frames

    from backend.http import schemas

    for name, frames in (("two", two_people_frames(10)), ("cross", crossing_frames(12)[0])):
        clip = tmp_path / f"{name}.mp4"
        write_video(clip, frames, 10.0)
        res = service.estimate(schemas.EstimateRequest.model_validate({"video": {"path": str(clip)}, "num_hypotheses": 2,
                                                                       "steps": 4}))
        assert res.sequence.camera_motion is None, name


def test_a_zoom_is_recovered_with_the_turn_and_keeps_a_still_persons_depth(service, tmp_path):
    """The sample photo's person standing in a textured scene, filmed by a handheld camera (2 degrees)
    that zooms in 1.3x over 12 frames: the zoom is recovered with the turn from the frames (within
    0.5 %, the turn within 0.05 degrees; after a cut it starts again from the clip's focal length), and through an MP4 the response reports it, gives each frame
    its own focal length and keeps the person's depth (within 5 %; taken as a fixed lens, the person
    comes 1.3x closer)."""
    from backend.http import schemas

    truth = handheld_motion(12, 2.0, np.random.default_rng(5))
    zoom = np.linspace(1.0, 1.3, 12)
    frames = filmed(scene(person=True, height=220), truth, zoom)  # room to see the background as it zooms in
    est = CameraMotion()
    for f in frames:
        est.push(f, K)
    assert np.abs(est.zoom_result() / zoom - 1).max() < 0.005
    assert max(turn_deg(g @ m.T) for g, m in zip(est.result(), truth)) < 0.05
    fixed_lens = CameraMotion()
    for f in filmed(scene(person=True, height=220), truth):
        fixed_lens.push(f, K)
    assert fixed_lens.zoom_result() is None
    # after a cut the next camera's focal length is the clip's own again, not the zoomed one
    est.new_shot()
    for f in frames[:3]:
        est.push(f, K)
    assert np.allclose(est.zoom[12:], zoom[:3], atol=0.005), est.zoom[12:]
    clip = tmp_path / "zoom.mp4"
    write_video(clip, frames, 10.0)
    opts = {"num_hypotheses": 4, "steps": 8, "seed": 0}
    depth = {}
    for name, seq in (("zoom", {}), ("fixed", {"estimate_camera_motion": False})):
        res = service.estimate(schemas.EstimateRequest.model_validate({"video": {"path": str(clip)}, "sequence": seq, **opts}))
        z = np.array([fr.track.root_translation[2] for fr in res.frames])
        depth[name] = z[-3:].mean() / z[:3].mean()
        if name == "zoom":
            assert abs(res.sequence.camera_zoom[-1] - 1.3) < 0.02
            assert res.frames[-1].camera["fx"] == pytest.approx(res.frames[0].camera["fx"] * res.sequence.camera_zoom[-1], rel=1e-4)
        else:
            assert res.sequence.camera_zoom is None
    assert abs(depth["zoom"] - 1) < 0.05 and depth["fixed"] < 0.85, depth


def test_a_zoom_given_per_frame_keeps_a_keypoint_clips_depth_and_a_wrong_length_is_refused_first(service):
    """A held-out clip's 2D through a lens zooming 1.5x (4 px noise): with ``sequence.camera_zoom`` given,
    the track's pelvis keeps its depth (within 8 %; the clip's pelvis stays in one place); taken as a fixed
    lens it comes 1.5x closer. A zoom of the wrong length is refused naming the field, before any work."""
    from backend.errors import InputError
    from backend.eval_sequence import clip_request, make_clips
    from backend.http import schemas

    (_, poses), = make_clips(["S9", "S11"], 1, 24, seed=1)
    depth = {}
    for given in (True, False):
        req, _, _, _ = clip_request(poses, np.random.default_rng(4), num=8, seed=0, zoom=1.5, motion_given=given)
        req["steps"] = 20
        res = service.estimate(schemas.EstimateRequest.model_validate(req))
        z = np.array([fr.track.root_translation[2] for fr in res.frames])
        depth[given] = z[-3:].mean() / z[:3].mean()
        assert (res.sequence.camera_zoom is not None) == given
    assert abs(depth[True] - 1) < 0.08 and depth[False] < 0.75, depth
    req["sequence"]["camera_zoom"] = [1.0] * 23
    with pytest.raises(InputError, match="23 focal lengths for the sequence's 24 frames") as e:
        service.estimate(schemas.EstimateRequest.model_validate(req))
    assert e.value.field == "sequence.camera_zoom"
