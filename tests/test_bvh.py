"""BVH parsing, forward kinematics and mocap loading (backend.mocap.bvh, backend.mocap.clips).

Uses a real CMU clip (tests/fixtures/cmu_02_01.bvh, a copy of shared/data/cmu_bvh/02_01.bvh)
and tiny BVH files written here with hand-computed forward kinematics.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from backend.errors import InputError
from backend.mocap import clips as mocap
from backend.mocap import mapping
from backend.mocap.bvh import BvhError, parse_bvh, read_bvh
from backend.skeleton import JOINT_INDEX as J
from backend.skeleton import NUM_JOINTS

FIXTURE = Path(__file__).parent / "fixtures" / "cmu_02_01.bvh"

# A chain root -> child -> end site. Root: translation channels then Y rotation; child:
# "Xrotation Zrotation" (order matters: R = Rx @ Rz).
TINY = """HIERARCHY
ROOT root
{
  OFFSET 0 0 0
  CHANNELS 4 Xposition Yposition Zposition Yrotation
  JOINT child
  {
    OFFSET 0 2 0
    CHANNELS 2 Xrotation Zrotation
    End Site
    {
      OFFSET 3 0 0
    }
  }
}
MOTION
Frames: 2
Frame Time: 0.5
1 2 3 0 0 0
1 2 3 90 90 90
"""


def test_tiny_fk_matches_hand_computed_positions():
    m = parse_bvh(TINY, "tiny.bvh")
    assert m.names == ["root", "child", "child_End"]
    assert m.parents.tolist() == [-1, 0, 1]
    assert m.channels[1] == ["Xrotation", "Zrotation"]
    assert m.channel_start.tolist() == [0, 4, 6]
    assert m.fps == pytest.approx(2.0)
    p = m.positions()
    assert p.shape == (2, 3, 3)
    # Frame 0, no rotation: offsets add up.
    np.testing.assert_allclose(p[0], [[1, 2, 3], [1, 4, 3], [4, 4, 3]], atol=1e-9)
    # Frame 1: Ry(90) maps the child's offset (0,2,0) to itself; the end site's (3,0,0) goes
    # through Rz(90) -> (0,3,0), Rx(90) -> (0,0,3), Ry(90) -> (3,0,0).
    np.testing.assert_allclose(p[1], [[1, 2, 3], [1, 4, 3], [4, 4, 3]], atol=1e-9)


def test_tiny_fk_rotation_order_and_direction():
    text = TINY.replace("1 2 3 90 90 90", "0 0 0 90 0 90")
    p = parse_bvh(text, "tiny.bvh").positions()[1]
    # Rz(90) (3,0,0) -> (0,3,0); Ry(90) leaves it: end = (0,2,0) + (0,3,0).
    np.testing.assert_allclose(p[2], [0, 5, 0], atol=1e-9)
    text = TINY.replace("1 2 3 90 90 90", "0 0 0 0 90 90")
    p = parse_bvh(text, "tiny.bvh").positions()[1]
    # Rz(90) then Rx(90): (3,0,0) -> (0,3,0) -> (0,0,3); the other order would give (0,3,0).
    np.testing.assert_allclose(p[2], [0, 2, 3], atol=1e-9)
    text = TINY.replace("1 2 3 90 90 90", "0 0 0 90 0 0")
    p = parse_bvh(text, "tiny.bvh").positions()[1]
    # Ry(+90) turns +X into -Z (right-handed).
    np.testing.assert_allclose(p[2], [0, 2, -3], atol=1e-9)


def test_position_channels_replace_offset_of_non_root_joint():
    text = """HIERARCHY
