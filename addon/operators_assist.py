# SPDX-License-Identifier: GPL-3.0-or-later
"""Pose assist: a modal operator in Pose Mode — move the pinned bones, the rest of the body follows.

The pinned bones are the selected mapped bones (else the ones keyed on the current frame). While
the operator runs, every tick (a window timer) reads the pinned joints off the rig; when they
moved, the newest pins are sent to the backend's ``POST /v1/assist`` from a worker thread (one
request in flight; pins that arrive meanwhile replace each other, so only the newest is sent
next), and the answer poses the unpinned bones on the main thread. Enter or a click keys the
result (one undo step); Esc or a right-click puts every bone back as it was. The UI never waits
on the network. A Rigify rig's limbs in IK are snapped to FK and switched for the session
(``rig_checks.snap_fk_to_pose``), since the session poses the FK controls; with *Rigify limbs* =
Keep in IK they go back to IK on apply, their IK controls snapped to the result (``rigify_ik``).

:class:`AssistSession` holds the state and is driven directly by the tests (background Blender
has no event loop): ``session.update(wait=True)`` sends and applies one request synchronously.
"""

from __future__ import annotations

import threading

import bpy
from mathutils import Matrix, Vector

from . import blender_rig, results, rig_checks, rigify_ik
from . import linalg as la
from . import retarget as rt
from . import skeleton as sk
from .blender_rig import RigError
from .client import BackendError

#: Pin motion (rig world metres) below which no new request is sent (above the pins' own
#: tolerance after posing, so an answer never triggers the next request by itself).
MOVE_EPS = 2e-3
#: Timer period of the modal operator (seconds).
TICK = 0.03
#: CCD passes that put pinned joints back where the animator put them after a rig of other
#: proportions than the model's has been posed, and how many unpinned bones above each pin
#: they may turn (an outstretched arm needs its collar bone too).
PIN_PASSES = 12
CHAIN = 3
#: A pin further than this from where the animator put it lets its own bone turn (metres).
PIN_TOLERANCE = 0.005


#: A Rigify rig's IK controls that may be pins: control -> (the model joint at its head, the FK
#: controls that carry that joint, nearest first). The session poses the FK chain to reach the
#: control (the limb is in FK during the session, see ``AssistSession``).
RIGIFY_IK_PINS = {f"{limb['end'][0]}.{s}": (f"{side}_{limb['end'][1]}", [f"{limb['fk'][1]}_fk.{s}", f"{limb['fk'][0]}_fk.{s}"])
                  for s, side in (("L", "left"), ("R", "right"))
                  for limb in rig_checks.RIGIFY_LIMB_CONTROLS.values()}


def ik_pins(ob, bones) -> dict:
    """The Rigify IK controls among ``bones`` usable as pins (their FK chain present): control ->
    (joint, FK chain)."""
    return {b: v for b, v in RIGIFY_IK_PINS.items()
            if b in bones and b in ob.pose.bones and all(c in ob.pose.bones for c in v[1])}


def pinned_bones(ob, frame: int) -> set[str]:
    """Selected mapped bones (and a Rigify rig's selected IK hand / foot controls); if none is
    selected, the mapped bones keyed on ``frame``."""
    mapped = set(blender_rig.mapped_bones(ob)) | set(ik_pins(ob, set(RIGIFY_IK_PINS)))
    sel = blender_rig.selected_bones(ob) & mapped
    return sel or (blender_rig.keyed_bones(ob, frame) & mapped)


