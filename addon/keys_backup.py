# SPDX-License-Identifier: GPL-3.0-or-later
"""A rig's keys and pose as they were before a long keying (a clip's track), put back when the
keying is cancelled or fails part-way, so a stopped clip leaves no half-keyed action behind.

What is kept: the armature object's action (a full copy, with its slots), which slot it used,
whether it had animation data at all, and every pose bone's channels and ``IK_FK`` value.
"""

from __future__ import annotations

import bpy


class KeysBackup:
    """Take with ``KeysBackup(ob)`` before keying; then ``restore()`` (cancel / failure) or
    ``discard()`` (success). Either may be called once; both tolerate a rig deleted meanwhile."""

    def __init__(self, ob):
        self.ob = ob
        ad = ob.animation_data
        self.had_data = ad is not None
        self.action = ad.action if ad is not None else None
        self.slot = ad.action_slot.identifier if ad is not None and ad.action_slot is not None else None
        self.copy = self.action.copy() if self.action is not None else None
        self.fake_user = bool(self.action is not None and self.action.use_fake_user)
        if self.copy is not None:
            self.copy.use_fake_user = False
        self.pose = {pb.name: pb.matrix_basis.copy() for pb in ob.pose.bones}
        self.props = {pb.name: float(pb["IK_FK"]) for pb in ob.pose.bones if "IK_FK" in pb.keys()}

    def discard(self) -> None:
        """Keep the new keys: drop the copy."""
        if self.copy is not None:
            try:
                bpy.data.actions.remove(self.copy)
            except ReferenceError:
                pass
            self.copy = None

    def restore(self) -> None:
        """Put the action, the slot, the pose channels and the IK/FK switches back as they were."""
        try:
            ob = self.ob
            ad = ob.animation_data
            now = ad.action if ad is not None else None
        except ReferenceError:  # the rig was deleted meanwhile: nothing to put back
            self.discard()
            return
        if self.action is None:
            if now is not None:
                ad.action = None
                if now.users == 0:
                    bpy.data.actions.remove(now)
            if not self.had_data and ob.animation_data is not None:
                ob.animation_data_clear()
        else:
            name = self.action.name
            ad = ob.animation_data or ob.animation_data_create()
            ad.action = self.copy
            slot = next((s for s in self.copy.slots if s.identifier == self.slot), None)
            if slot is not None:
                ad.action_slot = slot
            if now is not None and now is not self.copy and now.users == 0:
                bpy.data.actions.remove(now)
            self.copy.name = name
            self.copy.use_fake_user = self.fake_user
            self.copy = None
        for pb in ob.pose.bones:
            if pb.name in self.pose:
                pb.matrix_basis = self.pose[pb.name]
            if pb.name in self.props:
                pb["IK_FK"] = self.props[pb.name]
        bpy.context.view_layer.update()
