# SPDX-License-Identifier: GPL-3.0-or-later
"""Operators that control the backend: start, stop, check the connection, cancel/watch a job."""

from __future__ import annotations

import os

import bpy

from . import backend_process, jobs, status
from .client import BackendError
from .operators_common import BLOCKING
from .preferences import make_client, prefs, prior_setting


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


CLASSES = (POSEDIFF_OT_start_backend, POSEDIFF_OT_stop_backend, POSEDIFF_OT_check_backend, POSEDIFF_OT_cancel,
           POSEDIFF_OT_watch_job)
