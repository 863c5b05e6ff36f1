# SPDX-License-Identifier: GPL-3.0-or-later
"""Pure-math tests of addon/retarget.py and addon/rig_presets.py (no bpy)."""

from __future__ import annotations

import math
import random

import pytest
from addon_helpers import load_poses, synthetic_rig

from addon import linalg as la
from addon import retarget as rt
from addon import rig_presets
from addon import skeleton as sk


def test_model_skeleton_mirror_matches_backend():
    from backend import skeleton

    assert sk.JOINT_NAMES == skeleton.JOINT_NAMES
    assert sk.PARENTS == skeleton.PARENTS
    assert sk.BONE_LENGTHS == pytest.approx([float(x) for x in skeleton.BONE_LENGTHS], abs=1e-6)


def test_retarget_imports_without_blender():
    """retarget/rig_presets (and the package __init__) import with bpy and mathutils blocked."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['bpy'] = None; sys.modules['mathutils'] = None; "
        "import addon.retarget, addon.rig_presets, addon.placement, addon.camera_math; print('ok')"
    )
    from addon_helpers import ROOT

    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr


@pytest.mark.parametrize("order", ["XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX"])
def test_euler_round_trip(order):
    rng = random.Random(1)
    for _ in range(50):
        ang = [rng.uniform(-3, 3), rng.uniform(-1.5, 1.5), rng.uniform(-3, 3)]
        r = la.matrix_from_euler(ang, order)
        back = la.matrix_from_euler(la.euler_from_matrix(r, order), order)
        assert max(abs(a - b) for ra, rb in zip(r, back) for a, b in zip(ra, rb)) < 1e-9


def test_quaternion_round_trip_and_swing():
    rng = random.Random(2)
    for _ in range(50):
        axis = la.normalized([rng.gauss(0, 1) for _ in range(3)])
        r = la.axis_angle_matrix(axis, rng.uniform(-3.1, 3.1))
        back = la.matrix_from_quaternion(la.quaternion_from_matrix(r))
        assert max(abs(a - b) for ra, rb in zip(r, back) for a, b in zip(ra, rb)) < 1e-9
        a, b = [rng.gauss(0, 1) for _ in range(3)], [rng.gauss(0, 1) for _ in range(3)]
        assert la.angle_between(la.matvec(la.swing(a, b), a), b) < 1e-7
    # opposite directions
    assert la.angle_between(la.matvec(la.swing([0, 0, 1], [0, 0, -1]), [0, 0, 1]), [0, 0, -1]) < 1e-7


def _mapped_errors(rig, pose_mats, targets):
    errs = {}
    for role in sk.ROLES:
        for b in rig.mapping.get(role.name, []):
            y = la.column(pose_mats[b], 1)
            d = la.sub(targets[role.to_joint], targets[role.from_joint])
            errs[b] = math.degrees(la.angle_between(y, d))
    return errs


@pytest.mark.parametrize("seed", [0, 1])
def test_solve_pose_points_every_mapped_bone(seed):
    rig = synthetic_rig(seed)
    for name, pose in load_poses().items():
        targets, root = rt.place_on_rig(pose, rig, "GROUND")
        solved = rt.solve_pose(rig, targets, root_position=root)
        assert set(solved) == {b for bs in rig.mapping.values() for b in bs}
        basis = {n: la.to4(r.rotation, r.location) for n, r in solved.items()}
        mats = rt.pose_matrices(rig, basis)
        errs = _mapped_errors(rig, mats, targets)
        assert max(errs.values()) < 0.01, (name, errs)
        # root placed where asked; hips twist follows the hip line
        assert la.norm(la.sub(la.translation(mats["mixamorig:Hips"]), root)) < 1e-9
        hip_line = la.sub(targets["left_hip"], targets["right_hip"])
        posed_j = rt.posed_joint_positions(rig, mats)
        got = la.sub(posed_j["left_hip"], posed_j["right_hip"])
        y = la.column(mats["mixamorig:Hips"], 1)

        def perp(v, y=y):  # the hips' own y axis, bound per rig
            return la.sub(v, la.scale(y, la.dot(v, y)))

        assert math.degrees(la.angle_between(perp(got), perp(hip_line))) < 0.5
        # feet on the rest floor
        rest = rt.rest_joint_positions(rig)
        lowest = min(posed_j[j][2] for j in ("left_toe", "right_toe", "left_ankle", "right_ankle"))
        assert lowest == pytest.approx(min(rest[j][2] for j in ("left_toe", "right_toe", "left_ankle", "right_ankle")), abs=0.08)


def test_skip_and_constrain_are_respected():
    rig = synthetic_rig(3)
    pose = next(iter(load_poses().values()))
    targets, _ = rt.place_on_rig(pose, rig, "KEEP")
    seen = []

    def constrain(name, rot, loc):
        seen.append(name)
        if name == "mixamorig:LeftForeArm":
            return la.identity(), loc  # a fully locked bone
        return rot, loc

    solved = rt.solve_pose(rig, targets, skip={"mixamorig:RightArm"}, constrain=constrain)
    assert "mixamorig:RightArm" not in solved and "mixamorig:RightArm" not in seen
    assert all(r.location is None for r in solved.values())
    # children of the locked forearm still reach their target (walk uses the stored channels)
    basis = {n: la.to4(r.rotation) for n, r in solved.items()}
    mats = rt.pose_matrices(rig, basis)
    errs = _mapped_errors(rig, mats, targets)
    assert errs["mixamorig:LeftHand"] < 0.01
    assert errs["mixamorig:LeftForeArm"] > 1.0  # it could not move


def test_solve_pose_errors_name_the_problem():
    rig = synthetic_rig(0)
    with pytest.raises(ValueError, match="no mapped bone"):
        rt.solve_pose(rig, {"nose": [0, 0, 0]})
    with pytest.raises(KeyError, match="not in the armature"):
        rt.Rig(rig.bones, {"hips": ["Nope"]})
    with pytest.raises(KeyError, match="unknown role"):
        rt.Rig(rig.bones, {"tail": ["mixamorig:Hips"]})


def test_bone_directions_are_unit_parent_to_joint():
    pose = next(iter(load_poses().values()))
    dirs = rt.bone_directions(pose)
    assert "pelvis" not in dirs and len(dirs) == 20
    for j, d in dirs.items():
        par = sk.JOINT_NAMES[sk.PARENTS[sk.JOINT_INDEX[j]]]
        assert la.norm(d) == pytest.approx(1.0)
        assert la.angle_between(d, la.sub(pose[j], pose[par])) < 1e-6


def test_detect_mapping_presets_and_synonyms():
    from addon_helpers import MIXAMO_BONES

    names = [b[0] for b in MIXAMO_BONES]
    assert rig_presets.detect_mapping(names) == rig_presets.MIXAMO
    generic = ["Root", "Hips", "Spine", "Chest", "Neck", "Head"] + [
        f"{b}_{s}" for s in ("L", "R") for b in ("Clavicle", "UpperArm", "LowerArm", "Hand", "Thigh", "Calf", "Foot")
    ]
    m = rig_presets.detect_mapping(generic)
    assert m["hips"] == ["Hips"] and m["chest"] == ["Chest"] and m["head"] == ["Head"]
    assert m["upper_arm.L"] == ["UpperArm_L"] and m["shin.R"] == ["Calf_R"] and m["shoulder.L"] == ["Clavicle_L"]
    assert rig_presets.mapping_problems(m, generic) == []
    assert rig_presets.split_side("mixamorig:LeftUpLeg") == ("upleg", "L")
    assert rig_presets.split_side("thigh.R") == ("thigh", "R")
    probs = rig_presets.mapping_problems({"hips": ["X"]}, ["Y"])
    assert any("not in the armature" in p for p in probs) and any("leg" in p for p in probs)


def test_rig_families_vroid_ue_mixamo_prefixes_and_coverage():
    """VRoid (side letter inside the J_Bip_ prefix), UE4/UE5 mannequins, Mixamo with another
    prefix: detected with every role; a wrong preset covers < 80 % of the roles."""
    from addon_helpers import MIXAMO_BONES, RIG_NAMING

    assert rig_presets.split_side("J_Bip_L_UpperLeg") == ("upperleg", "L")
    assert rig_presets.split_side("J_Bip_C_Hips") == ("hips", None)
    for style, preset in (("vroid", rig_presets.VROID), ("ue", rig_presets.UE4)):
        names = [RIG_NAMING[style](b[0]) for b in MIXAMO_BONES]
        m = rig_presets.detect_mapping(names)
        assert m == preset, style
        assert rig_presets.coverage(m, names) == (1.0, [])
        # auto-detect without the exact preset (one bone renamed) still maps the rest
        partial = [n if n not in ("J_Bip_C_UpperChest", "spine_03") else "extra" for n in names]
        frac, missing = rig_presets.coverage(rig_presets.detect_mapping(partial), partial)
        assert frac == 1.0 and not missing, (style, missing)
        # the wrong preset: refused (< MIN_COVERAGE)
        assert rig_presets.coverage(rig_presets.MIXAMO, names)[0] < rig_presets.MIN_COVERAGE
    ue5 = ["root", "pelvis"] + [f"spine_0{i}" for i in range(1, 6)] + ["neck_01", "neck_02", "head"] + [
        f"{b}_{s}" for s in "lr" for b in ("clavicle", "upperarm", "lowerarm", "hand", "thigh", "calf", "foot", "ball")]
    assert rig_presets.detect_mapping(ue5) == rig_presets.UE5
    m1 = [b[0].replace("mixamorig:", "mixamorig1:") for b in MIXAMO_BONES]
    assert rig_presets.detect_mapping(m1)["thigh.L"] == ["mixamorig1:LeftUpLeg"]
    assert rig_presets.coverage(rig_presets.detect_mapping(m1), m1)[0] == 1.0


def test_chain_root_positions_keep_the_roots_of_known_chains():
    known = {n: [0.0, 0.0, float(i)] for i, n in enumerate(("pelvis", "left_hip", "left_knee", "left_wrist", "left_hand"))}
    dirs = {"left_hip": [1.0, 0, 0], "left_knee": [0, 0, -1.0], "left_hand": [0, 0, -1.0]}
    # the hip and knee hang off the known pelvis/hip by their directions; the wrist's elbow is not known
    assert sorted(rt.chain_root_positions(known, dirs)) == ["left_wrist", "pelvis"]
    # a joint without a direction keeps its position even below a known parent
    assert "left_knee" in rt.chain_root_positions(known, {"left_hip": [1.0, 0, 0]})