class AssistSession:
    """One Pose assist drag on armature ``ob``.

    Args:
        ob: the armature (mapping usable, else ``RigError``).
        pinned: bone names that the animator moves (their channels are never written).
        client: a ``client.Client``; seed: kept for the whole session (continuity).
    Raises:
        RigError / ValueError: not an armature, no pins, or pins outside the bone mapping.
    """

    def __init__(self, ob, pinned: set[str], client, seed: int = 0):
        blender_rig.check_armature(ob)
        if not pinned:
            raise ValueError("no pinned bones: select the bones to move in Pose Mode (or key them on this frame)")
        self.ik = {joint: (ctrl, chain) for ctrl, (joint, chain) in ik_pins(ob, pinned).items()}
        self.joints = blender_rig.bones_to_joints(ob, pinned) | set(self.ik)
        if not self.joints:
            raise ValueError(f"the pinned bones {sorted(pinned)} are not in the bone mapping (PoseDiff > Bone mapping)")
        self.ob, self.pinned, self.client, self.seed = ob, set(pinned), client, int(seed)
        self.mapping = blender_rig.get_mapping(ob)
        self.saved = {pb.name: pb.matrix_basis.copy() for pb in ob.pose.bones}
        # a Rigify rig's limbs in IK do not follow the FK controls this session poses: snap the FK
        # controls onto the limbs as they are and switch to FK (unkeyed; keyed on apply, undone by restore)
        mapped = blender_rig.mapped_bones(ob)
        self.switches = {n: float(ob.pose.bones[n]["IK_FK"]) for n in rig_checks.rigify_switches(ob, mapped)}
        self.switched: list[str] = []
        # limbs to put back in IK on apply, their IK controls snapped to the result (Rigify limbs = Keep in IK)
        self.keep_ik, self.ik_note = rigify_ik.limbs_to_keep(bpy.context, ob, mapped)
        if any(v < 1.0 - 1e-6 for v in self.switches.values()):
            rig_checks.snap_fk_to_pose(ob, mapped)
            self.switched = rig_checks.use_fk(ob, mapped, keyframe=False)
        self.scale = sk.MODEL_LEG_LENGTH / blender_rig.rig_leg_world(ob)  # rig world -> model scale
        # the pose to warm-start from (rig world frame, joint -> xyz): the rig as it is now, so the
        # first answer changes nothing until the pins move; later the last answer
        now = blender_rig.posed_joints_world(ob)
        self.previous_rig: dict | None = now if all(n in now for n in sk.JOINT_NAMES) else None
        self.last_pins: dict | None = None
        self.targets: dict = {}  # pinned joint -> rig world position the animator gave it
        self.error = ""
        self.updates = 0
        self._lock = threading.Lock()
        self._pending: dict | None = None  # newest request not yet sent
        self._answer: tuple | None = None  # (request, response or None, error)
        self._worker: threading.Thread | None = None

    # ------------------------------------------------------------------ requests
    def _request(self) -> dict | None:
        """The assist request for the rig as it is now, or None if the pins did not move."""
        world = blender_rig.posed_joints_world(self.ob)
        pins = self._pins(world)
        if self.last_pins is not None and all(
                la.norm(la.sub(pins[j], self.last_pins[j])) < MOVE_EPS for j in pins):
            return None
        self.last_pins = pins
        self.targets = {j: list(v) for j, v in pins.items()}
        known, dirs = results.rig_state(self.ob, self.pinned)
        pelvis = world.get("pelvis") or [0.0, 0.0, 0.0]
        for j in self.ik:  # an IK control's joint: where the control is, at model scale about the pelvis
            known[j] = [round(c, 5) for c in la.add(pelvis, la.scale(la.sub(pins[j], pelvis), self.scale))]
        body = {"known": known, "known_directions": dirs, "seed": self.seed}
        if self.previous_rig is not None:
            body["previous"] = [[round(c, 5) for c in la.add(pelvis, la.scale(la.sub(self.previous_rig[n], pelvis),
                                                                            self.scale))]
                                for n in sk.JOINT_NAMES]
        return {"body": body, "pelvis": pelvis}

    def _send(self, req: dict) -> None:
        try:
            res, err = self.client.request("POST", "/v1/assist", req["body"]), ""
        except BackendError as e:
            res, err = None, str(e)
        with self._lock:
            self._answer = (req, res, err)

    def _work(self) -> None:
        while True:
            with self._lock:
                req, self._pending = self._pending, None
                if req is None:
                    self._worker = None
                    return
            self._send(req)

    def update(self, wait: bool = False) -> bool:
        """One tick: queue the newest pins if they moved, pose the rig with an answer that came.

        ``wait=True`` sends synchronously (scripts, tests). Returns True when the rig was posed.
        Raises ``RigError``/``ValueError`` only with ``wait=True``; in the background the error is
        kept in ``self.error`` (the modal operator shows it) and the rig stays as it is.
        """
        req = self._request()
        if req is not None:
            if wait:
                self._send(req)
            else:
                with self._lock:
                    self._pending = req  # replaces an older one not yet sent: only the newest pins matter
                    if self._worker is None:
                        self._worker = threading.Thread(target=self._work, name="posediff-assist", daemon=True)
                        self._worker.start()
        with self._lock:
            answer, self._answer = self._answer, None
        if answer is None:
            return False
        sent, res, err = answer
        if err:
            self.error = err
            if wait:
                raise ValueError(err)
            return False
        self._pose(sent, res)
        return True

    def _pins(self, world: dict) -> dict:
        """Pinned joint -> rig world position the animator gives it: the posed joint, or for a
        Rigify IK control the control's head (the limb follows its FK chain in the session)."""
        mw = self.ob.matrix_world
        pins = {j: world[j] for j in self.joints if j in world and j not in self.ik}
        for j, (ctrl, _chain) in self.ik.items():
            pins[j] = list(mw @ self.ob.pose.bones[ctrl].head)
        return pins

    # ------------------------------------------------------------------ posing
    def _pose(self, sent: dict, res: dict) -> None:
        """Pose the unpinned bones after an answer (model scale about the pelvis sent).

        With a warm start, each unpinned mapped bone is turned by the change of its segment
        between the pose sent as ``previous`` and the answer (:func:`retarget.segment_rotation`),
        on top of how it was: no change of the pins, no change of the rig, whatever its
        proportions. Without one (the rig lacks some model joints), the answer is retargeted.
        """
        p, inv = sent["pelvis"], 1.0 / self.scale
        new = res_model(res)
        rig_world = {n: la.add(p, la.scale(la.sub(v, p), inv)) for n, v in new.items()}
        prev = sent["body"].get("previous")
        if prev is None:
            blender_rig.apply_pose(self.ob, new, placement="ANCHOR", anchor_world=rig_world["pelvis"],
                                   skip=self.pinned, keyframe=False)
        else:
            self._turn_bones(dict(zip(sk.JOINT_NAMES, prev)), new, inv)
        self.previous_rig = rig_world
        self.keep_pins()
        # only the animator's moves send the next request, not what is left of the pins' error
        self.last_pins = self._pins(blender_rig.posed_joints_world(self.ob))
        self.updates += 1
        self.error = ""

    def _turn_bones(self, old: dict, new: dict, inv: float) -> None:
        """Turn each unpinned mapped bone by its segment's change ``old -> new`` (model joints,
        world frame) and move the root bone by the pelvis' change (``inv``: model -> rig scale)."""
        ob, vl = self.ob, bpy.context.view_layer
        r_arm = ob.matrix_world.to_3x3().normalized()
        to_arm = r_arm.inverted()
        vl.update()
        start = {pb.name: pb.matrix.copy() for pb in ob.pose.bones}
        role_of = {}
        for role in sk.ROLES:
            for b in self.mapping.get(role.name) or []:
                role_of.setdefault(b, role)
        root = next((pb for pb in ob.pose.bones if pb.name in role_of and pb.parent is None), None)
        for name in rt.hierarchy_order({b.name: rt.RestBone(b.name, b.parent.name if b.parent else None,
                                                             [list(r) for r in b.matrix_local], b.length)
                                        for b in ob.data.bones}):
            role = role_of.get(name)
            if role is None or name in self.pinned:
                continue
            R = rt.segment_rotation(role, old, new)
            if R is None:
                continue
            pb = ob.pose.bones[name]
            Ra = (to_arm @ Matrix(R) @ r_arm).to_4x4()
            head = pb.head.copy()
            if root is not None and pb == root:
                shift = Vector(la.scale(la.sub(new["pelvis"], old["pelvis"]), inv)) / ob.matrix_world.to_scale().x
                head = start[name].translation + to_arm @ shift
            m = start[name].copy()
            m.translation = (0.0, 0.0, 0.0)
            pb.matrix = Matrix.Translation(head) @ Ra @ m
            vl.update()

    def keep_pins(self) -> float:
        """Put the pinned joints back where the animator put them; returns the largest remaining
        error (metres).

        CCD (cyclic coordinate descent) over the unpinned bones above each pinned joint (up to
        ``CHAIN``, nearest first, each turned about its head); if a pin is still more than
        ``PIN_TOLERANCE`` away (its bone's own channels fix the bend, e.g. a pinned shin keeps the
        knee angle), the bone that carries the pinned joint may turn too: the position of a pin
        is kept before its direction. The backend reproduces the pins on the model skeleton; a
        rig of other proportions would otherwise carry them centimetres away.
        """
        err = self._ccd(with_carrier=False)
        if err > PIN_TOLERANCE:
            err = self._ccd(with_carrier=True)
        return err

    def _ccd(self, with_carrier: bool) -> float:
        ob, vl = self.ob, bpy.context.view_layer
        mw = ob.matrix_world
        r_arm = mw.to_3x3().normalized()
        to_arm = r_arm.inverted()
        chains = {j: self._chain(j, with_carrier) for j in self.targets}
        ends = {j: self._carrier(j) for j in self.targets}

        def where(j):  # the pinned joint now: tail of the bone that carries it, world
            if ends[j] is None:
                return blender_rig.posed_joints_world(ob).get(j)
            return list(mw @ ob.pose.bones[ends[j]].tail)

        err = 0.0
        for _ in range(PIN_PASSES):
            err = 0.0
            for j, tgt in self.targets.items():
                for name in chains[j]:
                    cur = where(j)
                    if cur is None:
                        break
                    pb = ob.pose.bones[name]
                    head = mw @ pb.head
                    a, b = Vector(cur) - head, Vector(tgt) - head
                    if a.length < 1e-6 or b.length < 1e-6 or (Vector(cur) - Vector(tgt)).length < 1e-4:
                        continue
                    R = (to_arm @ a.rotation_difference(b).to_matrix() @ r_arm).to_4x4()  # armature axes
                    h = pb.head.copy()
                    pb.matrix = Matrix.Translation(h) @ R @ Matrix.Translation(-h) @ pb.matrix
                    vl.update()
                cur = where(j)
                if cur is not None:
                    err = max(err, la.norm(la.sub(cur, tgt)))
            if err < 5e-4:
                break
        return err

    def _carrier(self, joint: str) -> str | None:
        """The pinned bone whose tail is ``joint`` (the last bone of a role ending there)."""
        carrier = None
        for role in sk.ROLES:
            bones = self.mapping.get(role.name) or []
            if bones and bones[-1] in self.pinned and role.to_joint == joint:
                carrier = bones[-1]
        return carrier

    def _chain(self, joint: str, with_carrier: bool = False) -> list[str]:
        """Unpinned, non-root bones above the bone that carries ``joint`` (up to ``CHAIN``,
        nearest first), that bone first when ``with_carrier``; for a Rigify IK control's joint,
        its FK chain."""
        if joint in self.ik:
            return list(self.ik[joint][1])
        carrier = self._carrier(joint)
        pb = self.ob.pose.bones.get(carrier) if carrier else None
        out = [carrier] if with_carrier and pb is not None and pb.parent is not None else []
        pb = pb.parent if pb is not None else None
        while pb is not None and pb.parent is not None and len(out) < CHAIN + with_carrier:
            if pb.name not in self.pinned:
                out.append(pb.name)
            pb = pb.parent
        return out

    # ------------------------------------------------------------------ ending
    def apply(self, frame: int | None = None) -> list[str]:
        """Key every mapped bone at ``frame`` (default: current); returns the bones keyed. A Rigify
        rig's limb switches set to FK for the session are keyed at FK too (``IK_FK`` = 1), or with
        *Rigify limbs* = Keep in IK keyed back at IK with their IK controls snapped to the result
        and keyed (``rigify_ik.snap_ik``)."""
        f = bpy.context.scene.frame_current if frame is None else frame
        if self.switches:
            rig_checks.use_fk(self.ob, blender_rig.mapped_bones(self.ob), keyframe=True, frame=f)
        keyed = []
        for name in blender_rig.mapped_bones(self.ob):
            pb = self.ob.pose.bones.get(name)
            if pb is None or pb.matrix_basis == self.saved.get(name):
                continue
            pb.keyframe_insert(blender_rig._rot_paths(pb), frame=f, group=name)
            if pb.matrix_basis.translation != self.saved[name].translation:
                pb.keyframe_insert("location", frame=f, group=name)
            keyed.append(name)
        if self.keep_ik:
            rigify_ik.snap_ik(bpy.context, self.ob, self.keep_ik, frame=f, keyframe=True)
        return keyed

    def restore(self) -> None:
        """Every bone's channels back as they were when the session started (keys untouched)."""
        for pb in self.ob.pose.bones:
            if pb.name in self.saved:
                pb.matrix_basis = self.saved[pb.name]
        for name, v in self.switches.items():  # a Rigify rig's IK/FK switches as they were
            self.ob.pose.bones[name]["IK_FK"] = v
        bpy.context.view_layer.update()


