# SPDX-License-Identifier: GPL-3.0-or-later
"""``tools/demo.py`` end to end (what ``python3 build.py demo`` runs): the real backend process,
the real detector on ``samples/image2.jpeg``, real Blender (bpy) and the add-on's retargeting.

The demo runs once (about 10 s) as a subprocess writing into a temporary folder; the .blend is
then opened in a second, fresh Python process so that this test session's Blender state is
left alone.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
POSEDIFF = ROOT / ".venv" / "bin" / "posediff"
PHOTO = ROOT / "samples" / "image2.jpeg"
KNEES_ELBOWS = ("left_knee_flexion", "right_knee_flexion", "left_elbow_flexion", "right_elbow_flexion")

# Run in a fresh interpreter: open the demo's .blend, read the keyed armature back at frame 1.
READ_BLEND = r"""
import json, sys
sys.path.insert(0, sys.argv[2])
sys.path.insert(0, sys.argv[2] + "/tools")
import bpy
from addon import blender_rig
from demo_check import compare_angles
bpy.ops.wm.open_mainfile(filepath=sys.argv[1])
arms = [o for o in bpy.data.objects if o.type == "ARMATURE"]
ob = arms[0]
ad = ob.animation_data
res = json.loads(open(sys.argv[3]).read())
names = res["joint_names"]
k = res["applied"]["hypothesis"]
hyp = dict(zip(names, res["frames"][res["applied"]["frame"]]["hypotheses"][k]["joints"]))
bpy.context.scene.frame_set(res["applied"]["blender_frame"])
c = compare_angles(blender_rig.posed_joints_world(ob), hyp)
print(json.dumps({
    "armatures": len(arms),
    "has_action": bool(ad and ad.action),
    "keyed_bones_frame1": sorted(blender_rig.keyed_bones(ob, 1)),
    "keyed_bones_frame2": sorted(blender_rig.keyed_bones(ob, 2)),
    "frame_range": [bpy.context.scene.frame_start, bpy.context.scene.frame_end],
    "camera": bpy.context.scene.camera.name if bpy.context.scene.camera else None,
    "background_images": len(bpy.context.scene.camera.data.background_images) if bpy.context.scene.camera else 0,
    "max_abs_diff_deg": c["max_abs_diff_deg"],
}))
"""


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    if not POSEDIFF.exists():
        pytest.fail(f"{POSEDIFF} missing: run 'python3 build.py setup' first")
    out = tmp_path_factory.mktemp("demo")
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "demo.py"), "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    return out, proc


def test_demo_writes_keyed_rig_picture_and_response(demo_run):
    out, proc = demo_run
    assert proc.returncode == 0, f"demo failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    for name in ("demo.blend", "demo.json", "demo.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name

    # The estimate response, plus which hypothesis was keyed.
    res = json.loads((out / "demo.json").read_text())
    assert len(res["joint_names"]) >= 17 and "pelvis" in res["joint_names"]
    hyps = res["frames"][0]["hypotheses"]
    assert len(hyps) == 20
    assert res["applied"]["frame"] == 0 and res["applied"]["blender_frame"] == 1
    assert 0 <= res["applied"]["hypothesis"] < len(hyps)

    # Limb angles of the keyed rig match the applied hypothesis.
    check = res["check"]
    assert check["hypothesis"] == res["applied"]["hypothesis"]
    assert set(KNEES_ELBOWS) | {"hip_spread", "shoulder_spread"} <= set(check["angles_deg"])
    for name, row in check["angles_deg"].items():
        assert abs(row["rig"] - row["hypothesis"]) <= 5.0, (name, row)
    assert check["max_abs_diff_deg"] <= 5.0 and check["ok"]
    assert len(check["all_keyed_frames"]) == 20 and check["all_ok"]
    assert "limb angles" in proc.stdout and "left_knee_flexion" in proc.stdout

    # The picture: the overlay panel and the render panel side by side, each at least photo size.
    photo_w, photo_h = Image.open(PHOTO).size
    png = Image.open(out / "demo.png")
    assert png.width >= 2 * photo_w and png.height >= photo_h
    render = Image.open(out / "demo_render.png")
    assert render.size == (photo_w, photo_h) and render.mode == "RGBA"
    covered = float((np.asarray(render)[..., 3] > 0).mean())
    assert 0.01 < covered < 0.5, f"rig covers {covered:.1%} of the render"


def test_demo_blend_holds_animated_armature(demo_run):
    out, proc = demo_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = subprocess.run([sys.executable, "-c", READ_BLEND, str(out / "demo.blend"), str(ROOT), str(out / "demo.json")],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    info = json.loads(r.stdout.strip().splitlines()[-1])
    assert info["armatures"] == 1 and info["has_action"]
    assert len(info["keyed_bones_frame1"]) >= 10, info["keyed_bones_frame1"]
    assert {"thigh.L", "shin.L", "upper_arm.R", "forearm.R"} <= set(info["keyed_bones_frame1"])
    assert len(info["keyed_bones_frame2"]) >= 10
    assert info["frame_range"] == [1, 20]
    assert info["camera"] and info["background_images"] >= 1
    # The pose stored in the file (evaluated from its keys) is the applied hypothesis.
    assert info["max_abs_diff_deg"] <= 5.0
