# SPDX-License-Identifier: GPL-3.0-or-later
"""The Pose assist modal operator's session in real Blender against a live ``posediff serve``.

Background Blender has no event loop, so the tests drive :class:`AssistSession` (what the modal
operator calls on each timer tick) with ``update(wait=True)``: move a pinned bone, update, check
the pins stayed where they were put, the other bones followed, apply keys, cancel restores.
"""

from __future__ import annotations

import math

import pytest

bpy = pytest.importorskip("bpy")

import test_addon_live as live  # noqa: E402
from addon_helpers import rigify_generated_rig  # noqa: E402

# the live add-on tests' fixtures: one server and one installed add-on per module
server, addon, rig = live.server, live.addon, live.rig
_keys, addon_module = live._keys, live.addon_module

PINS = ["hand.L", "foot.R"]


def _session(rig, pins=PINS):
    oa = addon_module("operators_assist")
    prefs = addon_module("preferences")
    return oa, oa.AssistSession(rig, set(pins), prefs.make_client(60.0), seed=0)


def _world_joints(rig):
    return addon_module("blender_rig").posed_joints_world(rig)


def _bend(rig, name, angle):
    pb = rig.pose.bones[name]
    pb.rotation_mode = "XYZ"
    pb.rotation_euler = (angle, 0.0, 0.0)
    bpy.context.view_layer.update()


def _basis(rig):
    return {pb.name: [c for r in pb.matrix_basis for c in r] for pb in rig.pose.bones}


def test_assist_follows_pins_then_apply_keys_the_pose(rig):
    scene = bpy.context.scene
    scene.frame_set(3)
    oa, s = _session(rig)
    # pins at rest: the first update changes nothing (warm start from the rig as it is)
    s.update(wait=True)
    before = _basis(rig)
    # the animator moves the pinned hand: bend it at the wrist, i.e. move the hand end
    moved_joint = "left_hand"
    for step in range(1, 4):
        _bend(rig, "hand.L", 0.15 * step)
        target = _world_joints(rig)[moved_joint]
        assert s.update(wait=True)
        got = _world_joints(rig)[moved_joint]
        assert math.dist(got, target) <= 0.01, (step, got, target)  # pinned joints stay (<= 1 cm)
    after = _basis(rig)
    followed = [n for n in after if n not in PINS and after[n] != before[n]]
    assert len(followed) >= 5, followed  # the unpinned body moved
    keys_before = _keys(rig)
    keyed = s.apply()
    assert "hand.L" in keyed and len(keyed) >= 5
    new = {k: v for k, v in _keys(rig).items() if k not in keys_before}
    assert new and all(any(abs(f - 3) < 1e-3 for f, _ in ks) for ks in new.values())


def test_cancel_restores_pose_and_keys(rig):
    scene = bpy.context.scene
    scene.frame_set(1)
    pb = rig.pose.bones["upper_arm.R"]
    pb.rotation_mode = "XYZ"
    pb.rotation_euler = (0.3, 0.0, 0.1)
    pb.keyframe_insert("rotation_euler", frame=1, group="upper_arm.R")
    bpy.context.view_layer.update()
    keys0, basis0 = _keys(rig), _basis(rig)
    oa, s = _session(rig)
    _bend(rig, "hand.L", 0.5)
    assert s.update(wait=True)
    assert _basis(rig) != basis0
    s.restore()
    assert _keys(rig) == keys0
    b = _basis(rig)
    for name, m in basis0.items():
        assert b[name] == pytest.approx(m, abs=1e-6), name


def test_bad_input_is_refused_and_leaves_the_rig(rig):
    oa = addon_module("operators_assist")
    prefs = addon_module("preferences")
    basis0 = _basis(rig)
    with pytest.raises(ValueError, match="no pinned bones"):
        oa.AssistSession(rig, set(), prefs.make_client(), seed=0)
    with pytest.raises(ValueError, match="not in the bone mapping"):
        oa.AssistSession(rig, {"no_such_bone"}, prefs.make_client(), seed=0)
    _, s = _session(rig)
    pb = rig.pose.bones["hand.L"]
    pb.rotation_mode = "XYZ"
    pb.rotation_euler = (float("nan"), 0.0, 0.0)
    bpy.context.view_layer.update()
    with pytest.raises(ValueError, match="finite"):
        s.update(wait=True)
    pb.rotation_euler = (0.0, 0.0, 0.0)
    bpy.context.view_layer.update()
    b = _basis(rig)
    for name, m in basis0.items():
        if name != "hand.L":
            assert b[name] == pytest.approx(m, abs=1e-6), name


