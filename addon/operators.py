# SPDX-License-Identifier: GPL-3.0-or-later
"""Operators: backend control, estimate / complete / generate / variations, hypotheses, mapping.

Task operators validate the rig and the input first, then send the request as a server job
from a worker thread (``jobs``); the result is applied from a ``bpy.app.timers`` callback, so
the UI never waits on the network. ``blocking=True`` does the same synchronously (scripts and
tests): errors are then reported with ``self.report({'ERROR'}, ...)`` and ``{'CANCELLED'}``.
On any error the scene is left as it was.
"""

from __future__ import annotations

import os
import textwrap

import bpy
from bpy.props import BoolProperty, CollectionProperty, EnumProperty, IntProperty, StringProperty
from bpy_extras.io_utils import ImportHelper

from . import backend_process, blender_rig, jobs, results, status
from .blender_rig import RigError
from .client import BackendError
from .preferences import make_client, prefs, prior_setting
from .rig_presets import PRESETS

BLOCKING = BoolProperty(name="Blocking", default=False, options={"HIDDEN", "SKIP_SAVE"},
                        description="Wait for the backend in this call (scripts, tests) instead of a background job")


def _push_undo(message: str) -> None:
    try:
        bpy.ops.ed.undo_push(message=message)
    except RuntimeError:
        pass


class _TaskOperator:
    """Shared flow: build payload (may raise), run as job (async or blocking), apply on done."""

    blocking: BLOCKING

    def run_task(self, context, task: str, payload: dict, label: str, apply) -> set:
        if jobs.busy():
            self.report({"ERROR"}, f"PoseDiff is busy with '{jobs.current().label}': wait or cancel it")
            return {"CANCELLED"}
        s = context.scene.posediff
        s.last_error = ""
        blocking = self.blocking or bpy.app.background and not context.window_manager.windows
        outcome = {}

        def on_done(job):
            # A background job ends in a timer, after this operator's context has expired.
            ctx = context if blocking else bpy.context
            s = ctx.scene.posediff
            if job.state != "done":
                s.last_error = job.error if job.state == "failed" else "cancelled"
                outcome["error"] = s.last_error
                if not blocking and job.state == "failed":
                    _popup_error(job.error)
                return
            try:
                msg = apply(ctx, job.result)
            except (RigError, ValueError, KeyError, IndexError, ReferenceError) as e:
                s.last_error = outcome["error"] = f"could not apply the {task} result: {e}"
                if not blocking:
                    _popup_error(s.last_error)
                return
            s.last_message = msg
            outcome["message"] = msg
            if not blocking:
                _push_undo(f"PoseDiff {task}")

        try:
            job = jobs.Job(make_client(), task, payload, label, on_done)
        except BackendError as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        if blocking:
            jobs.run_blocking(job)
            if "error" in outcome:
                self.report({"ERROR"}, outcome["error"])
                return {"CANCELLED"}
            self.report({"INFO"}, outcome.get("message", "done"))
            return {"FINISHED"}
        jobs.start(job)
        if context.window_manager.windows:
            bpy.ops.posediff.watch_job("INVOKE_DEFAULT")
        self.report({"INFO"}, f"{label}: sent to the backend (Esc cancels)")
        return {"FINISHED"}


def _popup_error(message: str) -> None:
    wm = bpy.context.window_manager
    if not wm.windows:
        print(f"PoseDiff error: {message}")
        return

    def draw(self, _ctx):
        for line in textwrap.wrap(message, 80):
            self.layout.label(text=line)

    wm.popup_menu(draw, title="PoseDiff", icon="ERROR")


# ----------------------------------------------------------------------------- backend control
class POSEDIFF_OT_start_backend(bpy.types.Operator):
    """Start 'posediff serve' as a child process of Blender (stopped when Blender exits)"""

    bl_idname = "posediff.start_backend"
    bl_label = "Start backend"

    def execute(self, context):
        p = prefs()
        cmd = p.backend_command if p else ""
        url = p.backend_url if p else "http://127.0.0.1:8765"
        token = p.token if p else ""
        log = os.path.join(bpy.app.tempdir or "/tmp", "posediff-backend.log")
        try:
            proc = backend_process.start(cmd, url, token, log, prior=prior_setting(p))
        except (FileNotFoundError, RuntimeError, OSError) as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        status.set_status(None, f"backend starting (pid {proc.pid}, log {log}); press Check")
        self.report({"INFO"}, f"PoseDiff backend starting (pid {proc.pid})")
        return {"FINISHED"}


