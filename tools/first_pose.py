# SPDX-License-Identifier: GPL-3.0-or-later
"""The README's "first pose in a minute", done by the installed add-on in real Blender (bpy):
factory startup scene, Add > Armature > Human (Meta-Rig), PoseDiff > Estimate from photo with
``samples/image2.jpeg``, default settings. Writes ``samples/first_pose.png``: the rig through the
fitted "Photo camera" over the photo | the same rig in the factory scene, seen from the factory
camera, standing on the floor (cube hidden in the render; the metarig is added at the origin,
inside it) — and prints the operator's message.

Run: ``.venv/bin/python tools/first_pose.py [--out samples/first_pose.png]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "tools", ROOT / "tests"):
    sys.path.insert(0, str(p))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--photo", type=Path, default=ROOT / "samples" / "image2.jpeg")
    ap.add_argument("--out", type=Path, default=ROOT / "samples" / "first_pose.png")
    args = ap.parse_args(argv)
    import bpy
    from addon_helpers import add_rigify_metarig, install_addon
    from demo_backend import running_backend
    from demo_image import load_photo, rig_panel, side_by_side
    from demo_scene import add_bone_shapes, render_workbench
    from PIL import Image

    tmp = Path(tempfile.mkdtemp(prefix="posediff-first-pose-"))
    with running_backend(ROOT / ".venv" / "bin" / "posediff", tmp / "serve.log", ROOT) as client:
        module = install_addon(tmp / "ext")
        prefs = bpy.context.preferences.addons[module].preferences
        prefs.backend_url, prefs.token = client.url, client.token
        bpy.ops.wm.read_homefile(use_factory_startup=True, use_empty=False)
        factory_cam = bpy.data.objects["Camera"]
        ob = add_rigify_metarig()
        bpy.ops.posediff.estimate(filepath=str(args.photo), blocking=True)
        s = bpy.context.scene.posediff
        if s.last_error:
            print(f"first_pose: {s.last_error}", file=sys.stderr)
            return 1
        print(f"[first_pose] {s.last_message}")
        add_bone_shapes(ob)
        scene = bpy.context.scene
        bpy.data.objects["Cube"].hide_render = True
        render_workbench(tmp / "photo_cam.png", 1)
        photo_cam = scene.camera
        # a 3/4 view of the rig on a floor plane at the rig's floor height (the factory camera's
        # direction, closer)
        from mathutils import Vector

        from addon import blender_rig

        bpy.ops.mesh.primitive_plane_add(size=3.0, location=(0.0, 0.0, blender_rig.floor_height(ob)))
        mat = bpy.data.materials.new("floor")
        mat.diffuse_color = (0.55, 0.55, 0.5, 1.0)
        bpy.context.object.data.materials.append(mat)
        side_cam = bpy.data.objects.new("Side view", factory_cam.data.copy())
        scene.collection.objects.link(side_cam)
        target = Vector(blender_rig.posed_joints_world(ob)["pelvis"])
        d = (factory_cam.location - target).normalized()
        side_cam.location = target + d * 4.2
        side_cam.rotation_euler = (-d).to_track_quat("-Z", "Y").to_euler()
        scene.camera = side_cam
        render_workbench(tmp / "factory_cam.png", 1)
        scene.camera = photo_cam
        w, h = scene.render.resolution_x, scene.render.resolution_y
    photo = load_photo(args.photo, w, h)
    side = Image.open(tmp / "factory_cam.png").convert("RGBA")
    bg = Image.new("RGBA", side.size, (60, 60, 60, 255))
    side = Image.alpha_composite(bg, side).convert("RGB")
    img = side_by_side([rig_panel(photo, tmp / "photo_cam.png"), side],
                       ["through the fitted 'Photo camera'", "from the factory camera's side: on the floor"],
                       "Estimate from photo, default settings: " + s.last_message.split("; ")[-1])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    img.save(args.out)
    print(f"[first_pose] wrote {args.out} ({img.width}x{img.height})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
