# SPDX-License-Identifier: GPL-3.0-or-later
"""Run the real ``posediff serve`` as a subprocess on a free loopback port for the demo.

The server gets a random bearer token through ``POSEDIFF_TOKEN``; readiness is checked through
the add-on's own HTTP client (``addon/client.py``, ``GET /v1/health``). The process is stopped
when the ``with`` block ends, also on errors and Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator

from addon.client import BackendError, Client


class BackendStartError(RuntimeError):
    """``posediff serve`` did not come up (message carries the end of its log)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_backend(posediff: Path, log_path: Path, cwd: Path, port: int | None = None,
                    start_timeout_s: float = 120.0) -> Iterator[Client]:
    """Start ``posediff serve --port PORT`` and yield an authenticated ``addon.client.Client``.

    Args:
        posediff: the ``posediff`` entry point (``.venv/bin/posediff``).
        log_path: file that receives the server's stdout and stderr.
        cwd: working directory of the server process.
        port: loopback port (default: a free one).
        start_timeout_s: how long to wait for ``/v1/health`` (seconds).
    Yields:
        a ``Client`` for ``http://127.0.0.1:PORT`` carrying the random token.
    Raises:
        BackendStartError: the entry point is missing, the process exited, or health never answered.
    """
    if not Path(posediff).exists():
        raise BackendStartError(f"{posediff} not found: run 'python3 build.py setup' (creates .venv) first")
    port = port or free_port()
    token = secrets.token_hex(16)
    env = dict(os.environ, POSEDIFF_TOKEN=token)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([str(posediff), "serve", "--port", str(port)], cwd=cwd, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        client = Client(f"http://127.0.0.1:{port}", token, timeout=30.0)
        deadline = time.monotonic() + start_timeout_s
        while True:
            try:
                client.health()
                break
            except BackendError:
                if proc.poll() is not None:
                    raise BackendStartError(
                        f"posediff serve exited with status {proc.returncode}: {_tail(log_path)}") from None
                if time.monotonic() > deadline:
                    raise BackendStartError(
                        f"posediff serve did not answer /v1/health within {start_timeout_s:.0f} s: "
                        f"{_tail(log_path)}") from None
                time.sleep(0.25)
        yield client
    finally:
        stop(proc)


def stop(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM the server, then SIGKILL if it has not exited after ``grace_s`` seconds."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _tail(path: Path, n: int = 1500) -> str:
    try:
        return path.read_text(errors="replace")[-n:].strip() or "(no output)"
    except OSError:
        return "(no log)"