ROOT a
{
  OFFSET 0 0 0
  CHANNELS 3 Xposition Yposition Zposition
  JOINT b
  {
    OFFSET 5 5 5
    CHANNELS 1 Yposition
  }
}
MOTION
Frames: 1
Frame Time: 0.1
0 0 0 7
"""
    p = parse_bvh(text, "t.bvh").positions()[0]
    np.testing.assert_allclose(p[1], [5, 7, 5])  # X and Z from OFFSET, Y from the channel


def test_cmu_fixture_parses_and_rest_pose_is_t_pose():
    m = read_bvh(FIXTURE)
    assert m.num_frames == 343
    assert m.fps == pytest.approx(120.0, rel=1e-3)
    assert m.motion.shape == (343, 96)
    assert "Head_End" in m.names and m.names[m.parents[m.index("Head_End")]] == "Head"
    # The rest pose (zero channels) of the CMU rig is a T-pose facing +Z in the file.
    m.motion[:] = 0.0
    x, mask = mocap.motion_to_model(m, mapping.load_mapping("cmu"), [0])
    x = x[0]
    assert mask.all()
    for side, sign in (("left", 1), ("right", -1)):
        arm = x[J[f"{side}_wrist"]] - x[J[f"{side}_shoulder"]]
        assert sign * arm[0] > 0.4  # outwards, metres
        assert abs(arm[2]) < 0.01 and abs(arm[1]) < 0.01  # horizontal, in the frontal plane
        leg = x[J[f"{side}_ankle"]] - x[J[f"{side}_hip"]]
        assert leg[2] < 0 and -leg[2] / np.linalg.norm(leg) > np.cos(np.deg2rad(25))  # nearly vertical
        assert 0.7 < np.linalg.norm(leg) < 1.0  # leg length of an adult, metres
        toe = x[J[f"{side}_toe"]] - x[J[f"{side}_ankle"]]
        assert toe[1] < -0.05  # toes point forward = -Y in the world (Blender front view)
    # Z up: head top above thorax above pelvis above ankles.
    assert x[J["head"], 2] > x[J["thorax"], 2] > 0.3 > 0 > x[J["left_ankle"], 2]
    assert x[J["left_hip"], 0] > 0 > x[J["right_hip"], 0]  # left is +X, right-handed world


def test_load_mocap_fixture_subsamples_metres_pelvis_origin():
    clips = mocap.load_mocap(FIXTURE, "cmu", stride_fps=24.0)
    assert len(clips) == 1
    c = clips[0]
    # 120 fps / 24 = every 5th frame, first (calibration) frame skipped: frames 1, 6, ..., 341.
    assert c.joints.shape == (len(range(1, 343, 5)), NUM_JOINTS, 3)
    assert c.joints.dtype == np.float32
    assert c.fps == pytest.approx(24.0, rel=1e-3)
    assert c.mask.shape == (NUM_JOINTS,) and c.mask.all()
    np.testing.assert_allclose(c.joints[:, 0], 0.0, atol=1e-6)
    thigh = np.linalg.norm(c.joints[:, J["left_knee"]] - c.joints[:, J["left_hip"]], axis=-1)
    assert 0.35 < thigh.mean() < 0.5 and thigh.std() < 1e-4  # rigid bone, metres
    # Walking: the head stays well above the pelvis and the feet below it.
    assert (c.joints[:, J["head"], 2] > 0.5).all() and (c.joints[:, J["left_ankle"], 2] < -0.6).all()
    # Same frames as a direct parse + FK of the same file.
    m = read_bvh(FIXTURE)
    x, _ = mocap.motion_to_model(m, mapping.load_mapping("cmu"), np.arange(1, 343, 5))
    np.testing.assert_allclose(c.joints, x, atol=1e-5)


def _write_mapping(path: Path, up: str, unit: float = 0.01, joints: str | None = None, extra: str = "") -> Path:
    if joints is None:
        joints = "\n".join(
            f'{n} = "{n}"' for n in (
                "pelvis", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
                "thorax", "left_shoulder", "left_elbow", "left_wrist", "right_shoulder", "right_elbow", "right_wrist",
            )
        )
    path.write_text(f'[source]\nunit_m = {unit}\nup = "{up}"\n{extra}\n[joints]\n{joints}\n')
    return path


def _star_bvh(points: dict[str, tuple[float, float, float]], frames: int = 1) -> str:
    """A BVH with one root and the given joints as children at fixed offsets (file units)."""
    body = "".join(f"  JOINT {n}\n  {{\n    OFFSET {x} {y} {z}\n  }}\n" for n, (x, y, z) in points.items())
    rows = "\n".join("0 0 0" for _ in range(frames))
    return (
        "HIERARCHY\nROOT pelvis\n{\n  OFFSET 0 0 0\n  CHANNELS 3 Xposition Yposition Zposition\n"
        f"{body}}}\nMOTION\nFrames: {frames}\nFrame Time: 0.04\n{rows}\n"
    )


# A standing figure in a Y-up file, centimetres, facing +Z (left = +X).
FIGURE_Y_UP = {
    "left_hip": (10, 0, 0), "right_hip": (-10, 0, 0), "left_knee": (10, -45, 0), "right_knee": (-10, -45, 0),
    "left_ankle": (10, -90, 0), "right_ankle": (-10, -90, 0), "thorax": (0, 50, 0),
    "left_shoulder": (18, 45, 0), "right_shoulder": (-18, 45, 0), "left_elbow": (18, 15, 0),
    "right_elbow": (-18, 15, 0), "left_wrist": (18, -10, 0), "right_wrist": (-18, -10, 4),
}


def test_y_up_file_is_turned_to_z_up_metres(tmp_path):
    bvh = tmp_path / "fig.bvh"
    bvh.write_text(_star_bvh(FIGURE_Y_UP))
    clip = mocap.load_mocap(bvh, _write_mapping(tmp_path / "y.toml", "y"))[0]
    # (x, y, z) -> (x, -z, y), centimetres -> metres.
    np.testing.assert_allclose(clip.joints[0, J["thorax"]], [0, 0, 0.5], atol=1e-6)
    np.testing.assert_allclose(clip.joints[0, J["right_wrist"]], [-0.18, -0.04, -0.10], atol=1e-6)
    np.testing.assert_allclose(clip.joints[0, J["left_ankle"]], [0.10, 0, -0.9], atol=1e-6)
    # The same file read as Z up keeps its axes.
    clip_z = mocap.load_mocap(bvh, _write_mapping(tmp_path / "z.toml", "z"))[0]
    np.testing.assert_allclose(clip_z.joints[0, J["right_wrist"]], [-0.18, -0.10, 0.04], atol=1e-6)
    # Conversion is a proper rotation: determinant +1 (handedness, hence left/right, kept).
    assert np.linalg.det(mocap.Y_UP_TO_Z_UP) == pytest.approx(1.0)


def test_missing_joints_are_derived_and_masked(tmp_path):
    bvh = tmp_path / "fig.bvh"
    bvh.write_text(_star_bvh(FIGURE_Y_UP))
    clip = mocap.load_mocap(bvh, _write_mapping(tmp_path / "y.toml", "y"))[0]
    derived = ["spine", "neck", "head", "right_toe", "left_toe", "left_hand", "right_hand"]
    assert [n for n in J if not clip.mask[J[n]]] == derived
    x = clip.joints[0]
    assert 0 < x[J["spine"], 2] < x[J["thorax"], 2] < x[J["neck"], 2] < x[J["head"], 2]
    assert x[J["neck"], 1] < x[J["thorax"], 1]  # H3.6M's neck point is in front (-Y) of the thorax
    for side in ("left", "right"):
        toe = x[J[f"{side}_toe"]] - x[J[f"{side}_ankle"]]
        assert toe[1] < -0.1 and toe[2] < 0  # forward and a little down
        hand = x[J[f"{side}_hand"]] - x[J[f"{side}_wrist"]]
        fore = x[J[f"{side}_wrist"]] - x[J[f"{side}_elbow"]]
        np.testing.assert_allclose(np.cross(hand, fore), 0, atol=1e-6)  # along the forearm
        assert 0.08 < np.linalg.norm(hand) < 0.15
    assert np.isfinite(clip.joints).all()


def test_mapping_weighted_mean_and_offset_point(tmp_path):
    pts = dict(FIGURE_Y_UP, a=(0, 20, 0), b=(0, 40, 0))
    bvh = tmp_path / "fig.bvh"
    bvh.write_text(_star_bvh(pts))
    base = (tmp_path / "base.toml")
    _write_mapping(base, "y")
    text = base.read_text() + 'spine = { mean = ["a", "b"], weights = [0.25, 0.75] }\nhead = { joint = "thorax", offset = [0, 10, 5] }\n'
    (tmp_path / "m.toml").write_text(text)
    clip = mocap.load_mocap(bvh, tmp_path / "m.toml")[0]
    np.testing.assert_allclose(clip.joints[0, J["spine"]], [0, 0, 0.35], atol=1e-6)
    np.testing.assert_allclose(clip.joints[0, J["head"]], [0, -0.05, 0.6], atol=1e-6)
    assert clip.mask[J["spine"]] and clip.mask[J["head"]]


def test_unknown_model_joint_in_mapping_names_joint_and_file(tmp_path):
    path = _write_mapping(tmp_path / "bad.toml", "y", extra="")
    path.write_text(path.read_text() + 'left_foot = "LeftFoot"\n')
    with pytest.raises(InputError) as e:
        mapping.load_mapping(path)
    assert "left_foot" in str(e.value) and "bad.toml" in str(e.value) and "left_ankle" in str(e.value)


def test_mapping_to_joint_the_file_lacks_names_joint_mapping_and_file(tmp_path):
    bvh = tmp_path / "fig.bvh"
    bvh.write_text(_star_bvh(FIGURE_Y_UP))
    path = _write_mapping(tmp_path / "m.toml", "y")
    path.write_text(path.read_text().replace('left_elbow = "left_elbow"', 'left_elbow = "lForeArm"'))
    with pytest.raises(InputError) as e:
        mocap.load_mocap(bvh, path)
    msg = str(e.value)
    assert "left_elbow" in msg and "lForeArm" in msg and "m.toml" in msg and "fig.bvh" in msg


@pytest.mark.parametrize(
    "toml, fragment",
    [
        ('[source]\nup = "y"\n[joints]\n', "unit_m"),
        ('[source]\nunit_m = 0.01\nup = "x"\n[joints]\n', "up"),
        ('[source]\nunit_m = 0.01\nup = "y"\n[joints]\npelvis = "a"\n', "required model joints not mapped"),
        ("[source\n", "not valid TOML"),
    ],
)
def test_bad_mapping_files_give_clear_errors(tmp_path, toml, fragment):
    (tmp_path / "m.toml").write_text(toml)
    with pytest.raises(InputError, match=fragment):
        mapping.load_mapping(tmp_path / "m.toml")


def test_unknown_mapping_name_lists_shipped_mappings():
    with pytest.raises(FileNotFoundError, match="bandai"):
        mapping.load_mapping("no_such_rig")


def test_shipped_mappings_load():
    for name in ("bandai", "cmu", "cmu_aclstm", "cmu_przestr", "cmu_asf"):
        m = mapping.load_mapping(name)
        assert set(mapping.REQUIRED_JOINTS) <= set(m.joints)
    assert mapping.load_mapping("cmu_przestr").fallback.path.name == "cmu_asf.toml"


def test_fallback_mapping_used_for_files_with_other_joint_names(tmp_path):
    renamed = {("x_" + k): v for k, v in FIGURE_Y_UP.items()}
    (tmp_path / "a.bvh").write_text(_star_bvh(FIGURE_Y_UP))
    (tmp_path / "b.bvh").write_text(_star_bvh(renamed))
    other = "\n".join(f'{k} = "x_{k}"' for k in FIGURE_Y_UP) + '\npelvis = "pelvis"'
    _write_mapping(tmp_path / "other.toml", "y", unit=0.02, joints=other)
    _write_mapping(tmp_path / "main.toml", "y", extra='fallback = "other.toml"')
    clips = mocap.load_mocap(tmp_path, tmp_path / "main.toml")
    assert [Path(c.name).name for c in clips] == ["a.bvh", "b.bvh"]
    np.testing.assert_allclose(clips[1].joints, 2 * clips[0].joints, atol=1e-6)  # other unit_m


def test_load_from_zip_with_member_prefix(tmp_path):
    z = tmp_path / "set.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("take/one.bvh", _star_bvh(FIGURE_Y_UP, frames=10))
        zf.writestr("take/two.bvh", _star_bvh(FIGURE_Y_UP, frames=3))
        zf.writestr("other/three.bvh", _star_bvh(FIGURE_Y_UP))
        zf.writestr("take/readme.txt", "not a bvh")
    mp = _write_mapping(tmp_path / "m.toml", "y")
    clips = mocap.load_mocap(f"{z}::take/", mp, stride_fps=12.5)
    assert [c.name.split("::")[1] for c in clips] == ["take/one.bvh", "take/two.bvh"]
    assert [len(c.joints) for c in clips] == [5, 2]  # 25 fps -> every 2nd frame
    assert len(mocap.load_mocap(z, mp)) == 3


# ----------------------------------------------------------------------------- errors


def _error(text: str) -> BvhError:
    with pytest.raises(BvhError) as e:
        parse_bvh(text, "clip.bvh")
    return e.value


def test_bad_motion_line_names_file_and_line():
    lines = TINY.splitlines()
    lines[-1] = "1 2 3 90 90"  # 5 values, 6 channels; line 20 of the file
    err = _error("\n".join(lines) + "\n")
    assert err.line == 20
    assert str(err).startswith("clip.bvh:20:") and "5 values, expected 6" in str(err)


def test_non_numeric_motion_value_names_line():
    err = _error(TINY.replace("1 2 3 0 0 0", "1 2 3 0 x 0"))
    assert err.line == 19 and "'x'" in str(err)


def test_truncated_motion_names_file_and_last_line():
    text = "\n".join(TINY.splitlines()[:-1]) + "\n"  # Frames: 2 but one motion line
    err = _error(text)
    assert "clip.bvh" in str(err) and "truncated" in str(err) and err.line == 19


def test_truncated_hierarchy_names_file_and_line():
    text = "\n".join(TINY.splitlines()[:8]) + "\n"  # cut inside the child joint
    err = _error(text)
    assert str(err).startswith("clip.bvh:8:") and "truncated" in str(err)


def test_unknown_keyword_and_bad_channel_name_their_lines():
    err = _error(TINY.replace("    OFFSET 0 2 0", "    OFSET 0 2 0"))
    assert err.line == 8 and "unknown keyword 'OFSET'" in str(err)
    err = _error(TINY.replace("Xrotation Zrotation", "Xrotation Wrotation"))
    assert err.line == 9 and "bad channel 'Wrotation'" in str(err)
    err = _error(TINY.replace("CHANNELS 2 Xrotation", "CHANNELS 3 Xrotation"))
    assert err.line == 10  # the third channel name is read as 'End'
    err = _error(TINY.replace("Frame Time: 0.5", "Frame Time: fast"))
    assert err.line == 18 and "Frame Time" in str(err)


def test_bvh_error_is_an_input_error():
    assert issubclass(BvhError, InputError)


# ----------------------------------------------------------------------------- ASF / AMC

TINY_ASF = """:version 1.10
:units
  length 0.45
  angle deg