class POSEDIFF_OT_stop_backend(bpy.types.Operator):
    """Stop the backend started from Blender"""

    bl_idname = "posediff.stop_backend"
    bl_label = "Stop backend"

    def execute(self, context):
        backend_process.stop()
        status.set_status(None, "backend stopped")
        return {"FINISHED"}


def check_backend_now(timeout: float = 5.0) -> tuple[bool, str]:
    """Ask /v1/health and /v1/info; updates and returns the status line."""
    try:
        c = make_client(timeout)
        h = c.health()
        info = c.info()
        ok, text = True, status.describe(h, info)
    except BackendError as e:
        ok, text = False, str(e)
    status.set_status(ok, text)
    return ok, text


class POSEDIFF_OT_check_backend(bpy.types.Operator):
    """Check the connection to the backend (status, device, model version)"""

    bl_idname = "posediff.check_backend"
    bl_label = "Check connection"
    blocking: BLOCKING

    def execute(self, context):
        if self.blocking or not context.window_manager.windows:
            ok, text = check_backend_now()
            self.report({"INFO"} if ok else {"ERROR"}, text)
            return {"FINISHED"} if ok else {"CANCELLED"}
        import threading

        status.set_status(None, "checking...")
        threading.Thread(target=check_backend_now, daemon=True).start()
        bpy.app.timers.register(lambda: (jobs._redraw(), None)[1], first_interval=1.0)
        return {"FINISHED"}


class POSEDIFF_OT_cancel(bpy.types.Operator):
    """Cancel the running PoseDiff job"""

    bl_idname = "posediff.cancel"
    bl_label = "Cancel"

    def execute(self, context):
        if not jobs.cancel_current():
            self.report({"WARNING"}, "no PoseDiff job is running")
            return {"CANCELLED"}
        return {"FINISHED"}


class POSEDIFF_OT_watch_job(bpy.types.Operator):
    """Lets Esc cancel the running job (passes every other event through)"""

    bl_idname = "posediff.watch_job"
    bl_label = "Watch PoseDiff job"
    bl_options = {"INTERNAL"}

    def invoke(self, context, event):
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if not jobs.busy():
            return {"FINISHED"}
        if event.type == "ESC" and event.value == "PRESS":
            jobs.cancel_current()
            return {"FINISHED"}
        return {"PASS_THROUGH"}


# ----------------------------------------------------------------------------- tasks
class POSEDIFF_OT_estimate(_TaskOperator, bpy.types.Operator, ImportHelper):
    """Estimate 3D poses from photos (several files = consecutive frames) and key the best one"""

    bl_idname = "posediff.estimate"
    bl_label = "Estimate from photo(s)"
    bl_options = {"REGISTER", "UNDO"}

    filter_glob: StringProperty(default="*.jpg;*.jpeg;*.png;*.webp;*.bmp", options={"HIDDEN"})
    files: CollectionProperty(type=bpy.types.OperatorFileListElement, options={"HIDDEN", "SKIP_SAVE"})
    directory: StringProperty(subtype="DIR_PATH", options={"HIDDEN", "SKIP_SAVE"})

    def paths(self) -> list[str]:
        names = [f.name for f in self.files if f.name]
        if names:
            return [os.path.join(self.directory, n) for n in names]
        return [self.filepath] if self.filepath else []

    def execute(self, context):
        s = context.scene.posediff
        try:
            ob = results.target_armature(context)
            paths = self.paths()
            if not paths:
                raise ValueError("choose one or more photos (PNG or JPEG)")
            frames = []
            use_cam = s.use_camera and context.scene.camera is not None
            for p in paths:
                if not os.path.isfile(p):
                    raise ValueError(f"photo not found: {p}")
                w, h = results.image_size(p)
                fr = {"image": os.path.abspath(p)}
                cam = results.camera_request(context.scene, w, h) if use_cam else None
                if cam:
                    fr["camera"] = cam
                frames.append(fr)
            use_cam = use_cam and "camera" in frames[0]
        except (RigError, ValueError) as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        payload = {"frames": frames, "num_hypotheses": s.num_hypotheses, "seed": s.seed, "previews": s.previews}
        start = context.scene.frame_current
        first = paths[0]

        def apply(ctx, res):
            results.store_estimate(ctx, ob, res, use_cam)
            n = results.apply_best_per_photo(ctx, ob, start)
            if s.set_background and use_cam:
                w, h = results.image_size(first)
                results.set_camera_background(ctx.scene, first, w, h)
            return f"estimated {len(res['frames'])} photo(s); keyed {n} bones from frame {start}"

        return self.run_task(context, "estimate", payload, f"estimate {len(paths)} photo(s)", apply)


