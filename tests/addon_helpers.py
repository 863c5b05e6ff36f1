# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared helpers for the add-on tests (tests/test_addon_*.py): poses, synthetic rigs, bpy rigs."""

from __future__ import annotations

import json
import math
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def load_poses() -> dict[str, dict[str, list[float]]]:
    """Real poses (H3.6M S9, held-out subject, test-only fixture): name -> {joint: [x, y, z]}
    in metres, world frame Z up, pelvis at the origin."""
    data = json.loads((FIXTURES / "addon_poses.json").read_text())
    names = data["joint_names"]
    return {k: dict(zip(names, p)) for k, p in data["poses"].items()}


# Mixamo-like skeleton as (bone, parent, head joint, tail joint) over model-joint T-pose points;
# heads/tails in metres, Z up, facing -Y.
MIXAMO_BONES = [
    ("mixamorig:Hips", None, "pelvis", "spine_low"),
    ("mixamorig:Spine", "mixamorig:Hips", "spine_low", "spine"),
    ("mixamorig:Spine1", "mixamorig:Spine", "spine", "spine_up"),
    ("mixamorig:Spine2", "mixamorig:Spine1", "spine_up", "thorax"),
    ("mixamorig:Neck", "mixamorig:Spine2", "thorax", "neck"),
    ("mixamorig:Head", "mixamorig:Neck", "neck", "head"),
] + [
    b
    for side, S in (("left", "Left"), ("right", "Right"))
    for b in (
        (f"mixamorig:{S}Shoulder", "mixamorig:Spine2", "thorax", f"{side}_shoulder"),
        (f"mixamorig:{S}Arm", f"mixamorig:{S}Shoulder", f"{side}_shoulder", f"{side}_elbow"),
        (f"mixamorig:{S}ForeArm", f"mixamorig:{S}Arm", f"{side}_elbow", f"{side}_wrist"),
        (f"mixamorig:{S}Hand", f"mixamorig:{S}ForeArm", f"{side}_wrist", f"{side}_hand"),
        (f"mixamorig:{S}UpLeg", "mixamorig:Hips", f"{side}_hip", f"{side}_knee"),
        (f"mixamorig:{S}Leg", f"mixamorig:{S}UpLeg", f"{side}_knee", f"{side}_ankle"),
        (f"mixamorig:{S}Foot", f"mixamorig:{S}Leg", f"{side}_ankle", f"{side}_toe"),
        (f"mixamorig:{S}ToeBase", f"mixamorig:{S}Foot", f"{side}_toe", f"{side}_toe_end"),
    )
]


def mixamo_rest_points(height_scale: float = 1.0) -> dict[str, list[float]]:
    """T-pose points (Z up, facing -Y) for MIXAMO_BONES with proportions unlike the model's."""
    s = height_scale
    p = {
        "pelvis": [0, 0, 1.0], "spine_low": [0, 0, 1.1], "spine": [0, 0.01, 1.22], "spine_up": [0, 0.01, 1.34],
        "thorax": [0, 0, 1.45], "neck": [0, -0.01, 1.58], "head": [0, -0.01, 1.76],
    }
    for sign, side in ((1, "left"), (-1, "right")):
        p[f"{side}_shoulder"] = [sign * 0.17, 0.0, 1.43]
        p[f"{side}_elbow"] = [sign * 0.45, 0.02, 1.43]
        p[f"{side}_wrist"] = [sign * 0.70, 0.0, 1.43]
        p[f"{side}_hand"] = [sign * 0.80, 0.0, 1.43]
        p[f"{side}_hip"] = [sign * 0.09, 0.0, 0.95]
        p[f"{side}_knee"] = [sign * 0.09, -0.01, 0.52]
        p[f"{side}_ankle"] = [sign * 0.09, 0.02, 0.08]
        p[f"{side}_toe"] = [sign * 0.09, -0.12, 0.02]
        p[f"{side}_toe_end"] = [sign * 0.09, -0.2, 0.02]
    return {k: [c * s for c in v] for k, v in p.items()}


