# SPDX-License-Identifier: GPL-3.0-or-later
"""The demo's Blender scene (real bpy): Rigify metarig, a camera matching the photo, the
estimate's hypotheses keyed on the rig through the add-on's retargeting, a Workbench render.

Frames: the backend's camera frame is OpenCV (x right, y down, z forward, metres); a Blender
camera's local frame is ``diag(1, -1, -1)`` of it (``addon/camera_math.py``). The demo camera
stands at the world origin, level camera looking along world +Y, tilted by the best
hypothesis' estimated pitch and roll, so the rig stands upright in the world (Z up).

Armatures do not show up in final renders, so the rig gets a skin of octahedral bone shapes
(one mesh, one vertex group per bone, Armature modifier): the render shows the posed rig.
"""

from __future__ import annotations

import math
from pathlib import Path

import bmesh
import bpy
from mathutils import Matrix, Vector

from addon import blender_rig, camera_math
from addon import linalg as la
from addon import results as addon_results
from addon import skeleton as sk
from addon.rig_presets import RIGIFY_METARIG

#: Sensor width used for the camera (mm); with HORIZONTAL fit it spans the image width.
SENSOR_WIDTH_MM = 36.0
#: Colours of the bone shapes (linear RGBA), as the detector overlay's: left, right, centre.
SIDE_COLOURS = {"L": (1.0, 0.26, 0.0, 1.0), "R": (0.0, 0.4, 1.0, 1.0), "C": (0.85, 0.85, 0.85, 1.0)}
#: Unmapped metarig bones that are drawn too (they follow their mapped parents).
EXTRA_SHAPES = ("toe.L", "toe.R")


def reset_scene() -> None:
    """Empty factory scene (no objects), frame 1."""
    bpy.ops.wm.read_factory_settings(use_empty=True)


def add_metarig():
    """Enable the bundled Rigify add-on, add its human metarig and save the Rigify-metarig bone
    mapping (``addon.rig_presets.RIGIFY_METARIG``) on it.

    Returns:
        the armature object (at the world origin, metres, Z up, facing -Y).
    Raises:
        RuntimeError: Rigify could not be enabled.
    """
    if bpy.ops.preferences.addon_enable(module="rigify") != {"FINISHED"}:
        raise RuntimeError("could not enable the bundled 'rigify' add-on")
    bpy.ops.object.armature_human_metarig_add()
    ob = bpy.context.object
    blender_rig.set_mapping(ob, RIGIFY_METARIG)
    blender_rig.check_armature(ob)
    return ob


# ----------------------------------------------------------------------------- camera
def camera_matrix_world(pitch_deg: float, roll_deg: float) -> list[list[float]]:
    """4x4 world matrix of a Blender camera at the origin looking along world +Y, pitched
    down by ``pitch_deg`` and rolled by ``roll_deg`` (degrees, as the backend's
    ``camera_pitch_deg``/``camera_roll_deg``; ``backend.camera.tilt_rotation``).

    ``R_world<-blender = R_world->opencv^T @ diag(1, -1, -1)``.
    """
    from backend.camera import tilt_rotation

    r = tilt_rotation(math.radians(pitch_deg), math.radians(roll_deg))  # world -> OpenCV camera
    m = r.T @ [[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]]
    return [[float(m[i][0]), float(m[i][1]), float(m[i][2]), 0.0] for i in range(3)] + [[0.0, 0.0, 0.0, 1.0]]