def _known_bones(ob, frame: int) -> set[str]:
    """Mapped bones keyed on ``frame``; if there are none, the selected mapped bones."""
    mapped = set(blender_rig.mapped_bones(ob))
    keyed = blender_rig.keyed_bones(ob, frame) & mapped
    if keyed:
        return keyed
    return blender_rig.selected_bones(ob) & mapped


class POSEDIFF_OT_complete(_TaskOperator, bpy.types.Operator):
    """Fill in the rest of the pose from the bones keyed on this frame (else the selected bones); those stay untouched"""

    bl_idname = "posediff.complete"
    bl_label = "Complete pose"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        s = context.scene.posediff
        try:
            ob = results.target_armature(context)
            known_bones = _known_bones(ob, context.scene.frame_current)
            if not known_bones:
                raise ValueError("no known bones: key some bones on this frame or select them in Pose Mode")
            known, dirs = results.rig_state(ob, known_bones)
            if not known and not dirs:
                raise ValueError("the keyed/selected bones are not in the bone mapping")
        except (RigError, ValueError) as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        payload = {"frames": [{"known": known, "known_directions": dirs}], "num_hypotheses": s.num_hypotheses,
                   "seed": s.seed, "previews": s.previews}
        frame = context.scene.frame_current

        def apply(ctx, res):
            results.store_complete(ctx, res, known_bones)
            n = len(results.apply_hypothesis(ctx, 0, keyframe=True, frame=frame, ob=ob))
            return f"completed: keyed {n} bones ({len(known_bones)} known bones untouched)"

        return self.run_task(context, "complete", payload, "complete pose", apply)


class POSEDIFF_OT_generate(_TaskOperator, bpy.types.Operator):
    """Sample random plausible poses; the first one is keyed on the current frame"""

    bl_idname = "posediff.generate"
    bl_label = "Generate poses"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        s = context.scene.posediff
        try:
            ob = results.target_armature(context)
        except RigError as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        payload = {"num": s.num_generate, "seed": s.seed, "previews": s.previews}
        frame = context.scene.frame_current

        def apply(ctx, res):
            results.store_poses(ctx, res, "generate")
            n = len(results.apply_hypothesis(ctx, 0, keyframe=True, frame=frame, ob=ob))
            return f"generated {len(res['poses'])} poses; keyed the first ({n} bones)"

        return self.run_task(context, "generate", payload, f"generate {s.num_generate} poses", apply)


class POSEDIFF_OT_variations(_TaskOperator, bpy.types.Operator):
    """Poses near the current one (selected bones stay fixed); the first is keyed on this frame"""

    bl_idname = "posediff.variations"
    bl_label = "Variations"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        s = context.scene.posediff
        try:
            ob = results.target_armature(context)
            joints = blender_rig.to_model_scale(ob, blender_rig.posed_joints_world(ob))
            mapped = set(blender_rig.mapped_bones(ob))
            selected = blender_rig.selected_bones(ob) & mapped
            fixed = sorted(blender_rig.bones_to_joints(ob, selected) & set(joints))
        except (RigError, ValueError) as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        payload = {"pose": {k: [round(c, 5) for c in v] for k, v in joints.items()}, "strength": s.strength,
                   "num": s.num_generate, "seed": s.seed, "fixed": fixed, "previews": s.previews}
        frame = context.scene.frame_current

        def apply(ctx, res):
            results.store_poses(ctx, res, "variations")
            for it in ctx.scene.posediff.hypotheses:
                it.placement = "KEEP"
                it.skip_json = results.json.dumps(sorted(selected))
            n = len(results.apply_hypothesis(ctx, 0, keyframe=True, frame=frame, ob=ob))
            return f"{len(res['poses'])} variations; keyed the first ({n} bones)"

        return self.run_task(context, "variations", payload, "variations", apply)