def synthetic_rig(seed: int = 0):
    """A pure-Python ``retarget.Rig`` of the Mixamo-like skeleton with random bone rolls."""
    from addon import linalg as la
    from addon import retarget as rt
    from addon.rig_presets import MIXAMO

    rng = random.Random(seed)
    pts = mixamo_rest_points()
    bones = {}
    for name, parent, h, t in MIXAMO_BONES:
        y = la.normalized(la.sub(pts[t], pts[h]))
        x0 = la.perpendicular(y)
        roll = rng.uniform(-math.pi, math.pi)
        x = la.matvec(la.axis_angle_matrix(y, roll), x0)
        z = la.cross(x, y)
        m = [[x[i], y[i], z[i]] for i in range(3)]
        bones[name] = rt.RestBone(name, parent, la.to4(m, pts[h]), la.norm(la.sub(pts[t], pts[h])))
    return rt.Rig(bones, {k: list(v) for k, v in MIXAMO.items()})


def build_bpy_mixamo_rig(name: str = "MixamoRig", y_up_fbx: bool = True):
    """A real Blender armature with Mixamo bone names, built like an FBX import: object rotated
    90 deg about X and scaled 0.01 with bones in centimetres, Y up. Returns the object."""
    import bpy

    pts = mixamo_rest_points()
    arm = bpy.data.armatures.new(name)
    ob = bpy.data.objects.new(name, arm)
    bpy.context.scene.collection.objects.link(ob)
    bpy.context.view_layer.objects.active = ob
    ob.select_set(True)
    if y_up_fbx:
        ob.rotation_euler = (math.pi / 2, 0, 0)
        ob.scale = (0.01, 0.01, 0.01)
        # world (x, y, z) = R_x(90) * 0.01 * local  =>  local = 100 * (x, z, -y)
        conv = lambda v: [100 * v[0], 100 * v[2], -100 * v[1]]  # noqa: E731
    else:
        conv = lambda v: list(v)  # noqa: E731
    bpy.ops.object.mode_set(mode="EDIT")
    eb = {}
    for bname, parent, h, t in MIXAMO_BONES:
        b = arm.edit_bones.new(bname)
        b.head, b.tail = conv(pts[h]), conv(pts[t])
        b.roll = 0.3 * len(eb)  # varied rolls
        if parent:
            b.parent = eb[parent]
            b.use_connect = (parent != "mixamorig:Hips" and h == [x for x in MIXAMO_BONES if x[0] == parent][0][3])
        eb[bname] = b
    bpy.ops.object.mode_set(mode="OBJECT")
    return ob


def add_rigify_metarig():
    """Enable the bundled Rigify add-on and add its human metarig; returns the armature object."""
    import bpy

    bpy.ops.preferences.addon_enable(module="rigify")
    bpy.ops.object.armature_human_metarig_add()
    return bpy.context.object


def rigify_generated_rig():
    """A new scene with the human metarig and the rig Rigify generates from it (``rig``, active;
    the metarig hidden); returns the generated armature object."""
    import bpy

    clear_scene()
    add_rigify_metarig()
    assert bpy.ops.pose.rigify_generate() == {"FINISHED"}
    ob = bpy.data.objects["rig"]
    bpy.data.objects["metarig"].hide_set(True)
    bpy.context.view_layer.objects.active = ob
    return ob


# ----------------------------------------------------------------------------- the installed add-on
REPO_MODULE = "posediff_test"


def metarig_scene(**settings):
    """An empty scene with a Rigify metarig, made active; ``settings`` set on ``scene.posediff``."""
    import bpy

    clear_scene()
    ob = add_rigify_metarig()
    bpy.context.view_layer.objects.active = ob
    for k, v in settings.items():
        setattr(bpy.context.scene.posediff, k, v)
    return ob


