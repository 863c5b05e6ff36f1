# SPDX-License-Identifier: GPL-3.0-or-later
"""Background jobs: the network call runs in a worker thread, the result is applied on
Blender's main thread from a ``bpy.app.timers`` callback (bpy data is never touched from the
worker). One job at a time; ``run_blocking`` does the same synchronously (scripts, tests).

Applying may itself take long (keying a minute of video: 10 s to minutes): ``on_done`` may
return a generator, which the timer then advances in slices of ``SLICE_SECONDS`` between
Blender's events (the job stays busy, its progress is the generator's yielded fraction, and
cancelling throws ``JobCancelled`` into it, which puts the keys back as they were).
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable, Generator

from .client import BackendError, Client, JobCancelled

POLL_SECONDS = 0.1
#: How long one timer tick may apply a result before Blender handles events again.
SLICE_SECONDS = 0.1


class Job:
    """One backend task.

    Attributes:
        task, payload: what is sent (``Client.run``).
        state: ``"running"``, ``"done"``, ``"failed"`` or ``"cancelled"``.
        progress: 0..1.  result: the response body.  error: message for the user.
        on_done: ``on_done(job)`` called on the main thread once the job ends (any state); it
            may return a generator of progress fractions that finishes applying (``steps``).
        phase: ``""`` while the backend works, ``"applying"`` while ``steps`` runs.
    """

    def __init__(self, client: Client, task: str, payload: dict, label: str,
                 on_done: Callable[["Job"], None] | None = None):
        self.client, self.task, self.payload, self.label = client, task, payload, label
        self.on_done = on_done
        self.state = "running"
        self.progress = 0.0
        self.result: dict | None = None
        self.error: str = ""
        self.steps: Generator | None = None
        self.phase = ""
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
    """A job is running, or its result is still being applied."""
    return _current is not None and (not _current.finished or _current.steps is not None)


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
        if job.steps is None:
            _finish(job)
        if job.steps is None or advance(job, SLICE_SECONDS):
            _redraw()
            return None
        _redraw()
        return 0.01  # Blender handles events, then the next slice

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
    if job.steps is not None:
        advance(job, float("inf"))
    return job


def _finish(job: Job) -> None:
    """Apply a finished job (``on_done``; a generator it returns becomes ``job.steps``), then let
    go of its request, its answer and the apply closure: the panel keeps showing the job's label,
    state and error, and a 60 s clip's estimate or track is hundreds of MB as Python objects."""
    if job.on_done is not None:
        try:
            out = job.on_done(job)
            if isinstance(out, Generator):
                job.steps, job.phase, job.progress = out, "applying", 0.0
        except Exception as e:  # noqa: BLE001 - shown in the panel
            job.state, job.error = "failed", f"applying the result failed: {type(e).__name__}: {e}"
            traceback.print_exc()
    job.payload = job.result = job.on_done = None
    _redraw()


def advance(job: Job, budget_s: float) -> bool:
    """Run ``job.steps`` for about ``budget_s`` seconds (at least one step); a cancel request
    is thrown into it as ``JobCancelled``. Returns True when it is over (``job.steps`` None)."""
    end = time.perf_counter() + budget_s
    try:
        while True:
            if job.cancel_requested:
                job.state, job.error = "cancelled", "cancelled"
                job.steps.throw(JobCancelled("cancelled while applying"))
            else:
                job.progress = max(0.0, min(1.0, float(next(job.steps))))
            if time.perf_counter() >= end:
                return False
    except StopIteration:
        pass
    except JobCancelled:  # not handled inside: the keys are back as they were all the same
        pass
    except Exception as e:  # noqa: BLE001 - the generator put the scene back; shown in the panel
        job.state, job.error = "failed", f"applying the result failed: {type(e).__name__}: {e}"
        traceback.print_exc()
    job.steps, job.phase = None, ""
    return True


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