def add_photo_camera(camera: dict, photo: Path, pitch_deg: float = 0.0, roll_deg: float = 0.0):
    """A perspective camera reproducing the backend's intrinsics, the photo as its background.

    Args:
        camera: the response's ``frames[i].camera``: ``fx, fy, cx, cy, width, height`` (pixels);
            square pixels are assumed (``fx`` is used; a warning is printed if ``fy`` differs).
        photo: the photo (shown as the camera background image, packed into the .blend).
        pitch_deg, roll_deg: camera tilt (degrees), see ``camera_matrix_world``.
    Returns:
        the camera object (also the scene camera; render resolution = photo size).
    Raises:
        ValueError: non-positive focal length or image size.
    """
    w, h, fx = int(camera["width"]), int(camera["height"]), float(camera["fx"])
    if fx <= 0 or w <= 0 or h <= 0:
        raise ValueError(f"camera: focal length and image size must be positive, got fx={fx}, {w}x{h}")
    data = bpy.data.cameras.new("PhotoCamera")
    data.sensor_fit = "HORIZONTAL"
    data.sensor_width = SENSOR_WIDTH_MM
    data.lens = fx * SENSOR_WIDTH_MM / w  # mm
    big = max(w, h)
    data.shift_x = (w / 2.0 - float(camera["cx"])) / big
    data.shift_y = (float(camera["cy"]) - h / 2.0) / big
    data.clip_start, data.clip_end = 0.05, 200.0
    ob = bpy.data.objects.new("PhotoCamera", data)
    bpy.context.scene.collection.objects.link(ob)
    ob.matrix_world = Matrix(camera_matrix_world(pitch_deg, roll_deg))
    scene = bpy.context.scene
    scene.camera = ob
    addon_results.set_camera_background(scene, str(photo), w, h)
    for bg in data.background_images:
        if bg.image is not None and not bg.image.packed_file:
            bg.image.pack()
    fy = float(camera.get("fy", fx))
    if abs(fy - fx) > 0.01 * fx:
        print(f"[demo] warning: camera fy {fy:.1f} != fx {fx:.1f} px; the Blender camera assumes square pixels "
              "(fx used)", flush=True)
    return ob


def camera_intrinsics(cam_ob) -> dict:
    """Pixel intrinsics of the scene's render through ``cam_ob`` (the add-on's camera math)."""
    d, r = cam_ob.data, bpy.context.scene.render
    return camera_math.intrinsics(d.lens, d.sensor_width, d.sensor_height, d.sensor_fit,
                                  r.resolution_x, r.resolution_y, d.shift_x, d.shift_y)


def world_to_camera(points_world: dict, cam_ob) -> dict:
    """World points -> OpenCV camera frame of ``cam_ob`` (metres)."""
    m = [list(r) for r in cam_ob.matrix_world]
    rot = camera_math.world_to_opencv_rotation(m)
    t = la.translation(m)
    return {k: la.matvec(rot, la.sub(v, t)) for k, v in points_world.items()}


# ----------------------------------------------------------------------------- keying
def hypothesis_targets(hyp: dict, names: list[str], cam_ob, rig_scale: float) -> tuple[dict, list]:
    """World directions and pelvis anchor of an estimate hypothesis, as the add-on's
    ``results.store_estimate`` computes them with a scene camera.

    Args:
        hyp: ``{"joints": [J, 3] camera frame root-relative, "root_translation": [3]}``, metres.
        names: the response's ``joint_names``.
        cam_ob: the camera the photo was taken with.
        rig_scale: rig leg length / model leg length; the root translation is scaled by it
            so that the bigger (or smaller) rig projects like the model-size hypothesis.
    Returns:
        (joint -> world point, pelvis at the world origin; anchor: world point for the pelvis).
    """
    mw = [list(r) for r in cam_ob.matrix_world]
    world = camera_math.camera_directions_to_world(hyp["joints"], mw)
    anchor = camera_math.camera_points_to_world([la.scale(hyp["root_translation"], rig_scale)], mw)[0]
    return dict(zip(names, world)), anchor


def key_hypothesis(ob, hyp: dict, names: list[str], cam_ob, frame: int, fit_root: bool = True) -> dict:
    """Pose ``ob`` after ``hyp`` (through ``addon.blender_rig.apply_pose``) and key it on ``frame``.

    With ``fit_root`` the pelvis anchor is first moved by the mean offset between the rig's
    posed joints and the hypothesis' joints scaled to the rig (rigs put their hip joints
    elsewhere than the model relative to the pelvis), so the whole rig lines up with the
    photo rather than its pelvis alone.

    Returns:
        ``{"frame", "bones_keyed", "anchor", "root_shift_m"}`` (world metres).
    Raises:
        addon.blender_rig.RigError: the rig cannot be posed (mapping).
    """
    s = blender_rig.rig_leg_world(ob) / sk.MODEL_LEG_LENGTH
    joints, anchor = hypothesis_targets(hyp, names, cam_ob, s)
    shift = [0.0, 0.0, 0.0]
    if fit_root:
        blender_rig.apply_pose(ob, joints, placement="ANCHOR", anchor_world=anchor)
        posed = blender_rig.posed_joints_world(ob)
        target = {k: la.add(anchor, la.scale(v, s)) for k, v in joints.items()}
        common = [k for k in posed if k in target]
        if common:
            shift = [sum(target[k][i] - posed[k][i] for k in common) / len(common) for i in range(3)]
            anchor = la.add(anchor, shift)
    bones = blender_rig.apply_pose(ob, joints, placement="ANCHOR", anchor_world=anchor, keyframe=True, frame=frame)
    return {"frame": frame, "bones_keyed": len(bones), "anchor": [round(c, 4) for c in anchor],
            "root_shift_m": [round(c, 4) for c in shift]}


