# SPDX-License-Identifier: GPL-3.0-or-later
"""Scene and object properties: settings, the hypotheses list, the editable bone mapping."""

from __future__ import annotations

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    FloatVectorProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from . import blender_rig


def _preview_selected(self, context):
    """Clicking a hypothesis previews it on the rig (no keyframe)."""
    if not self.hypotheses:
        return
    from . import results

    try:
        results.preview_hypothesis(context, self.hypothesis_index)
    except Exception as e:  # noqa: BLE001 - UI callback: report in the status line
        self.last_error = str(e)


class POSEDIFF_Hypothesis(bpy.types.PropertyGroup):
    label: StringProperty()
    task: StringProperty()
    score: FloatProperty()
    photo_frame: IntProperty(description="index of the photo (consecutive frames)")
    joints_json: StringProperty(description="model joints, world frame, metres, model scale (JSON)")
    has_anchor: BoolProperty(description="the pelvis has a world position (camera placement)")
    anchor: FloatVectorProperty(size=3, subtype="TRANSLATION")
    skip_json: StringProperty(description="bones left untouched when applying (completion)")
    pins_json: StringProperty(description="bones kept where they are in the world: bone -> armature-space matrix (JSON)")
    placement: StringProperty(default="GROUND")
    preview_key: StringProperty(description="key of the thumbnail in the previews collection")


class POSEDIFF_Person(bpy.types.PropertyGroup):
    """A person the detector found in the photo (for the person picker)."""

    index: IntProperty(description="detector index (0 = largest), sent as 'person'")
    label: StringProperty()
    box: FloatVectorProperty(size=4, description="x0, y0, x1, y1 pixels")


def _person_picked(self, context):
    if 0 <= self.people_index < len(self.people):
        self.person = self.people[self.people_index].index


def _sync_mapping(self, context):
    ob = self.id_data
    if ob is None or ob.type != "ARMATURE":
        return
    mapping = {}
    for item in ob.posediff_roles:
        bones = [b for b in [item.bone] + [x.strip() for x in item.extra.split(",")] if b]
        if bones:
            mapping[item.role] = bones
    blender_rig.set_mapping(ob, mapping)


class POSEDIFF_RoleItem(bpy.types.PropertyGroup):
    role: StringProperty()
    bone: StringProperty(name="Bone", update=_sync_mapping)
    extra: StringProperty(name="More bones", description="further bones of the same segment, comma-separated "
                          "(e.g. a second chest bone)", update=_sync_mapping)


def fill_role_items(ob) -> None:
    """Copy the armature's mapping (saved or detected) into its editable role list."""
    from .skeleton import ROLES

    mapping = blender_rig.get_mapping(ob)
    ob.posediff_roles.clear()
    for role in ROLES:
        it = ob.posediff_roles.add()
        it.role = role.name
        bones = mapping.get(role.name) or []
        it["bone"] = bones[0] if bones else ""
        it["extra"] = ", ".join(bones[1:])
    blender_rig.set_mapping(ob, mapping)


class POSEDIFF_Settings(bpy.types.PropertyGroup):
    num_hypotheses: IntProperty(name="Hypotheses", default=8, min=1, max=200,
                                description="How many 3D poses to sample per photo")
    seed: IntProperty(name="Seed", default=0, min=0)
    num_generate: IntProperty(name="Poses", default=8, min=1, max=256)
    strength: FloatProperty(name="Strength", default=0.3, min=0.0, max=1.0,
                            description="Variations: 0 = the same pose, 1 = unrelated poses")
    use_camera: BoolProperty(name="Use my camera as it is", default=False,
                             description="Send the scene camera's intrinsics and rotation and place the rig along the "
                                         "photo's rays through it (the rig may leave the ground). Off: the rig stays on "
                                         "the ground where it stands and a 'Photo camera' is fitted to the photo")
    lens: FloatProperty(name="Lens (mm)", default=0.0, min=0.0, max=2000.0, step=100, precision=0,
                        description="35 mm-equivalent focal length of the photos or video, when their file does not say "
                                    "it (0: the photo's EXIF or an iPhone video's metadata, else 40 mm). A phone's main "
                                    "camera is about 26 mm, its 2x / 3x / 5x 48 / 77 / 120 mm; a webcam about 28 mm. "
                                    "Not used with 'Use my camera as it is' (the scene camera's lens is sent)")
    mirrored: BoolProperty(name="Mirrored (selfie, webcam)", default=False,
                           description="The photos or video are mirror images: a selfie saved as previewed, a webcam's "
                                       "recording (Photo Booth, most webcam apps), a photo taken in a mirror. They are "
                                       "flipped left-right before estimation, so the rig raises the arm the person raised "
                                       "(not their mirror image's), and the camera background is shown flipped to match")
    set_background: BoolProperty(name="Photo as camera background", default=True,
                                 description="Show the photo behind the photo camera's view")
    set_resolution: BoolProperty(name="Render size = photo size", default=True,
                                 description="Set the render resolution to the photo's (the line-up through the camera "
                                             "needs the photo's aspect ratio); the message says when it changed")
    keep_height: BoolProperty(name="Keep root height", default=False,
                              description="Keep the root where it is now instead of standing the pose on the floor "
                                          "(estimate, generate, variations)")
    person: IntProperty(name="Person", default=-1, min=-1, max=64,
                        description="Which detected person to estimate (-1 = the largest); Find people lists them")
    people: CollectionProperty(type=POSEDIFF_Person)
    people_index: IntProperty(name="Person", default=0, update=_person_picked)
    rigify_limbs: EnumProperty(
        name="Rigify limbs", default="FK",
        items=[("FK", "Switch to FK", "Key the FK controls and switch the limbs to FK (IK_FK = 1, keyed), so the rig "
                                     "follows the keys"),
               ("KEEP", "Keep in IK", "Limbs in IK stay in IK: after keying the FK controls, snap the IK controls onto "
                                      "the pose with Rigify's own IK->FK snap and key them (needs the rig's UI script "
                                      "running; ~0.16 s more per keyed frame)")],
        description="On a Rigify-generated rig: what happens to limbs in IK when PoseDiff keys a pose")
    previews: BoolProperty(name="Thumbnails", default=True, description="Ask the backend for preview images")
    hypotheses: CollectionProperty(type=POSEDIFF_Hypothesis)
    hypothesis_index: IntProperty(name="Hypothesis", default=0, update=_preview_selected)
    last_error: StringProperty()
    last_message: StringProperty()


CLASSES = (POSEDIFF_Hypothesis, POSEDIFF_Person, POSEDIFF_RoleItem, POSEDIFF_Settings)


def register_props():
    bpy.types.Scene.posediff = PointerProperty(type=POSEDIFF_Settings)
    bpy.types.Object.posediff_roles = CollectionProperty(type=POSEDIFF_RoleItem)


def unregister_props():
    del bpy.types.Object.posediff_roles
    del bpy.types.Scene.posediff
