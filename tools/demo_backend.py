# SPDX-License-Identifier: GPL-3.0-or-later
"""Run the real ``posediff serve`` as a subprocess for the demo.

Started through the add-on's own launcher (``addon/backend_process.py``, the one way PoseDiff
starts its backend) with ``--port 0``: the server binds a free loopback port itself and the demo
reads it from the ready line. The server gets a random bearer token through ``POSEDIFF_TOKEN``;
readiness is then checked through the add-on's HTTP client (``addon/client.py``,
``GET /v1/health``). The process is stopped when the ``with`` block ends, also on errors and
Ctrl-C.
"""

from __future__ import annotations

import contextlib
import secrets
from pathlib import Path
from typing import Iterator

from addon.backend_process import BackendStartError, launch
from addon.client import BackendError, Client

__all__ = ["BackendStartError", "running_backend"]


@contextlib.contextmanager
def running_backend(posediff: Path, log_path: Path, cwd: Path, port: int | None = None,
                    start_timeout_s: float = 120.0) -> Iterator[Client]:
    """Start ``posediff serve --port PORT`` and yield an authenticated ``addon.client.Client``.

    Args:
        posediff: the ``posediff`` entry point (``.venv/bin/posediff``).
        log_path: file that receives the server's stdout and stderr (rewritten).
        cwd: working directory of the server process.
        port: loopback port (default 0: the server picks a free one).
        start_timeout_s: how long to wait for the ready line (seconds).
    Yields:
        a ``Client`` for ``http://127.0.0.1:PORT`` carrying the random token.
    Raises:
        BackendStartError: the entry point is missing, the process exited, or it never got ready.
    """
    if not Path(posediff).exists():
        raise BackendStartError(f"{posediff} not found: run 'python3 build.py setup' (creates .venv) first")
    token = secrets.token_hex(16)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.unlink(missing_ok=True)
    server = launch([posediff], port=port or 0, token=token, cwd=cwd, log_path=log_path)
    try:
        client = Client(server.wait_ready(start_timeout_s), token, timeout=30.0)
        try:
            client.health()
        except BackendError as e:
            raise BackendStartError(f"posediff serve is up at {client.url} but /v1/health failed: {e}") from None
        yield client
    finally:
        server.stop()