def build_zip() -> Path:
    """Build dist/posediff-<version>.zip with build.py's own function."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("posediff_build", ROOT / "build.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.build_zip()


def install_addon(directory: Path) -> str:
    """Install the built zip into a temporary user extensions repository and enable it.

    Resets Blender to factory settings first (this also drops earlier repositories).
    Returns the add-on's module name (``bl_ext.posediff_test.posediff``).
    """
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    zip_path = build_zip()
    repos = bpy.context.preferences.extensions.repos
    repo = repos.get(REPO_MODULE) if hasattr(repos, "get") else None
    if repo is None:
        repo = repos.new(name=REPO_MODULE, module=REPO_MODULE, custom_directory=str(directory), source="USER")
    res = bpy.ops.extensions.package_install_files(filepath=str(zip_path), repo=REPO_MODULE, enable_on_install=True)
    assert res == {"FINISHED"}, res
    module = f"bl_ext.{REPO_MODULE}.posediff"
    assert module in bpy.context.preferences.addons, [a.module for a in bpy.context.preferences.addons]
    return module


def clear_scene() -> None:
    """Remove objects, armatures, actions, cameras and images (keeps preferences and add-ons)."""
    import bpy

    for coll in (bpy.data.objects, bpy.data.armatures, bpy.data.actions, bpy.data.cameras, bpy.data.images):
        for item in list(coll):
            coll.remove(item)
    sc = bpy.context.scene
    sc.frame_set(1)
    if hasattr(sc, "posediff"):
        sc.posediff.hypotheses.clear()
        sc.posediff.last_error = ""


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Bone names of other rig families for MIXAMO_BONES (same skeleton, different naming).
def _vroid_name(b: str) -> str:
    n = b.split(":")[1]
    for side, c in (("Left", "L"), ("Right", "R")):
        if n.startswith(side):
            part = {"Shoulder": "Shoulder", "Arm": "UpperArm", "ForeArm": "LowerArm", "Hand": "Hand",
                    "UpLeg": "UpperLeg", "Leg": "LowerLeg", "Foot": "Foot", "ToeBase": "ToeBase"}[n[len(side):]]
            return f"J_Bip_{c}_{part}"
    return "J_Bip_C_" + {"Hips": "Hips", "Spine": "Spine", "Spine1": "Chest", "Spine2": "UpperChest",
                         "Neck": "Neck", "Head": "Head"}[n]


def _ue_name(b: str) -> str:
    n = b.split(":")[1]
    for side, c in (("Left", "l"), ("Right", "r")):
        if n.startswith(side):
            part = {"Shoulder": "clavicle", "Arm": "upperarm", "ForeArm": "lowerarm", "Hand": "hand",
                    "UpLeg": "thigh", "Leg": "calf", "Foot": "foot", "ToeBase": "ball"}[n[len(side):]]
            return f"{part}_{c}"
    return {"Hips": "pelvis", "Spine": "spine_01", "Spine1": "spine_02", "Spine2": "spine_03", "Neck": "neck_01",
            "Head": "head"}[n]


RIG_NAMING = {"mixamo": lambda b: b, "vroid": _vroid_name, "ue": _ue_name}


def build_bpy_named_rig(style: str, name: str = "", y_up_fbx: bool = False):
    """Like ``build_bpy_mixamo_rig`` with the bone names of ``style`` ("mixamo", "vroid" or
    "ue": the UE4 mannequin's pelvis/spine_01..03/neck_01/thigh_l...)."""
    ob = build_bpy_mixamo_rig(name or f"{style}_rig", y_up_fbx=y_up_fbx)
    rename = RIG_NAMING[style]
    for b in list(ob.data.bones):
        b.name = rename(b.name)
    return ob


def serve_for_tests(command: list, cwd: Path, log_path: Path, args=()):
    """Generator for a pytest fixture: ``posediff serve --port 0`` through the add-on's own launcher
    (port read from the ready line) with a random token; yields ``(url, token)``, stops the server after.

    Fails the test (``pytest.fail``) with the launcher's message when the server does not come up.
    """
    import secrets

    import pytest

    from addon.backend_process import BackendStartError, launch

    token = secrets.token_hex(16)
    srv = launch(command, port=0, args=list(args), token=token, cwd=cwd, log_path=log_path)
    try:
        url = srv.wait_ready(120)
    except BackendStartError as e:
        srv.stop()
        pytest.fail(str(e))
    yield url, token
    srv.stop()


def addon_against(directory: Path, server: tuple[str, str]):
    """Generator for a pytest fixture: install and enable the built add-on (:func:`install_addon`),
    point its preferences at ``server`` = ``(url, token)``; yields ``(module name, preferences)``,
    disables the add-on after."""
    import bpy

    module = install_addon(directory)
    prefs = bpy.context.preferences.addons[module].preferences
    prefs.backend_url, prefs.token = server
    yield module, prefs
    bpy.ops.preferences.addon_disable(module=module)
