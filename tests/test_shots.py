"""Edited clips: shot cuts found in the frames, each shot tracked with its own camera, and the
person's motion continuous across the cut (backend.vision.shot_cuts, backend.prior.shots)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from synthetic_clips import filmed, moving_person_frames, scene, seen_by_another_camera, two_people_frames, write_video

from backend.vision.camera_motion import turn_deg
from backend.vision.shot_cuts import ShotCuts


@pytest.fixture(scope="module")
def service():
    from backend.service import PoseService

    return PoseService()


def _cuts(frames) -> list[int]:
    d = ShotCuts()
    small = [ShotCuts.small(f) for f in frames]
    for i, f in enumerate(small):
        d.decide(f, small[i + 1] if i + 1 < len(small) else None)
    return d.cuts


def test_a_cut_is_found_and_a_flash_a_blank_frame_or_a_handheld_sway_is_not():
    """A handheld camera filming a cluttered room (4 degrees of sway: every frame changes), a white
    flash frame within it, then a cut to another scene: only the cut is found; the room's light
    changing colour and brightness from one frame on (a club's lights) is not a cut. A person sliding
    across a white frame with one blank (dropped) frame has no cut. A clip whose first frames or last
    frame are of another shot (trimmed near a cut) is cut there."""
    from backend.eval_sequence import handheld_motion

    sway = filmed(scene(person=True), handheld_motion(12, 4.0, np.random.default_rng(5)))
    flash = np.full_like(sway[0], 255)
    other = two_people_frames(10, size=(sway[0].shape[1], sway[0].shape[0]))
    clip = sway[:5] + [flash] + sway[5:12] + other
    assert _cuts(clip) == [13]
    assert _cuts(sway) == []
    lit = [np.clip(f * 0.55 + [40, 0, 60], 0, 255).astype(np.uint8) for f in sway]  # the room's light turns dim and purple
    assert _cuts(sway[:7] + lit[7:]) == []
    assert _cuts(moving_person_frames(12, blank_at=(5,))) == []
    # a clip trimmed just before a cut or just after one: its first frames, or its last, are another shot
    assert _cuts(sway[:8] + other[:1]) == [8]
    assert _cuts(other[:3] + sway[:10]) == [3]  # (from the 4th frame: two changes to compare a cut's with)
    assert _cuts(sway[:8] + [flash]) == []  # a flash as the last frame is none


def _dimmed(frames, gains):
    return [(f.astype(np.float64) * g).astype(np.uint8) for f, g in zip(frames, gains)]


def test_a_fade_through_black_is_a_cut_and_a_dip_back_to_the_same_view_is_not(service, tmp_path, monkeypatch):
    """An edited clip that fades the handheld room out to black over 6 frames, holds black for 3 and
    fades another scene in over 6: the new shot begins at the first lit frame after the black (no
    frame-to-frame change of the fade is a cut's: without the fade rule nothing is found); the room
    dipping to black and coming back is one shot. Through the service, an MP4 of the person fading
    out and, mirrored on another background, in: the cut is found there and every frame with a
    person is estimated."""
    from backend.eval_sequence import handheld_motion
    from backend.http import schemas
    from backend.vision import shot_cuts

    room = filmed(scene(person=True), handheld_motion(16, 2.0, np.random.default_rng(2)))
    other = two_people_frames(14, size=(room[0].shape[1], room[0].shape[0]))
    out_gain, in_gain = [1 - k / 6 for k in range(1, 7)], [k / 6 for k in range(1, 7)]
    black = [np.zeros_like(room[0])] * 3
    clip = room[:8] + _dimmed(room[8:14], out_gain) + black + _dimmed(other[:6], in_gain) + other[6:]
    first_lit = 8 + 6 + 3 + next(k for k, g in enumerate(in_gain) if (other[k] * g)[..., :].max(-1).mean() >= shot_cuts.DARK_LEVEL)
    assert _cuts(clip) == [first_lit]
    assert _cuts(room[:8] + _dimmed(room[8:14], out_gain) + black + _dimmed(room[8:14], in_gain) + room[8:]) == []
    monkeypatch.setattr(shot_cuts, "DARK_LEVEL", -1.0)  # the frame-to-frame rule alone misses the fade
    assert _cuts(clip) == []
    monkeypatch.undo()
    video = tmp_path / "fade.mp4"
    person = moving_person_frames(16, 320, 4)
    mirrored = seen_by_another_camera(person[8:])
    write_video(video, person[:6] + _dimmed(person[6:9], [0.6, 0.3, 0.0]) + _dimmed(mirrored[:3], [0.0, 0.3, 0.6]) + mirrored[3:], 10.0)
    res = service.estimate(schemas.EstimateRequest.model_validate({"video": {"path": str(video)}, "num_hypotheses": 4,
                                                                   "steps": 8, "seed": 0}))
    assert res.sequence.cuts == [10], res.sequence.cuts
    assert all(fr.track is not None for fr in res.frames) and sum(bool(fr.hypotheses) for fr in res.frames) >= 12


def _dissolve(a, b, start: int, n: int) -> list[np.ndarray]:
    """Frames of ``a`` dissolving into ``b`` (frame lists of one length) over frames ``start``..``start + n - 1``."""
    return [(fa * (1 - w) + fb * w).astype(np.uint8) for k, (fa, fb) in enumerate(zip(a, b))
            for w in [min(1.0, max(0.0, (k - start + 1) / (n + 1)))]]


def _cut_and_dissolves(frames) -> tuple[list[int], list[tuple[int, int]]]:
    d = ShotCuts()
    small = [ShotCuts.small(f) for f in frames]
    for i, f in enumerate(small):
        d.decide(f, small[i + 1] if i + 1 < len(small) else None)
    return d.cuts, d.dissolves


def _pan(deg_per_frame: float, frames: int) -> np.ndarray:
    a = np.radians(deg_per_frame) * np.arange(frames)
    c, s = np.cos(a), np.sin(a)
    z, o = np.zeros_like(a), np.ones_like(a)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], 1)


@pytest.mark.parametrize("n", [4, 12, 20])
def test_a_dissolve_is_a_cut_inside_it(n):
    """A handheld room dissolving into another scene over 4, 12 or 20 frames (from frame 20): one cut,
    inside the dissolve, which is listed from where it began."""
    from backend.eval_sequence import handheld_motion

    room = filmed(scene(person=True), handheld_motion(50, 2.0, np.random.default_rng(2)))
    other = two_people_frames(50, size=(room[0].shape[1], room[0].shape[0]))
    cuts, dissolves = _cut_and_dissolves(_dissolve(room, other, 20, n))
    assert len(cuts) == 1 and 20 < cuts[0] < 20 + n, cuts
    assert dissolves == [(dissolves[0][0], cuts[0])] and 18 <= dissolves[0][0] <= 20, dissolves


def test_no_dissolve_in_pans_sways_moving_people_or_a_change_of_light():
    """What changes steadily for a while without being a dissolve: pans of 0.4-1.7 degrees a frame, 300
    frames of a 4-degree handheld sway, a person sliding across the frame, a person walking closer, and
    the swaying room's light turning dim and purple over 12 frames (a blend too, but of one view: the
    camera's motion maps one end onto the other)."""
    from backend.eval_sequence import handheld_motion

    for deg in (0.4, 0.8, 1.7):
        assert _cut_and_dissolves(filmed(scene(person=True), _pan(deg, 30))) == ([], []), deg
    assert _cut_and_dissolves(filmed(scene(person=True), handheld_motion(300, 4.0, np.random.default_rng(7)))) == ([], [])
    assert _cut_and_dissolves(moving_person_frames(50, 320, 3)) == ([], [])
    assert _cut_and_dissolves(two_people_frames(50)) == ([], [])
    room = filmed(scene(person=True), handheld_motion(40, 2.0, np.random.default_rng(2)))
    lit = [np.clip(f * 0.55 + [40, 0, 60], 0, 255).astype(np.uint8) for f in room]
    assert _cut_and_dissolves(_dissolve(room, lit, 10, 12)) == ([], [])


def test_a_video_with_a_dissolve_is_two_shots_and_its_blended_frames_are_filled(service, tmp_path):
    """An MP4 of the person sliding across a white frame dissolving over 8 frames into the same person
    mirrored on a coloured background: a cut inside the dissolve, the blended frames' estimates
    dropped with a warning and filled by the track, the frames before and after it estimated."""
    from backend.http import schemas

    a = moving_person_frames(30, 320, 3)
    b = seen_by_another_camera(moving_person_frames(30, 320, 3))
    video = tmp_path / "dissolve.mp4"
    write_video(video, _dissolve(a, b, 12, 8), 10.0)
    res = service.estimate(schemas.EstimateRequest.model_validate({"video": {"path": str(video)}, "num_hypotheses": 4,
                                                                   "steps": 8, "seed": 0}))
    assert len(res.sequence.cuts) == 1 and 12 < res.sequence.cuts[0] < 20, res.sequence.cuts
    filled = [t for t, fr in enumerate(res.frames) if any("inside a dissolve" in w for w in fr.warnings)]
    assert filled and min(filled) >= 12 and max(filled) <= 21 and all(not res.frames[t].hypotheses for t in filled)
    assert all(fr.hypotheses for t, fr in enumerate(res.frames) if t < 11 or t > 22)
    assert all(fr.track is not None for fr in res.frames)


def test_shot_alignment_continues_the_person_across_a_cut():
    """A held-out S11 walk given a trajectory (0.9 m/s, turning 20 degrees a second) and cut at frame 20
    into another frame (turned 130 degrees, 4 m away, its floor 1.2 m lower): the turn and the shift
    that continue the person are recovered (within 3 degrees and 5 cm)."""
    from backend.mocap import datasets as D
    from backend.prior.shots import rotation_z, shot_alignment

    poses = D.load_h36m(("S11",), allow_eval=True)["S11/walking_1"][200:240].astype(np.float64)
    t = np.arange(len(poses))
    turn = np.radians(20.0) / 25.0 * t
    X = np.einsum("tij,tkj->tki", np.stack([rotation_z(a) for a in turn]), poses)
    X += (np.stack([0.9 / 25 * t, 0.02 * t, np.zeros_like(t, float)], 1))[:, None]
    yaw, offset = math.radians(130.0), np.array([4.0, -1.0, 1.2])
    after = (X[20:] - offset) @ rotation_z(yaw)  # x_own = Rz^T (x - offset)
    got_yaw, got_offset = shot_alignment(X[:20], after, 25.0)
    assert abs(math.degrees(math.remainder(got_yaw - yaw, 2 * math.pi))) < 3.0, math.degrees(got_yaw)
    assert np.linalg.norm(got_offset - offset) < 0.05, got_offset
    with pytest.raises(ValueError, match="need frames"):
        shot_alignment(X[:0], after, 25.0)


def test_an_edited_keypoint_clip_is_tracked_shot_by_shot_and_the_cut_kept_through_an_override(service):
    """A held-out clip filmed by one camera and, from frame 20, another (4 px noise): with the cut given
    the track is closer near the cut, each shot has its own tilt, the world pelvis does not jump at the
    cut nor the body spin (they do when the clip is taken as one camera), the second camera's
    orientation is placed from the person's motion within 25 degrees, and a per-frame override that
    sends the cuts back keeps them. Measured on this clip, frames 17 to 23 (truth: a 5-degree turn,
    the pelvis in place), one camera -> cut given: the body turns 170 -> 1.6 degrees in the world, the
    pelvis moves 0.45 -> 0.03 m."""
    from backend.eval_cuts import cut_request
    from backend.eval_sequence import make_clips
    from backend.http import schemas
    from backend.prior.shots import body_heading

    (_, poses), = make_clips(["S9", "S11"], 1, 40, seed=4)
    req, gt, cams = cut_request(poses, np.random.default_rng(2), 20, num=8, seed=0)
    req["steps"] = 20
    g = gt[:, :17] * 1000
    out = {}
    for name, cuts in (("one", None), ("cut", [20])):
        r = dict(req, sequence={"fps": 25.0, **({"cuts": cuts} if cuts else {})})
        out[name] = service.estimate(schemas.EstimateRequest.model_validate(r))
    res = out["cut"]
    assert res.sequence.cuts == [20] and out["one"].sequence.cuts == []
    assert [(s.start, s.frames) for s in res.sequence.shots] == [(0, 20), (20, 20)]
    assert any("1 cut (a new shot at frame 20)" in w for w in res.sequence.warnings)
    near, moved, turned = {}, {}, {}
    for name, r in out.items():
        P = np.array([fr.track.joints for fr in r.frames])[:, :17] * 1000
        near[name] = float(np.linalg.norm(P - g, axis=-1)[15:25].mean())
        wr = np.array([fr.track.world_root for fr in r.frames])
        moved[name] = float(np.linalg.norm(wr[23] - wr[17]))
        h = body_heading(np.array([fr.track.world_joints for fr in r.frames]))
        turned[name] = abs(math.degrees(math.remainder(h[23] - h[17], 2 * math.pi)))
    assert near["cut"] < near["one"], near
    # the person turns 5 degrees over these frames and the pelvis stays put (H3.6M's clips)
    assert moved["cut"] < 0.1 < moved["one"], moved
    assert turned["cut"] < 15.0 < turned["one"], turned
    M = np.array(res.sequence.camera_motion)
    assert np.allclose(M[:20], np.eye(3), atol=1e-6)
    truth = cams[1][0] @ cams[0][0].T
    err = turn_deg(M[20] @ truth.T)
    assert err < 25.0, err
    assert len(res.sequence.camera_translation) == 40
    # a per-frame override re-solves the shots as the estimate did
    again = service.track(schemas.TrackRequest.model_validate(
        {"frames": [fr.model_dump() for fr in res.frames],
         "sequence": {"fps": 25.0, "fixed": {"30": 2}, "cuts": res.sequence.cuts, "camera_motion": res.sequence.camera_motion}}))
    assert again.sequence.cuts == [20] and again.frames[30].track.hypothesis == 2
    assert np.allclose(np.array(again.sequence.camera_motion)[20], M[20], atol=0.05)


def test_a_video_with_a_cut_is_estimated_as_two_shots(service, tmp_path):
    """An MP4 of the sample photo's person sliding across a white frame that cuts, at frame 8, to the
    same person mirrored on a coloured background (another camera): the cut is found, reported and
    named in the clip's warnings, every frame has a track; ``detect_cuts: false`` takes it as one shot;
    the CLI reports the shots, and ``--no-cuts`` takes it as one."""
    from backend.http import schemas

    clip = tmp_path / "edited.mp4"
    write_video(clip, moving_person_frames(8, 320, 6) + seen_by_another_camera(moving_person_frames(8, 320, 6)), 10.0)
    opts = {"num_hypotheses": 4, "steps": 8, "seed": 0}
    res = service.estimate(schemas.EstimateRequest.model_validate({"video": {"path": str(clip)}, **opts}))
    assert res.sequence.cuts == [8], res.sequence.cuts
    assert len(res.sequence.shots) == 2 and any("cut" in w for w in res.sequence.warnings)
    assert all(fr.track is not None and fr.hypotheses for fr in res.frames)
    one = service.estimate(schemas.EstimateRequest.model_validate(
        {"video": {"path": str(clip)}, "sequence": {"detect_cuts": False}, **opts}))
    assert one.sequence.cuts == [] and one.sequence.shots == []
    # the CLI says so; --no-cuts takes the clip as one shot
    from test_cli import run

    for extra, shots in (((), 2), (("--no-cuts",), 1)):
        out = tmp_path / f"edited{shots}.json"
        p = run("estimate", clip, "--output", out, "--num", 4, "--steps", 8, "--device", "cpu", *extra)
        assert p.returncode == 0, p.stderr
        assert len(json.loads(out.read_text())["sequence"]["cuts"]) == shots - 1
        assert ("2 shots (cuts at frames 8)" in p.stderr) == (shots == 2), p.stderr


def test_shots_without_anybody_join_their_neighbours_and_bad_cuts_are_refused():
    """A shot in which nobody is found joins the shot before it (the first, the one after), cuts outside
    the clip are dropped; a cut at frame 0 or a negative one is refused by the schema naming the field."""
    from pydantic import ValidationError

    from backend.http import schemas
    from backend.sequence import shot_ranges

    j = np.zeros((2, 17, 3))
    people = [j, j, None, None, j, j, j, j]
    assert shot_ranges([2, 4, 99], people) == [(0, 4), (4, 8)]
    assert shot_ranges([2], [None, None, j, j]) == [(0, 4)]
    assert shot_ranges(None, people) == [(0, 8)]
    for bad in ([0], [-3], ["x"]):
        with pytest.raises(ValidationError, match="cuts"):
            schemas.SequenceOptions.model_validate({"fps": 25, "cuts": bad})


def test_after_a_cut_the_person_followed_is_recognised_not_taken_by_size(service, tmp_path):
    """Two people; the clip follows the larger (the sample photo's person, on the left); at frame 8 it cuts
    to another camera where they stand on the right and the other person, on the left, is now the
    larger: the followed person is found again by their torso's colours, not replaced by size."""
    from backend.http import schemas

    first = two_people_frames(8, left=300, right=(220, 220), size=(640, 360))
    second = seen_by_another_camera(two_people_frames(8, left=260, right=(330, 330), size=(640, 360)))
    clip = tmp_path / "two_cut.mp4"
    write_video(clip, first + second, 10.0)
    res = service.estimate(schemas.EstimateRequest.model_validate(
        {"video": {"path": str(clip)}, "num_hypotheses": 4, "steps": 8, "seed": 0}))
    assert res.sequence.cuts == [8]
    x = np.array([(fr.keypoints["left_hip"][0] + fr.keypoints["right_hip"][0]) / 2 for fr in res.frames])
    assert (x[:8] < 320).all() and (x[8:] > 320).all(), x.round()