def test_background_updates_drop_stale_pins(rig):
    """Without waiting: several pin moves while a request is in flight send only the newest."""
    import time

    oa, s = _session(rig)
    sent = []
    real = s._send
    s._send = lambda req: (sent.append(req), real(req))[1]
    for step in range(1, 6):
        _bend(rig, "hand.L", 0.1 * step)
        s.update()
    deadline = time.monotonic() + 60
    while (s._worker is not None or s._answer is not None) and time.monotonic() < deadline:
        s.update()
        time.sleep(0.02)
    assert s.updates >= 1
    assert len(sent) < 5  # stale pins were replaced before being sent
    last = sent[-1]["body"]["known"]
    assert s.last_pins is not None and last


def test_a_rigify_rigs_ik_hand_and_foot_are_pins_the_arm_reaches(addon):  # noqa: F811
    """Rigify animators move the IK controls: a selected ``hand_ik`` / ``foot_ik`` is a pin on the
    wrist / ankle; the session poses the limb's FK chain so that the deform hand reaches the moved
    control (within 1 cm) while the foot stays on its control."""
    from mathutils import Vector

    ob = rigify_generated_rig()
    oa, prefs = addon_module("operators_assist"), addon_module("preferences")
    for pb in ob.pose.bones:
        pb.select = pb.name in ("hand_ik.L", "foot_ik.R")
    pins = oa.pinned_bones(ob, 1)
    assert pins == {"hand_ik.L", "foot_ik.R"}
    s = oa.AssistSession(ob, pins, prefs.make_client(60.0), seed=0)
    assert s.joints == {"left_wrist", "right_ankle"}
    s.update(wait=True)
    for step in range(1, 4):
        ob.pose.bones["hand_ik.L"].location = (-0.06 * step, -0.08 * step, 0.08 * step)  # in reach (the arm is straight at rest)
        bpy.context.view_layer.update()
        assert s.update(wait=True)
        mw = ob.matrix_world
        for ctrl, deform in (("hand_ik.L", "DEF-hand.L"), ("foot_ik.R", "DEF-foot.R")):
            off = (mw @ ob.pose.bones[deform].head - mw @ Vector(ob.pose.bones[ctrl].head)).length
            assert off < 0.01, (step, ctrl, off)


def test_a_rigify_rig_in_ik_is_assisted_through_its_fk_controls_without_a_jump(addon):  # noqa: F811
    """A rig generated by Rigify, limbs in IK (its default) and posed by moving an IK hand: the
    session snaps the FK controls onto the limbs as they are and switches them to FK, so nothing
    jumps and the deform bones follow what the session poses (in IK they would ignore it); cancel
    puts the switches back to IK, apply keys them at FK."""
    from mathutils import Vector

    ob = rigify_generated_rig()
    switch = ob.pose.bones["upper_arm_parent.L"]
    assert switch["IK_FK"] == 0.0  # Rigify's default: IK
    ob.pose.bones["hand_ik.L"].location = (0.15, -0.2, 0.25)  # the animator has posed the arm with IK
    bpy.context.view_layer.update()

    def deform():
        bpy.context.view_layer.update()
        return {pb.name: ob.matrix_world @ pb.tail for pb in ob.pose.bones if pb.name.startswith("DEF-")}

    posed = deform()
    pins = {"hand_fk.L", "foot_fk.R"}
    oa, prefs = addon_module("operators_assist"), addon_module("preferences")
    s = oa.AssistSession(ob, pins, prefs.make_client(60.0), seed=0)
    assert switch["IK_FK"] == 1.0 and s.switched
    jump = max((deform()[n] - v).length for n, v in posed.items())
    assert jump < 0.002, jump  # snapped: switching to FK moved nothing
    s.update(wait=True)
    snapped = _basis(ob)
    _bend(ob, "hand_fk.L", 0.6)  # the animator moves the pinned hand
    target = Vector(addon_module("blender_rig").posed_joints_world(ob)["left_hand"])
    assert s.update(wait=True)
    now = deform()
    got = Vector(addon_module("blender_rig").posed_joints_world(ob)["left_hand"])
    assert (got - target).length < 0.01, (got - target).length  # the pin kept
    hand = ob.matrix_world @ ob.pose.bones["DEF-hand.L"].head
    assert (hand - ob.matrix_world @ ob.pose.bones["hand_fk.L"].head).length < 0.002  # the deform bones follow FK
    after = _basis(ob)
    followed = [n for n in addon_module("blender_rig").mapped_bones(ob) if n not in pins and after[n] != snapped[n]]
    assert len(followed) >= 5, followed  # the unpinned body was posed, through the FK controls the rig now follows
    assert now.keys() == posed.keys()
    s.restore()
    assert switch["IK_FK"] == 0.0 and max((deform()[n] - v).length for n, v in posed.items()) < 1e-4

    bpy.context.scene.frame_set(3)
    s = oa.AssistSession(ob, pins, prefs.make_client(60.0), seed=0)
    s.update(wait=True)
    s.apply()
    keyed = _keys(ob)
    assert any('"upper_arm_parent.L"' in p and "IK_FK" in p and any(abs(f - 3) < 1e-3 and v == 1.0 for f, v in ks)
               for (p, _), ks in keyed.items()), sorted(p for p, _ in keyed)
