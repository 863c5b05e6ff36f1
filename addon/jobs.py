# SPDX-License-Identifier: GPL-3.0-or-later
"""Background jobs: the network call runs in a worker thread, the result is applied on
Blender's main thread from a ``bpy.app.timers`` callback (bpy data is never touched from the
worker). One job at a time; ``run_blocking`` does the same synchronously (scripts, tests).
"""

from __future__ import annotations

import threading
import traceback
from typing import Callable

from .client import BackendError, Client, JobCancelled

POLL_SECONDS = 0.1


class Job:
    """One backend task.

    Attributes:
        task, payload: what is sent (``Client.run``).
        state: ``"running"``, ``"done"``, ``"failed"`` or ``"cancelled"``.
        progress: 0..1.  result: the response body.  error: message for the user.
        on_done: ``on_done(job)`` called on the main thread once the job ends (any state).
    """

    def __init__(self, client: Client, task: str, payload: dict, label: str,
                 on_done: Callable[["Job"], None] | None = None):
        self.client, self.task, self.payload, self.label = client, task, payload, label
        self.on_done = on_done
        self.state = "running"
        self.progress = 0.0
        self.result: dict | None = None
        self.error: str = ""
        self._cancel = threading.Event()
        self._finished = threading.Event()
        self._thread: threading.Thread | None = None

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    def _work(self) -> None:
        try:
            self.result = self.client.run(self.task, self.payload, self._set_progress, self._cancel.is_set)
            self.state = "done"
            self.progress = 1.0
        except JobCancelled:
            self.state = "cancelled"
            self.error = "cancelled"
        except BackendError as e:
            self.state, self.error = "failed", str(e)
        except Exception as e:  # noqa: BLE001 - anything else is reported, never lost
            self.state, self.error = "failed", f"{type(e).__name__}: {e}"
            traceback.print_exc()
        finally:
            self._finished.set()

    def _set_progress(self, p: float) -> None:
        self.progress = max(0.0, min(1.0, p))

    @property
    def finished(self) -> bool:
        return self._finished.is_set()


_current: Job | None = None


def current() -> Job | None:
    """The running job (or the last one, until another starts)."""
    return _current


def busy() -> bool:
    return _current is not None and not _current.finished


def start(job: Job) -> Job:
    """Run ``job`` in a worker thread and poll it from a ``bpy.app.timers`` callback.

    Raises:
        RuntimeError: if another job is still running.
    """
    import bpy

    global _current
    if busy():
        raise RuntimeError(f"PoseDiff is busy with '{_current.label}': wait or cancel it first")
    _current = job
    job._thread = threading.Thread(target=job._work, name=f"posediff-{job.task}", daemon=True)
    job._thread.start()

    def tick():
        if not job.finished:
            _redraw()
            return POLL_SECONDS
        _finish(job)
        return None

    bpy.app.timers.register(tick, first_interval=POLL_SECONDS)
    return job


def run_blocking(job: Job) -> Job:
    """Run ``job`` in this thread and call its ``on_done`` (for scripts and tests)."""
    global _current
    if busy():
        raise RuntimeError(f"PoseDiff is busy with '{_current.label}': wait or cancel it first")
    _current = job
    job._work()
    _finish(job)
    return job


def _finish(job: Job) -> None:
    """Apply a finished job (``on_done``), then let go of its request, its answer and the apply
    closure: the panel keeps showing the job's label, state and error, and a 60 s clip's
    estimate or track is hundreds of MB as Python objects."""
    if job.on_done is not None:
        try:
            job.on_done(job)
        except Exception as e:  # noqa: BLE001 - shown in the panel
            job.state, job.error = "failed", f"applying the result failed: {type(e).__name__}: {e}"
            traceback.print_exc()
    job.payload = job.result = job.on_done = None
    _redraw()


def cancel_current() -> bool:
    """Ask the running job to stop; True if there was one."""
    if busy():
        _current.cancel()
        return True
    return False


def forget() -> None:
    """Cancel and drop the current job (unregister)."""
    global _current
    if _current is not None:
        _current.cancel()
    _current = None


def _redraw() -> None:
    try:
        import bpy

        for win in bpy.context.window_manager.windows:
            for area in win.screen.areas:
                if area.type == "VIEW_3D":
                    area.tag_redraw()
    except Exception:  # noqa: BLE001 - no UI (background mode)
        pass
