"""One worker thread that runs all model work, in order, as jobs with progress and cancel.

The model is not shared between threads: every request (a synchronous HTTP call or a job
submitted with ``POST /v1/jobs/{task}``) becomes a :class:`Job` in one FIFO queue, and a single
worker thread runs them one at a time. A job's function is called as
``fn(progress, cancel)``, where ``progress(fraction)`` records how far it is (0..1) and
``cancel() -> bool`` says whether it was asked to stop (the pose service checks it between
denoising steps and raises :class:`backend.errors.Cancelled`).

Finished jobs (done, failed, cancelled) are kept for :attr:`JobQueue.keep_finished` jobs, oldest
forgotten first, so that a client can still read a result after it finished; results kept as bytes
(the server keeps its JSON, ``serialize``) also count against :attr:`JobQueue.keep_result_bytes`,
oldest forgotten first but never the newest (measured: a 60 s clip's track as Python objects held
470 MB each, so 64 kept overrides of it would have held 30 GB; its JSON is 30 MB).
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable

from backend.errors import Cancelled, InputError

log = logging.getLogger("posediff.jobs")

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINISHED = frozenset({DONE, FAILED, CANCELLED})

JobFn = Callable[[Callable[[float], None], Callable[[], bool]], Any]


class QueueFull(RuntimeError):
    """Too many jobs waiting; the client should retry later."""


class ShuttingDown(RuntimeError):
    """The queue no longer accepts jobs (the server is stopping)."""


@dataclass
class Job:
    """One unit of model work.

    Attributes:
        id: unguessable job id (hex).
        task: what it runs (``estimate``, ``generate``, ...).
        state: ``queued``, ``running``, ``done``, ``failed`` or ``cancelled``.
        progress: 0..1.
        result: what the function returned (when done), after ``serialize``.
        error: a readable message (when failed); ``error_field`` names the request field when
            the failure was an :class:`InputError`.
        future: resolves to the raw return value or raises the job's exception (for waiters).
    """

    id: str
    task: str
    fn: JobFn = field(repr=False)
    serialize: Callable[[Any], Any] | None = field(default=None, repr=False)
    keep: bool = True
    state: str = QUEUED
    progress: float = 0.0
    result: Any = None
    error: str | None = None
    error_field: str | None = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event, repr=False)
    future: Future = field(default_factory=Future, repr=False)

    def status(self) -> dict:
        """JSON-ready status: id, task, state, progress, result (done), error (failed), timestamps (s)."""
        return {
            "id": self.id,
            "task": self.task,
            "state": self.state,
            "progress": round(self.progress, 4),
            "result": self.result if self.state == DONE else None,
            "error": self.error,
            "error_field": self.error_field,
            "cancel_requested": self.cancel_event.is_set(),
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
        }


class JobQueue:
    """A FIFO of jobs run by one worker thread.

    Args:
        keep_finished: how many finished jobs to remember (oldest forgotten first).
        keep_result_bytes: most bytes of ``bytes`` results to remember in all (oldest finished
            jobs forgotten first; the newest finished job is always kept).
        max_pending: how many jobs may wait (queued, not running) before :meth:`submit` raises
            :class:`QueueFull`.
    """

    def __init__(self, keep_finished: int = 64, max_pending: int = 64, keep_result_bytes: int = 512 * 2**20):
        self.keep_finished = keep_finished
        self.keep_result_bytes = keep_result_bytes
        self.max_pending = max_pending
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._queue: queue.Queue[Job | tuple | None] = queue.Queue()
        self._pending = 0
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="posediff-model-worker", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------------- client side

    def submit(self, task: str, fn: JobFn, serialize: Callable[[Any], Any] | None = None, keep: bool = True) -> Job:
        """Queue ``fn(progress, cancel)``; returns the :class:`Job` at once (state ``queued``).

        Args:
            task: a label (the task name).
            fn: the work; runs on the worker thread.
            serialize: applied to the return value for :attr:`Job.result` (e.g. pydantic to JSON).
            keep: remember the job once finished (False for synchronous requests, whose caller
                waits on :attr:`Job.future`).
        Raises:
            QueueFull: ``max_pending`` jobs are already waiting.
            ShuttingDown: :meth:`close` was called.
        """
        with self._lock:
            if self._closed:
                raise ShuttingDown("the server is shutting down")
            if self._pending >= self.max_pending:
                raise QueueFull(f"{self._pending} jobs are already waiting; retry later")
            job = Job(id=secrets.token_hex(12), task=task, fn=fn, serialize=serialize, keep=keep)
            self._jobs[job.id] = job
            self._pending += 1
        self._queue.put(job)
        return job

    def get(self, job_id: str) -> Job | None:
        """The job with this id, or None (unknown or forgotten)."""
        with self._lock:
            return self._jobs.get(job_id)

    def list(self) -> list[Job]:
        """All remembered jobs, oldest first."""
        with self._lock:
            return list(self._jobs.values())

    def cancel(self, job_id: str) -> Job | None:
        """Ask a job to stop. A queued job is cancelled at once; a running one at its next check.

        Returns the job (None if unknown); cancelling a finished job changes nothing.
        """
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.state in FINISHED:
                return job
            job.cancel_event.set()
            if job.state == QUEUED:
                self._finish(job, CANCELLED, exc=Cancelled("cancelled before it started"))
        return job

    def close(self, wait: float | None = 10.0) -> None:
        """Stop accepting jobs, cancel every unfinished one and stop the worker thread.

        Args:
            wait: seconds to wait for the running job to notice its cancellation (None: forever).
        """
        with self._lock:
            self._closed = True
            unfinished = [j for j in self._jobs.values() if j.state not in FINISHED]
        for job in unfinished:
            self.cancel(job.id)
        self._queue.put(None)
        self._thread.join(wait)

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn()`` on the worker thread, after the jobs queued before it, and return its value
        (its exception is raised here, not logged: no job is recorded).

        Build the model here (``posediff serve`` does): torch's CPU kernels parallelise through
        OpenMP, whose GNU runtime keeps one thread team per thread that has used it; once the
        main thread has a team and the worker makes a second, there are more OpenMP threads than
        cores and libgomp throttles their spin-wait, so every parallel region waits on a futex.
        Measured on 2 cores: a 60-frame video estimate 11.4 s with all torch work on the worker,
        17-18 s when the model was loaded on the main thread (a 10 s clip over HTTP: 69 s -> see
        the README's speed table).
        """
        box: Future = Future()
        self._queue.put((fn, box))
        return box.result()

    @property
    def pending(self) -> int:
        """Jobs waiting to run (not counting the running one)."""
        with self._lock:
            return self._pending

    # ------------------------------------------------------------------------- worker side

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            if isinstance(job, tuple):  # call(): a function to run here
                fn, box = job
                try:
                    box.set_result(fn())
                except BaseException as e:  # noqa: BLE001 - raised in the caller's thread
                    box.set_exception(e)
                continue
            with self._lock:
                if job.state != QUEUED:  # cancelled while waiting
                    continue
                self._pending -= 1
                job.state = RUNNING
                job.started = time.time()
            self._execute(job)

    def _execute(self, job: Job) -> None:
        def progress(fraction: float) -> None:
            try:
                f = float(fraction)
            except (TypeError, ValueError):
                return
            if f == f:  # not NaN
                job.progress = min(1.0, max(job.progress, f, 0.0))

        try:
            value = job.fn(progress, job.cancel_event.is_set)
            result = job.serialize(value) if job.serialize is not None else value
        except Cancelled as e:
            with self._lock:
                self._finish(job, CANCELLED, exc=e)
        except BaseException as e:  # noqa: BLE001 - a job's failure must not stop the worker
            if not isinstance(e, InputError):
                log.exception("job %s (%s) failed", job.id, job.task)
            with self._lock:
                self._finish(job, FAILED, exc=e)
        else:
            with self._lock:
                job.result = result
                job.progress = 1.0
                # a kept job's future holds what is kept (its result), not the response objects too
                self._finish(job, DONE, value=result if job.keep and job.serialize is not None else value)
        finally:
            # the request (the job's closure holds it: a long clip's frames are hundreds of MB as
            # objects) is not needed once the job ran, and a kept job is remembered for long
            job.fn = None

    def _finish(self, job: Job, state: str, value: Any = None, exc: BaseException | None = None) -> None:
        """Record the end of a job (call with the lock held)."""
        if job.state == QUEUED:
            self._pending -= 1
        job.state = state
        job.finished = time.time()
        if isinstance(exc, InputError):
            job.error, job.error_field = exc.message, exc.field
        elif state == FAILED:
            job.error = f"internal error ({type(exc).__name__}); see the server log for job {job.id}"
        elif state == CANCELLED:
            job.error = None
        if not job.keep:
            self._jobs.pop(job.id, None)
        if not job.future.done():
            if exc is not None:  # a kept job's without its traceback (whose frames hold the request)
                job.future.set_exception(exc.with_traceback(None) if job.keep else exc)
            else:
                job.future.set_result(value)
        self._forget_old()

    def _forget_old(self) -> None:
        finished = [j for j in self._jobs.values() if j.state in FINISHED]
        drop = max(0, len(finished) - self.keep_finished)
        held = sum(len(j.result) for j in finished[drop:] if isinstance(j.result, bytes))
        while drop < len(finished) - 1 and held > self.keep_result_bytes:
            if isinstance(finished[drop].result, bytes):
                held -= len(finished[drop].result)
            drop += 1
        for j in finished[:drop]:
            del self._jobs[j.id]