def res_model(res: dict) -> dict:
    """joint -> xyz of an assist response (model scale, world)."""
    return dict(zip(res["joint_names"], res["joints"]))


class POSEDIFF_OT_pose_assist(bpy.types.Operator):
    """Move the selected (pinned) bones and the rest of the body follows. Enter/click: key the pose; Esc/right-click: undo it"""

    bl_idname = "posediff.pose_assist"
    bl_label = "Pose assist"
    bl_options = {"REGISTER", "UNDO"}

    _timer = None
    session: AssistSession | None = None

    @classmethod
    def poll(cls, context):
        ob = context.active_object
        return ob is not None and ob.type == "ARMATURE" and context.mode == "POSE"

    def invoke(self, context, event):
        from .preferences import make_client

        try:
            ob = results.target_armature(context)
            self.session = AssistSession(ob, pinned_bones(ob, context.scene.frame_current), make_client(10.0),
                                         context.scene.posediff.seed)
        except (RigError, ValueError, BackendError) as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        wm = context.window_manager
        self._timer = wm.event_timer_add(TICK, window=context.window)
        wm.modal_handler_add(self)
        context.workspace.status_text_set("Pose assist: move the pinned bones · Enter/click: key · Esc/right-click: cancel")
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        s = self.session
        if event.type == "TIMER":
            try:
                if s.update():
                    context.area.tag_redraw() if context.area else None
            except (RigError, ValueError) as e:
                s.error = str(e)
            if s.error:
                context.workspace.status_text_set(f"Pose assist: {s.error}")
            return {"PASS_THROUGH"}
        if event.value == "PRESS" and event.type in {"RET", "NUMPAD_ENTER", "LEFTMOUSE"}:
            count = len(s.apply())
            self._end(context)
            switched = [b for b in s.switched if b not in s.keep_ik]
            notes = [f"{', '.join(switched)} switched from IK to FK (keyed) so the rig follows"] if switched else []
            notes += [t for t in (rigify_ik.note(s.keep_ik), s.ik_note) if t]
            self.report({"INFO"}, "; ".join([f"Pose assist: keyed {count} bones"] + notes))
            return {"FINISHED"}
        if event.value == "PRESS" and event.type in {"ESC", "RIGHTMOUSE"}:
            s.restore()
            self._end(context)
            return {"CANCELLED"}
        return {"PASS_THROUGH"}

    def _end(self, context):
        context.window_manager.event_timer_remove(self._timer)
        context.workspace.status_text_set(None)


CLASSES = (POSEDIFF_OT_pose_assist,)
