"""Rigify limbs kept in IK (*Rigify limbs* = Keep in IK): in real bpy 5.0, against a live backend,
on a rig Rigify generates from the human metarig. The keyed FK pose is carried onto the IK
controls by Rigify's own IK->FK snap, so with the limbs left in IK their ``ORG-`` bones (which the
deform bones follow) lie on the keyed FK controls: the wrists, hands, ankles and feet within 1 mm,
the elbows and knees within 2 cm (Rigify's IK knee is a hinge, the FK one is not; its snap
searches the twist: 3-14 mm measured); without the rig's UI script the limbs are
switched to FK as by default and the message says why."""

from __future__ import annotations

import pytest

bpy = pytest.importorskip("bpy")

from addon_helpers import rigify_generated_rig  # noqa: E402
from test_addon_live import _keys, addon, addon_module, server  # noqa: E402, F401
from test_addon_video import _write_video  # noqa: E402

SWITCHES = ("upper_arm_parent.L", "upper_arm_parent.R", "thigh_parent.L", "thigh_parent.R")
IK_CONTROLS = ("hand_ik.L", "hand_ik.R", "upper_arm_ik.L", "foot_ik.L", "foot_ik.R", "thigh_ik.R", "toe_ik.L")


def _org_off_fk(ob, parts=("forearm", "hand", "shin", "foot")) -> float:
    """Largest distance (m, world) between a limb bone's ``ORG-`` tail and its FK control's tail
    (default: the wrists, hands, ankles and feet; ``upper_arm`` / ``thigh``: the elbows and knees)."""
    mw = ob.matrix_world
    return max(((mw @ ob.pose.bones[f"{p}_fk.{s}"].tail) - (mw @ ob.pose.bones[f"ORG-{p}.{s}"].tail)).length
               for s in "LR" for p in parts)


def _elbows_knees_off_fk(ob) -> float:
    return _org_off_fk(ob, ("upper_arm", "thigh"))


def _keyed_frames(ob, bone: str, prop: str) -> set[int]:
    path = f'pose.bones["{bone}"]' + (prop if prop.startswith("[") else "." + prop)
    return {round(f) for (p, _), ks in _keys(ob).items() if p == path for f, _ in ks}


def test_a_generated_pose_keyed_on_a_rigify_rig_can_keep_its_limbs_in_ik(addon):  # noqa: F811
    ob = rigify_generated_rig()
    scene = bpy.context.scene
    s = scene.posediff
    s.num_generate, s.seed, s.previews, s.rigify_limbs = 2, 0, False, "KEEP"
    scene.frame_set(4)
    assert bpy.ops.posediff.generate(blocking=True) == {"FINISHED"}, s.last_error
    assert "kept upper_arm_parent.L" in s.last_message and "in IK" in s.last_message, s.last_message
    assert "from IK to FK" not in s.last_message
    for sw in SWITCHES:
        assert ob.pose.bones[sw]["IK_FK"] == 0.0 and 4 in _keyed_frames(ob, sw, '["IK_FK"]')
    for b in IK_CONTROLS:
        assert 4 in _keyed_frames(ob, b, "location"), b
    scene.frame_set(5)
    scene.frame_set(4)  # IK follows the pose: the limbs are where the FK keys put them
    assert _org_off_fk(ob) < 1e-3 and _elbows_knees_off_fk(ob) < 0.02

    # the snap is Rigify's (its operator, twist fitted in closed form instead of searched): both agree
    org = {pb.name: ob.matrix_world @ pb.tail for pb in ob.pose.bones if pb.name.startswith("ORG-")}
    addon_module("rigify_ik").snap_ik(bpy.context, ob, list(SWITCHES), keyframe=False, fast=False)
    assert max((ob.matrix_world @ ob.pose.bones[n].tail - v).length for n, v in org.items()) < 2e-3

    # clicking another hypothesis previews it in IK too (unkeyed)
    s.hypothesis_index = 1
    assert s.last_error == ""
    assert all(ob.pose.bones[sw]["IK_FK"] == 0.0 for sw in SWITCHES)
    assert _org_off_fk(ob) < 1e-3 and _elbows_knees_off_fk(ob) < 0.02

    # the default switches the limbs to FK, as before
    s.rigify_limbs = "FK"
    scene.frame_set(6)
    assert bpy.ops.posediff.generate(blocking=True) == {"FINISHED"}, s.last_error
    assert all(ob.pose.bones[sw]["IK_FK"] == 1.0 for sw in SWITCHES) and "from IK to FK" in s.last_message

    # a rig whose UI script is not running (a .blend opened with Auto Run Python Scripts off):
    # the IK snap does not exist, the limbs go to FK, and the message says why and what to do
    ob = rigify_generated_rig()  # a new rig, in IK, no keys
    bpy.utils.unregister_class(getattr(bpy.types, f"POSE_OT_rigify_limb_ik2fk_{ob.data['rig_id']}"))
    s = bpy.context.scene.posediff
    s.rigify_limbs = "KEEP"
    assert bpy.ops.posediff.generate(blocking=True) == {"FINISHED"}, s.last_error
    assert "could not keep the limbs in IK" in s.last_message and "Auto Run Python Scripts" in s.last_message
    assert all(ob.pose.bones[sw]["IK_FK"] == 1.0 for sw in SWITCHES) and _org_off_fk(ob) < 1e-3