# ----------------------------------------------------------------------------- bone shapes
def add_bone_shapes(ob, extra: tuple[str, ...] = EXTRA_SHAPES):
    """A mesh skin that follows the armature's pose: an octahedral shape per mapped bone (plus
    ``extra`` bones) and a sphere for the head, weighted 100 % to its bone.

    Returns:
        the mesh object (child of ``ob``, Armature modifier, materials by side L/R/centre).
    """
    names = [b for b in blender_rig.mapped_bones(ob) + list(extra) if b in ob.data.bones]
    head_bone = (blender_rig.get_mapping(ob).get("head") or [None])[-1]
    me = bpy.data.meshes.new("RigShapes")
    sh = bpy.data.objects.new("RigShapes", me)
    bpy.context.scene.collection.objects.link(sh)
    for side, col in SIDE_COLOURS.items():
        mat = bpy.data.materials.new(f"PoseDiffBone.{side}")
        mat.diffuse_color = col
        me.materials.append(mat)
    groups = {n: sh.vertex_groups.new(name=n).index for n in names}
    bm = bmesh.new()
    dl = bm.verts.layers.deform.verify()
    for n in names:
        b = ob.data.bones[n]
        m = b.matrix_local
        head, tail = m.translation.copy(), (m @ Vector((0.0, b.length, 0.0)))
        side = "L" if n.endswith(".L") else "R" if n.endswith(".R") else "C"
        mi = list(SIDE_COLOURS).index(side)
        if n == head_bone:
            r = 0.45 * b.length
            made = bmesh.ops.create_icosphere(bm, subdivisions=2, radius=r,
                                              matrix=Matrix.Translation((head + tail) / 2 + Vector((0, 0, -0.1 * r))))
            verts = made["verts"]
        else:
            r = min(max(0.09 * b.length, 0.02), 0.045)
            x, z = m.col[0].xyz.normalized(), m.col[2].xyz.normalized()
            mid = head + (tail - head) * 0.18
            ring = [bm.verts.new(mid + r * (math.cos(a) * x + math.sin(a) * z))
                    for a in (0.0, math.pi / 2, math.pi, 3 * math.pi / 2)]
            vh, vt = bm.verts.new(head), bm.verts.new(tail)
            for i in range(4):
                a, c = ring[i], ring[(i + 1) % 4]
                bm.faces.new((vh, c, a))
                bm.faces.new((vt, a, c))
            verts = ring + [vh, vt]
            joint = bmesh.ops.create_icosphere(bm, subdivisions=1, radius=r * 0.9, matrix=Matrix.Translation(head))
            verts = verts + joint["verts"]
        for v in verts:
            v[dl][groups[n]] = 1.0
            for f in v.link_faces:
                f.material_index = mi
    bm.normal_update()
    bm.to_mesh(me)
    bm.free()
    for p in me.polygons:
        p.use_smooth = False
    sh.parent = ob
    sh.matrix_parent_inverse = Matrix.Identity(4)
    mod = sh.modifiers.new("Armature", "ARMATURE")
    mod.object = ob
    return sh


# ----------------------------------------------------------------------------- render and save
def render_workbench(path: Path, frame: int) -> None:
    """Render the scene camera's view of ``frame`` with Workbench (flat studio light, material
    colours, transparent film) into the PNG ``path`` (RGBA, resolution = the photo's)."""
    scene = bpy.context.scene
    scene.frame_set(frame)
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.render.film_transparent = True
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA"
    scene.view_settings.view_transform = "Standard"
    sh = scene.display.shading
    sh.light = "STUDIO"
    sh.color_type = "MATERIAL"
    sh.show_object_outline = True
    sh.object_outline_color = (0.05, 0.05, 0.05)
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)


def save_blend(path: Path, frame_start: int, frame_end: int, frame: int) -> None:
    """Save the scene (frame range set, current frame ``frame``) as ``path``."""
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = frame_start, frame_end
    scene.frame_set(frame)
    bpy.ops.wm.save_as_mainfile(filepath=str(path), check_existing=False, compress=True)