:root
   order TX TY TZ RX RY RZ
   axis XYZ
   position 0 0 0
   orientation 0 0 0
:bonedata
  begin
     id 1
     name upper
     direction 0 1 0
     length 2
     axis 0 0 90 XYZ
    dof rx
  end
  begin
     id 2
     name lower
     direction 1 0 0
     length 3
     axis 0 0 0 XYZ
    dof rx rz
  end
:hierarchy
  begin
    root upper
    upper lower
  end
"""

TINY_AMC = """:FULLY-SPECIFIED
:DEGREES
1
root 1 2 3 0 0 0
upper 0
lower 0 0
2
root 0 0 0 0 90 0
upper 90
lower 0 90
"""


def test_asf_amc_fk_matches_hand_computed_positions():
    from backend.mocap.amc import parse_amc, parse_asf

    sk = parse_asf(TINY_ASF, "t.asf")
    assert sk.bones == ["root", "upper", "lower"] and sk.length_unit == 0.45
    m = parse_amc(TINY_AMC, sk, "t.amc")
    assert m.num_frames == 2 and m.fps == pytest.approx(120.0)
    p = m.positions()
    i = m.index
    # Frame 1: rest; bones start where the parent ends.
    np.testing.assert_allclose(p[0, [i("upper"), i("upper_End"), i("lower_End")]], [[1, 2, 3], [1, 4, 3], [4, 4, 3]], atol=1e-9)
    # Frame 2: root Ry(90); upper rotates rx=90 about its axis frame C = Rz(90), i.e. about the
    # global Y axis (C Rx C^-1 = Ry), leaving its +Y direction alone; lower: Rz(90) Rx(0) turns
    # +X into +Y, then both Ry(90)s leave +Y alone.
    np.testing.assert_allclose(p[1, i("upper_End")], [0, 2, 0], atol=1e-9)
    np.testing.assert_allclose(p[1, i("lower_End")], [0, 5, 0], atol=1e-9)


def test_amc_errors_name_file_and_line():
    from backend.mocap.amc import AmcError, parse_amc, parse_asf

    sk = parse_asf(TINY_ASF, "t.asf")
    with pytest.raises(AmcError, match=r"t.amc:10: lower has 1 values"):
        parse_amc(TINY_AMC.replace("lower 0 90", "lower 0"), sk, "t.amc")
    with pytest.raises(AmcError, match=r"t.amc:5: bone 'uper'"):
        parse_amc(TINY_AMC.replace("upper 0\n", "uper 0\n", 1), sk, "t.amc")
    with pytest.raises(AmcError, match=r"t.asf:\d+: hierarchy names bone 'lowr'"):
        parse_asf(TINY_ASF.replace("upper lower", "upper lowr"), "t.asf")


CMU_MORE = Path(__file__).resolve().parents[2] / "shared" / "data" / "cmu_more.zip"


@pytest.mark.skipif(not CMU_MORE.exists(), reason="shared/data/cmu_more.zip not available")
def test_amc_fk_agrees_with_the_bvh_conversion_of_the_same_take():
    """CMU 16_02 exists as ASF/AMC and as a BVH with ASF bone names (Hahne conversion)."""
    from backend.mocap.amc import parse_amc, parse_asf

    with zipfile.ZipFile(CMU_MORE) as zf:
        sk = parse_asf(zf.read("amc/16.asf").decode(), "16.asf")
        amc = parse_amc(zf.read("amc/16_02_-_jump.amc").decode(), sk, "16_02.amc")
        bvh = parse_bvh(zf.read("bvh_przestr/16_02.bvh").decode(), "16_02.bvh")
    frames = np.arange(0, bvh.num_frames, 50)
    pa, ra = amc.forward_kinematics(frames)
    pb, rb = bvh.forward_kinematics(frames)
    for bone in ("lfemur", "ltibia", "lfoot", "ltoes", "rfemur", "rtibia", "rfoot", "head", "lwrist", "rradius"):
        np.testing.assert_allclose(ra[:, amc.index(bone)], rb[:, bvh.index(bone)], atol=1e-4)  # 6-digit files
    for joint in ("lfemur", "ltibia", "lfoot", "ltoes", "ltoes_End", "rtibia", "rfoot"):
        np.testing.assert_allclose(pa[:, amc.index(joint)], pb[:, bvh.index(joint)], atol=1e-3)
    # The conversion drops the ASF thorax bone's length, so the upper body differs by that bone.
    clip = mocap.load_mocap(f"{CMU_MORE}::amc/16_02_", "cmu_amc")[0]
    assert clip.mask.all() and np.isfinite(clip.joints).all()
    assert (clip.joints[:, J["head"], 2] > clip.joints[:, J["thorax"], 2]).all()
