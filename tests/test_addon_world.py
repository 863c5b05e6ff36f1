# SPDX-License-Identifier: GPL-3.0-or-later
"""The add-on as an animator meets it, on the factory startup scene, for five rigs (Rigify
metarig, a rig generated from it at Rigify's default IK setting, a Y-up Mixamo FBX-like rig,
a VRoid-named and a UE-named rig): estimate from a photo stands the rig on the floor and the
fitted Photo camera lines it up with the detected keypoints; Complete with the feet and one
hand keyed keeps them in place in the world; Variations keep the selected bones in place;
Generate stands on the floor; a fresh all-selected rig gets a message, not an empty success.

Real bpy, the real backend (``posediff serve`` subprocess), the real detector on
``samples/image2.jpeg``. The measured numbers are printed (``pytest -s``) and written to
``out/addon_world.json``.
"""

from __future__ import annotations

import json
import math

import pytest

bpy = pytest.importorskip("bpy")

from addon_helpers import ROOT, add_rigify_metarig, build_bpy_named_rig  # noqa: E402
from test_addon_live import PHOTO, _installed, addon, addon_module, server  # noqa: E402,F401

RIGS = ("metarig", "rigify_generated", "mixamo_y_up", "mixamo_z_up", "vroid", "ue")
RESULTS: dict = {}


def _factory_scene():
    """The factory startup scene (Camera, Cube, Light), preferences and add-ons kept."""
    bpy.ops.wm.read_homefile(use_factory_startup=True, use_empty=False)
    assert {"Camera", "Cube", "Light"} <= set(bpy.data.objects.keys())


def _build(kind):
    if kind == "metarig":
        return add_rigify_metarig()
    if kind == "rigify_generated":
        meta = add_rigify_metarig()
        assert bpy.ops.pose.rigify_generate() == {"FINISHED"}
        ob = bpy.data.objects["rig"]
        meta.hide_set(True)
        bpy.context.view_layer.objects.active = ob
        return ob
    style, y_up = {"mixamo_y_up": ("mixamo", True), "mixamo_z_up": ("mixamo", False), "vroid": ("vroid", False),
                   "ue": ("ue", False)}[kind]
    ob = build_bpy_named_rig(style, y_up_fbx=y_up)
    for pb in ob.pose.bones:  # like a fresh import: everything selected
        pb.select = True
    return ob


def _mapped(ob, role):
    return addon_module("blender_rig").get_mapping(ob)[role][0]


def _world_points(ob, bones):
    bpy.context.view_layer.update()
    mw = ob.matrix_world
    return {b: [list(mw @ ob.pose.bones[b].head), list(mw @ ob.pose.bones[b].tail)] for b in bones}


def _max_move(a, b):
    return max(math.dist(p, q) for k in a for p, q in zip(a[k], b[k]))


def _moves(a, b):
    return {k: round(max(math.dist(p, q) for p, q in zip(a[k], b[k])), 4) for k in a}


def _feet_height(ob):
    """Lowest posed foot joint above the rig's floor (world Z), metres."""
    return addon_module("blender_rig").lowest_foot_above_floor(ob)


def _leg_extension(ob):
    """Largest hip-ankle distance over thigh + shin length of the two legs (1 = a straight leg)."""
    bpy.context.view_layer.update()
    mapping, mw, out = addon_module("blender_rig").get_mapping(ob), ob.matrix_world, []
    for s in ("L", "R"):
        bones = [ob.pose.bones[b] for role in (f"thigh.{s}", f"shin.{s}") for b in mapping[role]]
        reach = math.dist(mw @ bones[0].head, mw @ bones[-1].tail)
        out.append(reach / sum(math.dist(mw @ b.head, mw @ b.tail) for b in bones))
    return max(out)


