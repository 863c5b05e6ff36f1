# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared operator plumbing: the task flow (payload -> background job -> apply on the main thread),
the ``blocking`` option, undo pushes and error pop-ups.

Task operators validate the rig and the input first, then send the request as a server job
from a worker thread (``jobs``); the result is applied from a ``bpy.app.timers`` callback, so
the UI never waits on the network. ``blocking=True`` does the same synchronously (scripts and
tests): errors are then reported with ``self.report({'ERROR'}, ...)`` and ``{'CANCELLED'}``.
On any error the scene is left as it was.
"""

from __future__ import annotations

import inspect
import textwrap

import bpy
from bpy.props import BoolProperty

from . import jobs
from .blender_rig import RigError
from .client import BackendError, JobCancelled
from .preferences import make_client

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

    def refuse(self, context, message: str) -> set:
        """Report ``message`` as this operator's error, nothing sent or changed; the panel's error
        line shows it too (not an earlier job's error)."""
        context.scene.posediff.last_error = message
        self.report({"ERROR"}, message)
        return {"CANCELLED"}

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
                return None
            return applying(ctx, s, job.result)

        def applying(ctx, s, result):
            # a generator for jobs: an apply that is itself a generator (a clip's keys) runs in
            # slices between Blender's events, cancellable; a plain one ends at the first step
            try:
                out = apply(ctx, result)
                msg = (yield from out) if inspect.isgenerator(out) else out
            except JobCancelled:
                s.last_error = outcome["error"] = f"{task}: cancelled while keying; the rig's keys are as they were"
                return
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
            return self.refuse(context, str(e))
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


def lens_camera(settings) -> dict | None:
    """The request ``camera`` for the panel's *Lens* (``{"focal_35mm": mm}``), or None at 0 (the file's
    EXIF or metadata, else the backend's default).

    Raises:
        ValueError: a lens shorter than 4 mm (no 35 mm-equivalent focal length is).
    """
    if settings.lens <= 0:
        return None
    if settings.lens < 4:
        raise ValueError(f"Lens {settings.lens:g} mm: give a 35 mm-equivalent focal length (a phone's main camera is "
                         "about 26 mm), or 0 to take it from the file")
    return {"focal_35mm": float(settings.lens)}