def test_a_clip_keyed_on_a_rigify_rig_can_keep_its_limbs_in_ik(addon, tmp_path):  # noqa: F811
    ob = rigify_generated_rig()
    scene = bpy.context.scene
    scene.posediff.rigify_limbs = "KEEP"
    clip = tmp_path / "walk.mp4"
    _write_video(clip, 3, 10.0)
    scene.frame_set(1)
    r = bpy.ops.posediff.estimate_video(filepath=str(clip), background=False, blocking=True)
    assert r == {"FINISHED"}, scene.posediff.last_error
    assert "kept upper_arm_parent.L" in scene.posediff.last_message, scene.posediff.last_message
    for f in (1, 2, 3):
        assert f in _keyed_frames(ob, "foot_ik.L", "location") and f in _keyed_frames(ob, "hand_ik.R", "location")
        scene.frame_set(f)
        assert all(ob.pose.bones[sw]["IK_FK"] == 0.0 for sw in SWITCHES)
        assert _org_off_fk(ob) < 1e-3 and _elbows_knees_off_fk(ob) < 0.02, f


def test_pose_assist_on_a_rigify_rig_in_ik_can_key_back_in_ik(addon):  # noqa: F811
    """Pose assist poses the FK controls (the limbs switched to FK for the session); with Keep in
    IK, apply snaps the IK controls onto the result, keys them and puts the limbs back in IK."""
    ob = rigify_generated_rig()
    scene = bpy.context.scene
    scene.posediff.rigify_limbs = "KEEP"
    scene.frame_set(3)
    oa, prefs = addon_module("operators_assist"), addon_module("preferences")
    s = oa.AssistSession(ob, {"hand_fk.L", "foot_fk.R"}, prefs.make_client(60.0), seed=0)
    assert all(ob.pose.bones[sw]["IK_FK"] == 1.0 for sw in SWITCHES)  # FK for the session
    ob.pose.bones["hand_fk.L"].rotation_mode = "XYZ"
    ob.pose.bones["hand_fk.L"].rotation_euler = (0.5, 0.2, 0.0)
    bpy.context.view_layer.update()
    assert s.update(wait=True)
    s.apply()
    for sw in SWITCHES:
        assert ob.pose.bones[sw]["IK_FK"] == 0.0 and 3 in _keyed_frames(ob, sw, '["IK_FK"]')
    assert 3 in _keyed_frames(ob, "hand_ik.L", "location")
    scene.frame_set(4)
    scene.frame_set(3)
    assert _org_off_fk(ob) < 1e-3 and _elbows_knees_off_fk(ob) < 0.02


def _posed_in_ik(ob):
    """The animator's pose on a rig in IK: the left hand and right foot moved by their IK controls
    (the FK controls untouched)."""
    pb = ob.pose.bones
    pb["hand_ik.L"].location = (0.15, -0.2, 0.25)
    pb["foot_ik.R"].location = (0.1, -0.3, 0.2)
    bpy.context.view_layer.update()
    mw = ob.matrix_world
    return {n: (mw @ pb[n].head).copy() for n in ("DEF-hand.L", "DEF-forearm.L", "DEF-foot.R", "DEF-shin.R")}


def _moved(ob, before) -> float:
    bpy.context.view_layer.update()
    return max((ob.matrix_world @ ob.pose.bones[n].head - v).length for n, v in before.items())


def test_complete_on_a_rigify_rig_in_ik_keeps_the_limbs_its_ik_controls_set(addon):  # noqa: F811
    """Rigify's limbs are in IK by default, so the animator poses hands and feet with the IK
    controls, which are not in the bone mapping: keyed, they count as their limbs' FK controls,
    read where the limbs show (before: 'no known bones'), and stay there (before: from the FK rest)."""
    ob = rigify_generated_rig()
    scene = bpy.context.scene
    s = scene.posediff
    s.num_hypotheses, s.previews = 4, False
    before = _posed_in_ik(ob)
    fk = {n: ob.pose.bones[n].matrix_basis.copy() for n in ("upper_arm_fk.L", "hand_fk.L", "thigh_fk.R")}
    scene.frame_set(1)
    for n in ("hand_ik.L", "foot_ik.R"):
        ob.pose.bones[n].keyframe_insert("location", frame=1)
    assert bpy.ops.posediff.complete(blocking=True) == {"FINISHED"}, s.last_error
    assert "completed from 6 keyed bones" in s.last_message, s.last_message  # both limbs' FK chains
    assert _moved(ob, before) < 0.01
    assert any(ob.pose.bones[n].matrix_basis != m for n, m in fk.items())  # now carried by the FK keys

    # variations of the pose as it shows, the selected IK hand kept; a refused one reads and restores
    ob = rigify_generated_rig()
    s = bpy.context.scene.posediff
    s.num_generate, s.previews, s.strength = 2, False, 0.2
    before = _posed_in_ik(ob)
    fk = {pb.name: pb.matrix_basis.copy() for pb in ob.pose.bones if "_fk." in pb.name}
    for pb in ob.pose.bones:
        pb.select = True
    with pytest.raises(RuntimeError, match="mapped bones are selected"):
        bpy.ops.posediff.variations(blocking=True)
    assert all(ob.pose.bones[n].matrix_basis == m for n, m in fk.items())
    for pb in ob.pose.bones:
        pb.select = pb.name == "hand_ik.L"
    assert bpy.ops.posediff.variations(blocking=True) == {"FINISHED"}, s.last_error
    assert "3 selected bones kept in place" in s.last_message, s.last_message
    mw = ob.matrix_world
    assert (mw @ ob.pose.bones["DEF-hand.L"].head - before["DEF-hand.L"]).length < 0.01
