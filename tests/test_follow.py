"""The same person through a clip (``backend/vision/follow.py``): the follower's choices on given
detections, and the real detector and the whole sequence estimate on a clip of two people, one of
whom walks closer until the detector finds them the larger."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic_clips import crossing_frames, two_people_frames, write_video

from backend.errors import InputError, NoPersonError
from backend.vision.blazepose import PersonROI, alignment_roi
from backend.vision.follow import MAX_LOST, PersonFollower

SHAPE = (360, 640)


def roi(x: float, size: float, y: float = 200.0) -> PersonROI:
    c = np.array([x, y])
    return PersonROI(0.9, np.concatenate([c - size / 3, c + size / 3]), np.stack([c, c - [0, size / 2.5]] * 2), c, size, 0.0)


def aux_of(r: PersonROI) -> np.ndarray:
    """The auxiliary landmarks 33/34 that give back the crop ``r`` (upright)."""
    return np.array([r.centre, r.centre - [0.0, r.size / 2.5]])


def test_alignment_roi_is_the_detectors_crop():
    centre, size, rot = alignment_roi([100.0, 200.0], [100.0, 100.0])
    np.testing.assert_allclose(centre, [100, 200])
    assert size == pytest.approx(2 * 100 * 1.25) and rot == pytest.approx(0.0)
    assert alignment_roi([0, 0], [100, 0])[2] == pytest.approx(np.pi / 2)  # lying, head to the right


def test_the_followed_person_stays_when_another_becomes_the_largest():
    f = PersonFollower()
    picks = []
    for t in range(8):
        a, b = roi(120, 340), roi(520, 300 + 20 * t)  # b larger from t = 3 on
        people = sorted([a, b], key=lambda p: -p.size)
        pick = f.candidates(people, SHAPE)[0]
        assert not pick.predicted and pick.warning is None
        picks.append(pick.roi.centre[0])
        f.found(aux_of(pick.roi), pick.roi.score)
    assert picks == [120] * 8
    # person 1 on the first frame: the smaller one, followed once it is the larger
    f = PersonFollower(person=1)
    first = f.candidates([roi(120, 340), roi(520, 300)], SHAPE)[0].roi
    assert first.centre[0] == 520
    f.found(aux_of(first), 0.9)
    assert f.candidates([roi(520, 400), roi(120, 340)], SHAPE)[0].roi.centre[0] == 520


def test_a_missed_detection_uses_the_predicted_crop_then_picks_again_with_a_warning():
    f = PersonFollower()
    f.found(aux_of(f.candidates([roi(120, 340)], SHAPE)[0].roi), 0.9)
    for _ in range(MAX_LOST):  # the detector misses the person (or finds only someone elsewhere)
        pick = f.candidates([roi(520, 300)], SHAPE)[0]
        assert pick.predicted and pick.roi.centre[0] == pytest.approx(120) and pick.roi.size == pytest.approx(340)
        f.lost()  # ... and the landmark model finds nobody in the predicted crop
    pick = f.candidates([roi(520, 300)], SHAPE)[0]
    assert not pick.predicted and pick.roi.centre[0] == 520
    assert f"not found for {MAX_LOST} frames" in pick.warning and "same person" in pick.warning
    # a frame of another size: the prediction is dropped, the person picked by size
    f.found(aux_of(pick.roi), 0.9)
    assert f.candidates([roi(100, 200), roi(300, 100)], (720, 1280))[0].roi.centre[0] == 100


def test_the_only_person_of_a_clip_is_kept_through_a_fast_move():
    """One person jumps far between two kept frames (beyond the predicted crop's reach): in a clip that has
    only ever shown one person, that detection is theirs; once a second person has been seen, it is not."""
    f = PersonFollower()
    f.found(aux_of(f.candidates([roi(120, 340)], SHAPE)[0].roi), 0.9)
    pick = f.candidates([roi(420, 340)], SHAPE)[0]
    assert not pick.predicted and pick.roi.centre[0] == 420
    f.found(aux_of(pick.roi), 0.9)
    f.candidates([roi(420, 340), roi(800, 300)], SHAPE)[0]  # a second person appears
    assert f.candidates([roi(100, 300)], SHAPE)[0].predicted


def test_nobody_or_too_few_people_is_no_person_in_that_frame():
    f = PersonFollower(person=1)
    with pytest.raises(NoPersonError, match="no person"):
        f.candidates([], SHAPE)[0]
    with pytest.raises(NoPersonError, match="person 1 requested but 1 found"):
        f.candidates([roi(120, 340)], SHAPE)[0]
    assert f.most_found == 1


def test_torso_colours_tell_two_people_apart():
    from backend.vision.follow import MAX_TORSO_DISTANCE, torso_distance, torso_histogram

    img = np.zeros((100, 200, 3), np.uint8)
    img[:, :100] = (200, 30, 30)  # a red shirt on the left, a blue one on the right
    img[:, 100:] = (30, 30, 200)
    img[40:45, 20:30] = (250, 250, 250)  # a print
    quad = np.array([[10, 10], [90, 10], [90, 90], [10, 90]], np.float64)
    red, red2, blue = torso_histogram(img, quad), torso_histogram(img, quad + [2, 3]), torso_histogram(img, quad + [100, 0])
    assert torso_distance(red, red2) < 0.2 < MAX_TORSO_DISTANCE < torso_distance(red, blue)
    assert torso_histogram(img, np.full((4, 2), np.nan)) is None and torso_histogram(img, quad * 0.01) is None


# ------------------------------------------------------------------------------ real detector, real clip


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    p = tmp_path_factory.mktemp("follow") / "two_people.mp4"
    write_video(p, two_people_frames(8), 10.0)
    return p


def _left_hip_x(res) -> list[float]:
    return [fr.keypoints["left_hip"][0] if fr.keypoints else np.nan for fr in res.frames]


@pytest.fixture(scope="module")
def service():
    from backend.service import PoseService

    return PoseService()


def test_a_video_of_two_people_follows_the_one_picked_on_its_first_frame(service, clip):
    """The person on the left is the larger on the first frame; the one on the right walks closer and
    is the larger from the middle of the clip (the detector's choice frame by frame jumps there);
    the sequence keeps the left one on every frame, and ``video.person = 1`` the right one."""
    from backend.http import schemas
    from backend.vision.video import open_frames

    frames = [f.rgb for f in open_frames(str(clip))]
    by_size = [service.detector.detect(f).keypoints["left_hip"][0] for f in frames]
    assert by_size[0] < 320 and by_size[-1] > 320  # picking the largest would switch people
    opts = {"num_hypotheses": 2, "steps": 4, "seed": 0}
    res = service.estimate(schemas.EstimateRequest.model_validate({"video": {"path": str(clip)}, **opts}))
    xs = _left_hip_x(res)
    assert all(x < 320 for x in xs), xs
    assert res.sequence.gaps == [] and not any("same person" in w for fr in res.frames for w in fr.warnings)
    res = service.estimate(schemas.EstimateRequest.model_validate({"video": {"path": str(clip), "person": 1}, **opts}))
    assert all(x > 320 for x in _left_hip_x(res)), _left_hip_x(res)
    # the same for frames of images: a frame's own "person" picks by size, the frames after follow
    import base64

    import cv2

    imgs = [base64.b64encode(cv2.imencode(".png", f[..., ::-1])[1].tobytes()).decode() for f in frames[:4]]
    req = {"frames": [{"image": imgs[0], "person": 1}] + [{"image": im} for im in imgs[1:]], "sequence": {"fps": 10}, **opts}
    res = service.estimate(schemas.EstimateRequest.model_validate(req))
    assert all(x > 320 for x in _left_hip_x(res)), _left_hip_x(res)


def test_a_person_no_frame_has_is_refused_naming_the_field(service, clip):
    from backend.http import schemas

    req = schemas.EstimateRequest.model_validate({"video": {"path": str(clip), "person": 2}, "num_hypotheses": 2, "steps": 4})
    with pytest.raises(InputError) as e:
        service.estimate(req)
    assert e.value.field == "video.person" and "person 2 requested but no frame has more than 2" in e.value.message


def test_a_small_person_in_a_1080p_video_is_found_once_and_followed(service, tmp_path):
    """A full-body shot from afar (the person 250 px tall in 1920x1080, walking right): the first frame's
    person is found in the tiles (the whole frame's 224x224 view is too coarse), the next frames in
    the crop predicted from the frame before; no frame is lost."""
    import cv2
    from synthetic_clips import SAMPLE

    from backend.http import schemas

    im = cv2.cvtColor(cv2.imread(str(SAMPLE)), cv2.COLOR_BGR2RGB)
    im = cv2.resize(im, (round(im.shape[1] * 250 / im.shape[0]), 250), interpolation=cv2.INTER_AREA)
    frames = []
    for t in range(5):
        f = np.full((1080, 1920, 3), 235, np.uint8)
        f[600:850, 700 + 12 * t : 700 + 12 * t + im.shape[1]] = im
        frames.append(f)
    clip = tmp_path / "far.mp4"
    write_video(clip, frames, 10.0)
    res = service.estimate(schemas.EstimateRequest.model_validate({"video": {"path": str(clip)}, "num_hypotheses": 2,
                                                                   "steps": 4}))
    assert res.sequence.gaps == []
    xs = [fr.keypoints["left_hip"][0] for fr in res.frames]
    assert all(700 < x < 700 + 12 * t + im.shape[1] for t, x in enumerate(xs)) and xs[-1] > xs[0], xs


def _followed_hips(service, frames, person: int) -> np.ndarray:
    """``[T]`` x of the followed person's left hip per frame (NaN where hidden)."""
    from backend.vision.follow import PersonFollower

    follow, got = PersonFollower(person), []
    for f in frames:
        try:
            got.append(service.detector.detect(f, follow=follow).keypoints["left_hip"][0])
        except NoPersonError:
            got.append(np.nan)
    return np.array(got)


def test_two_people_crossing_each_other_keep_their_own_tracks(service):
    """One person walks behind another (tests/synthetic_clips.crossing_frames): followed, the person in
    front is theirs on every frame; the one behind is theirs wherever found, hidden for a few frames
    (someone else's torso where they were expected) and found again afterwards where their walk took
    them (the prediction moves on with their velocity), not swapped for the one in front."""
    from backend.vision.follow import PersonFollower

    frames, xa, xb = crossing_frames()
    for person, mine, other in ((0, xb, xa), (1, xa, xb)):
        got = _followed_hips(service, frames, person)
        seen = np.isfinite(got)
        assert (np.abs(got[seen] - mine[seen]) < np.abs(got[seen] - other[seen])).all(), (person, got)
        assert seen[:5].all() and seen[-5:].all() and (~seen).sum() <= 4, (person, got)
    assert not np.isfinite(got).all()  # the one behind is hidden while the other passes in front
    # every 5th frame (--every 5): each step is 5 frames' walk; both are followed on every kept frame
    for person, mine, other in ((0, xb, xa), (1, xa, xb)):
        follow = PersonFollower(person, step=5)
        got = np.array([service.detector.detect(f, follow=follow).keypoints["left_hip"][0] for f in frames[::5]])
        assert (np.abs(got - mine[::5]) < np.abs(got - other[::5])).all(), (person, got)


@pytest.mark.parametrize("count", [16, 24])
def test_two_people_dressed_alike_crossing_are_not_swapped(service, count):
    """The same crossing with two people dressed alike (the second the first mirrored): the torso's
    colours cannot tell them apart, so the one in front would be taken for the one behind as they
    overlap. Each person in view is followed with their own velocity
    (:meth:`PersonFollower.someone_else`): no frame gives either person the other's pose; the one
    behind is hidden (filled by the track) for a few frames and found again where their walk took
    them."""

    frames, xa, xb = crossing_frames(count, alike=True)
    for person, mine, other in ((0, xb, xa), (1, xa, xb)):
        got = _followed_hips(service, frames, person)
        seen = np.isfinite(got)
        assert (np.abs(got[seen] - mine[seen]) < np.abs(got[seen] - other[seen])).all(), (person, got)
        assert seen[:5].all() and seen[-5:].all() and (~seen).sum() <= 4, (person, got)


def test_a_frame_naming_a_person_it_does_not_have_is_refused_and_nobody_at_all_names_the_video(service, tmp_path):
    """As for a photo, a frame of a sequence that names a person it does not have is an error on its
    ``person`` (it used to empty the rest of the clip); a video with nobody names ``video.path``."""
    import base64

    import cv2

    from backend.http import schemas

    imgs = [base64.b64encode(cv2.imencode(".png", f[..., ::-1])[1].tobytes()).decode() for f in two_people_frames(4)]
    frames = [{"image": im} for im in imgs]
    frames[2]["person"] = 5
    req = schemas.EstimateRequest.model_validate({"frames": frames, "sequence": {"fps": 10}, "num_hypotheses": 2, "steps": 4})
    with pytest.raises(InputError) as e:
        service.estimate(req)
    assert e.value.field == "frames[2].person" and "person 5 requested but 2 found" in e.value.message
    blank = tmp_path / "blank.mp4"
    write_video(blank, [np.full((240, 320, 3), 255, np.uint8)] * 3, 10.0)
    with pytest.raises(InputError) as e:
        service.estimate(schemas.EstimateRequest.model_validate({"video": {"path": str(blank)}, "num_hypotheses": 2}))
    assert e.value.field == "video.path" and "no person found in any frame" in e.value.message


def test_a_gap_before_someone_else_is_picked_is_held_not_interpolated_toward_them():
    """The track over a clip where the person followed is lost and someone else is picked (a frame with
    the follower's re-pick warning): the frames between are held from the last frame of the first
    person, and the smoother does not blend the two people."""
    from backend.http import schemas
    from backend.sequence import add_track
    from backend.skeleton import NUM_JOINTS, canonical_rest_pose
    from backend.vision.follow import REPICK_WARNING

    pose = canonical_rest_pose() @ np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]]).T
    pose = pose - pose[:1]

    def frame(x):  # one hypothesis, the rest pose 4 m away at x
        h = {"joints": pose.tolist(), "score": 0.0, "root_translation": [x, 0.0, 4.0], "world_joints": pose.tolist()}
        return schemas.FrameResult(hypotheses=[h], aggregate=pose.tolist(), keypoints={}, warnings=[])

    frames = [frame(-1.0) for _ in range(6)] + [schemas.FrameResult(hypotheses=[], aggregate=[[0.0] * 3] * NUM_JOINTS)
                                                for _ in range(3)] + [frame(1.5) for _ in range(6)]
    frames[9].warnings = [f"{REPICK_WARNING} for 3 frames; the largest person is estimated from this frame on"]
    add_track(frames, 25.0)
    xs = [fr.track.root_translation[0] for fr in frames]
    assert all(abs(x + 1.0) < 0.05 for x in xs[:9]) and all(abs(x - 1.5) < 0.05 for x in xs[9:]), np.round(xs, 2)
    assert any("pose held from frame 5" in w for w in frames[7].warnings)