# ----------------------------------------------------------------------------- hypotheses
class POSEDIFF_OT_apply_hypothesis(bpy.types.Operator):
    """Key the selected hypothesis on the current frame"""

    bl_idname = "posediff.apply_hypothesis"
    bl_label = "Apply"
    bl_options = {"REGISTER", "UNDO"}
    index: IntProperty(default=-1, options={"SKIP_SAVE"}, description="-1 = the selected one")

    def execute(self, context):
        s = context.scene.posediff
        i = s.hypothesis_index if self.index < 0 else self.index
        try:
            n = len(results.apply_hypothesis(context, i, keyframe=True))
        except (RigError, IndexError, ValueError) as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        self.report({"INFO"}, f"keyed {n} bones on frame {context.scene.frame_current}")
        return {"FINISHED"}


class POSEDIFF_OT_apply_all(bpy.types.Operator):
    """Key every hypothesis on consecutive frames from the current one"""

    bl_idname = "posediff.apply_all"
    bl_label = "Apply all as frames"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        s = context.scene.posediff
        start = context.scene.frame_current
        try:
            ob = results.target_armature(context)
            if not s.hypotheses:
                raise ValueError("no hypotheses yet: estimate, complete, generate or vary first")
            for i in range(len(s.hypotheses)):
                results.apply_hypothesis(context, i, keyframe=True, frame=start + i, ob=ob)
        except (RigError, IndexError, ValueError) as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        context.scene.frame_set(start)
        self.report({"INFO"}, f"keyed {len(s.hypotheses)} poses on frames {start}-{start + len(s.hypotheses) - 1}")
        return {"FINISHED"}


# ----------------------------------------------------------------------------- mapping
class POSEDIFF_OT_detect_mapping(bpy.types.Operator):
    """Guess the bone mapping from bone names (or load a preset) and save it on the armature"""

    bl_idname = "posediff.detect_mapping"
    bl_label = "Detect bone mapping"
    bl_options = {"REGISTER", "UNDO"}
    preset: EnumProperty(name="Preset", items=[("AUTO", "Auto-detect", "From bone-name synonyms"),
                                               ("RIGIFY_METARIG", "Rigify metarig", ""),
                                               ("RIGIFY_FK", "Rigify rig (FK controls)", ""),
                                               ("MIXAMO", "Mixamo", "")], default="AUTO")

    def execute(self, context):
        from . import properties
        from .rig_presets import detect_mapping

        ob = context.active_object
        if ob is None or ob.type != "ARMATURE":
            self.report({"ERROR"}, "select an armature first")
            return {"CANCELLED"}
        names = [b.name for b in ob.data.bones]
        mapping = detect_mapping(names) if self.preset == "AUTO" else PRESETS[self.preset]
        blender_rig.set_mapping(ob, mapping)
        properties.fill_role_items(ob)
        probs = blender_rig.mapping_problems(mapping, names)
        if probs:
            self.report({"WARNING"}, "; ".join(probs))
        else:
            self.report({"INFO"}, f"mapped {sum(len(v) for v in mapping.values())} bones")
        return {"FINISHED"}


CLASSES = (
    POSEDIFF_OT_start_backend, POSEDIFF_OT_stop_backend, POSEDIFF_OT_check_backend, POSEDIFF_OT_cancel,
    POSEDIFF_OT_watch_job, POSEDIFF_OT_estimate, POSEDIFF_OT_complete, POSEDIFF_OT_generate,
    POSEDIFF_OT_variations, POSEDIFF_OT_apply_hypothesis, POSEDIFF_OT_apply_all, POSEDIFF_OT_detect_mapping,
)