def _lineup_px(ob, scene, photo=PHOTO, person=None):
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector

    client = addon_module("client")
    prefs = bpy.context.preferences.addons[_installed["module"]].preferences
    det = client.Client(prefs.backend_url, prefs.token).request(
        "POST", "/v1/detect", {"frames": [{"image": str(photo), "person": person}]})["frames"][0]["keypoints"]
    joints = addon_module("blender_rig").posed_joints_world(ob)
    cam = scene.camera
    w, h = scene.render.resolution_x, scene.render.resolution_y
    errs = []
    for name in addon_module("results").LINEUP_JOINTS:
        if name in det and name in joints and det[name][2] > 0.5:
            p = world_to_camera_view(scene, cam, Vector(joints[name]))
            errs.append(math.hypot(p.x * w - det[name][0], (1 - p.y) * h - det[name][1]))
    errs.sort()
    return errs[len(errs) // 2], errs[-1], h


@pytest.mark.parametrize("kind", RIGS)
def test_rig_in_the_factory_scene(addon, kind):  # noqa: F811
    _factory_scene()
    scene = bpy.context.scene
    s = scene.posediff
    s.num_hypotheses, s.num_generate, s.seed, s.previews, s.strength = 4, 3, 0, False, 0.5
    ob = _build(kind)
    bpy.context.view_layer.objects.active = ob
    out = RESULTS.setdefault(kind, {})
    blender_rig = addon_module("blender_rig")
    mapped = blender_rig.mapped_bones(ob)

    # fresh rig, every bone selected: a message, not a success with 0 bones
    for pb in ob.pose.bones:
        pb.select = True
    for op in (bpy.ops.posediff.variations, bpy.ops.posediff.complete):
        with pytest.raises(RuntimeError, match="mapped bones are selected"):
            op(blocking=True)
    assert ob.animation_data is None or ob.animation_data.action is None
    for pb in ob.pose.bones:
        pb.select = False

    # estimate: on the floor where it stands, and lined up through the Photo camera
    scene.frame_set(1)
    assert bpy.ops.posediff.estimate(filepath=str(PHOTO), blocking=True) == {"FINISHED"}
    assert s.last_error == "", s.last_error
    assert scene.camera.name == "Photo camera" and "Camera" in bpy.data.objects
    out["estimate_feet_above_floor_m"] = _feet_height(ob)
    assert abs(out["estimate_feet_above_floor_m"]) <= 0.02
    med, worst, h = _lineup_px(ob, scene)
    out["estimate_lineup_median_px"], out["estimate_lineup_max_px"], out["image_height_px"] = med, worst, h
    out["estimate_message"] = s.last_message
    assert med < 0.05 * h, (med, h)
    if kind == "rigify_generated":
        # the rig follows the FK keys: switches keyed to FK, deform feet/hands where the FK controls are
        for sw in ("upper_arm_parent.L", "upper_arm_parent.R", "thigh_parent.L", "thigh_parent.R"):
            assert ob.pose.bones[sw]["IK_FK"] == 1.0
        assert "switched" in s.last_message
        p = _world_points(ob, ["foot_fk.L", "DEF-foot.L", "hand_fk.R", "DEF-hand.R"])
        out["deform_vs_fk_m"] = max(math.dist(p["foot_fk.L"][0], p["DEF-foot.L"][0]),
                                    math.dist(p["hand_fk.R"][0], p["DEF-hand.R"][0]))
        assert out["deform_vs_fk_m"] < 0.01
        # the switch to FK is part of the same undo step as the keys
        for sw in ("upper_arm_parent.L", "thigh_parent.R"):
            ob.pose.bones[sw]["IK_FK"] = 0.0
        bpy.ops.ed.undo_push(message="IK again")
        assert bpy.ops.posediff.apply_hypothesis("EXEC_DEFAULT", True) == {"FINISHED"}
        assert bpy.data.objects["rig"].pose.bones["thigh_parent.R"]["IK_FK"] == 1.0
        bpy.ops.ed.undo()
        ob = bpy.data.objects["rig"]
        assert ob.pose.bones["thigh_parent.R"]["IK_FK"] == 0.0 and ob.pose.bones["upper_arm_parent.L"]["IK_FK"] == 0.0
        assert bpy.ops.posediff.apply_hypothesis("EXEC_DEFAULT", True) == {"FINISHED"}
        scene, s = bpy.context.scene, bpy.context.scene.posediff  # undo replaced the data-blocks

    # complete with the feet and one hand keyed on a new frame: they stay in the world
    pinned = [_mapped(ob, r) for r in ("foot.L", "foot.R", "hand.L")]
    scene.frame_set(2)
    for b in pinned:
        pb = ob.pose.bones[b]
        pb.keyframe_insert(blender_rig._rot_paths(pb), frame=2, group=b)
    before = _world_points(ob, pinned)
    others_before = _world_points(ob, [b for b in mapped if b not in pinned])
    assert bpy.ops.posediff.complete(blocking=True) == {"FINISHED"}, s.last_error
    out["complete_pinned_max_move_m"] = _max_move(before, _world_points(ob, pinned))
    out["complete_pinned_moves_m"] = _moves(before, _world_points(ob, pinned))
    out["complete_others_max_move_m"] = _max_move(others_before, _world_points(ob, list(others_before)))
    out["complete_message"] = s.last_message
    assert out["complete_pinned_max_move_m"] <= 0.01, (out["complete_pinned_moves_m"], s.last_message)
    assert out["complete_others_max_move_m"] > 0.02  # the rest of the pose did change

    # variations with the same bones selected (fixed), on frame 3
    scene.frame_set(3)
    for pb in ob.pose.bones:
        pb.select = pb.name in pinned
    before = _world_points(ob, pinned)
    assert bpy.ops.posediff.variations(blocking=True) == {"FINISHED"}, s.last_error
    out["variations_fixed_max_move_m"] = _max_move(before, _world_points(ob, pinned))
    out["variations_message"] = s.last_message
    assert out["variations_fixed_max_move_m"] <= 0.01
    # the left elbow and wrist fixed (forearm and hand selected) at a low strength
    scene.frame_set(6)
    arm = [_mapped(ob, "forearm.L"), _mapped(ob, "hand.L")]
    for pb in ob.pose.bones:
        pb.select = pb.name in arm
    s.strength = 0.2
    before = _world_points(ob, arm)
    assert bpy.ops.posediff.variations(blocking=True) == {"FINISHED"}, s.last_error
    out["variations_elbow_wrist_max_move_m"] = _max_move(before, _world_points(ob, arm))
    # the unpinned legs reach for the floor by IK; the pinned elbow fixes the shoulder's distance,
    # so where the floor is farther than a straight leg the pins win (Rigify rig: 0-16 cm short
    # over seeds 0-2): the feet are on the floor or a leg is straight
    out["variations_elbow_wrist_feet_above_floor_m"] = _feet_height(ob)
    out["variations_elbow_wrist_leg_extension"] = _leg_extension(ob)
    assert out["variations_elbow_wrist_feet_above_floor_m"] >= -0.02
    assert out["variations_elbow_wrist_feet_above_floor_m"] <= 0.02 or out["variations_elbow_wrist_leg_extension"] >= 0.97, out
    assert out["variations_elbow_wrist_max_move_m"] <= 0.01
    s.strength = 0.5
    # ... and without a selection they stand on the floor
    for pb in ob.pose.bones:
        pb.select = False
    scene.frame_set(4)
    assert bpy.ops.posediff.variations(blocking=True) == {"FINISHED"}, s.last_error
    out["variations_feet_above_floor_m"] = _feet_height(ob)
    assert abs(out["variations_feet_above_floor_m"]) <= 0.02

    # generate stands on the floor
    scene.frame_set(5)
    assert bpy.ops.posediff.generate(blocking=True) == {"FINISHED"}, s.last_error
    out["generate_feet_above_floor_m"] = _feet_height(ob)
    assert abs(out["generate_feet_above_floor_m"]) <= 0.02


@pytest.mark.parametrize("photo", ["image1.png", "image3.jpeg"])
def test_other_photos_stand_on_the_floor_and_line_up(addon, photo):  # noqa: F811
    _factory_scene()
    scene = bpy.context.scene
    scene.posediff.num_hypotheses, scene.posediff.previews = 4, False
    ob = add_rigify_metarig()
    path = ROOT / "samples" / photo
    assert bpy.ops.posediff.estimate(filepath=str(path), blocking=True) == {"FINISHED"}, scene.posediff.last_error
    out = RESULTS.setdefault(f"metarig {photo}", {})
    out["estimate_feet_above_floor_m"] = _feet_height(ob)
    med, worst, h = _lineup_px(ob, scene, path)
    out["estimate_lineup_median_px"], out["estimate_lineup_max_px"] = med, worst
    assert abs(out["estimate_feet_above_floor_m"]) <= 0.02
    assert med < 0.05 * h


def test_person_picker_two_people(addon, tmp_path):  # noqa: F811
    """Two people side by side (two sample photos joined): Find people lists them left to
    right; picking the right one estimates that person (the rig lines up with them)."""
    import cv2
    import numpy as np

    a, b = cv2.imread(str(ROOT / "samples" / "image2.jpeg")), cv2.imread(str(ROOT / "samples" / "image1.png"))
    both = tmp_path / "two_people.png"
    cv2.imwrite(str(both), np.hstack([a, b]))
    _factory_scene()
    scene = bpy.context.scene
    s = scene.posediff
    s.num_hypotheses, s.previews = 4, False
    ob = add_rigify_metarig()
    assert bpy.ops.posediff.find_people(filepath=str(both)) == {"FINISHED"}
    assert len(s.people) == 2
    assert s.people[0].box[0] < a.shape[1] <= s.people[1].box[0] + 5  # left to right
    s.people_index = 1  # the person on the right
    assert s.person == s.people[1].index
    assert bpy.ops.posediff.estimate(filepath=str(both), blocking=True) == {"FINISHED"}, s.last_error
    med, _worst, h = _lineup_px(ob, scene, both, person=s.person)
    RESULTS.setdefault("metarig two people (right)", {})["estimate_lineup_median_px"] = med
    assert med < 0.05 * h
    assert abs(_feet_height(ob)) <= 0.02


def test_wrong_preset_is_refused_before_saving(addon):  # noqa: F811
    _factory_scene()
    ob = build_bpy_named_rig("ue")
    bpy.context.view_layer.objects.active = ob
    assert bpy.ops.posediff.detect_mapping(preset="MIXAMO") == {"CANCELLED"}  # warned: "... not saved"
    assert "posediff_mapping" not in ob.keys()
    assert bpy.ops.posediff.detect_mapping(preset="MIXAMO", force=True) == {"FINISHED"}  # insisted
    assert "posediff_mapping" in ob.keys()
    del ob["posediff_mapping"]
    assert bpy.ops.posediff.detect_mapping(preset="AUTO") == {"FINISHED"}
    assert addon_module("blender_rig").get_mapping(ob)["chest"] == ["spine_02", "spine_03"]


def test_constraint_overriding_keys_is_reported(addon):  # noqa: F811
    _factory_scene()
    ob = build_bpy_named_rig("mixamo")
    bpy.context.view_layer.objects.active = ob
    c = ob.pose.bones["mixamorig:LeftForeArm"].constraints.new("COPY_ROTATION")
    c.target = ob
    c.subtarget = "mixamorig:Hips"
    assert bpy.ops.posediff.generate(blocking=True) == {"FINISHED"}
    msg = bpy.context.scene.posediff.last_message
    assert "overrides the keys of mixamorig:LeftForeArm (Copy Rotation constraint" in msg, msg


def test_zz_report():
    """Print and save the numbers measured above."""
    if not RESULTS:
        pytest.skip("no rig test ran")
    keys = ["estimate_feet_above_floor_m", "estimate_lineup_median_px", "estimate_lineup_max_px",
            "complete_pinned_max_move_m", "variations_fixed_max_move_m", "variations_elbow_wrist_max_move_m",
            "variations_elbow_wrist_feet_above_floor_m", "variations_elbow_wrist_leg_extension", "variations_feet_above_floor_m",
            "generate_feet_above_floor_m"]
    print("\n" + "\n".join(f"  col {i}: {k}" for i, k in enumerate(keys)))
    print("rig".ljust(27) + " ".join(f"col {i}".rjust(8) for i in range(len(keys))))
    for rig, r in RESULTS.items():
        print(rig.ljust(27) + " ".join(f"{r.get(k, float('nan')):8.4f}" for k in keys))
    out = ROOT / "out"
    out.mkdir(exist_ok=True)
    (out / "addon_world.json").write_text(json.dumps(RESULTS, indent=1))


def test_start_backend_defaults_to_this_checkouts_venv(addon):  # noqa: F811
    """With an empty 'Backend command' the installed add-on finds this checkout's .venv."""
    bp = addon_module("backend_process")
    assert addon.backend_command == ""
    assert bp.resolve_command("") == [str(ROOT / ".venv" / "bin" / "posediff")]
