"""Start the real ``posediff serve`` as a subprocess for the server tests (no mocks).

Through the add-on's own launcher (``addon/backend_process.py``, the one way PoseDiff starts its
backend): the server picks a free port itself (``--port 0``) and the port is read from its ready
line, so parallel test runs never race for a port.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from addon.backend_process import BackendStartError, Server, launch  # noqa: E402

VENV_POSEDIFF = ROOT / ".venv" / "bin" / "posediff"


def backend_command() -> list[str]:
    """The backend entry point: ``.venv/bin/posediff``, else ``python -m backend``."""
    return [str(VENV_POSEDIFF)] if VENV_POSEDIFF.exists() else [sys.executable, "-m", "backend"]


def serve_command() -> list[str]:
    """``posediff serve`` as a command line (for tests that run it to completion themselves)."""
    return backend_command() + ["serve"]


def weights_for_tests(tmp_dir: Path) -> Path:
    """The shipped prior when present, else an untrained prior of the real architecture.

    The server tests check the HTTP machinery and the response shapes, not pose accuracy.
    """
    from backend.prior.model import DEFAULT_WEIGHTS, PoseDenoiser, PriorConfig, save_prior

    if DEFAULT_WEIGHTS.exists():
        return DEFAULT_WEIGHTS
    path = tmp_dir / "untrained_prior.safetensors"
    if not path.exists():
        import torch

        torch.manual_seed(0)
        save_prior(PoseDenoiser(PriorConfig()), path, extra={"note": "untrained, for server tests"})
    return path


@dataclass
class ServerProcess:
    """A running server (``addon.backend_process.Server``) with its token and an httpx client."""

    server: Server
    token: str = ""
    startup_s: float = 0.0

    @property
    def proc(self):
        return self.server.proc

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def ready_line(self) -> str:
        return self.server.ready_line

    @property
    def lines(self) -> list[str]:
        return list(self.server.lines)

    def client(self, token: str | None = "default", **kw) -> httpx.Client:
        headers = {}
        if token == "default":
            token = self.token
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.Client(base_url=self.url, headers=headers, timeout=kw.pop("timeout", 120.0), **kw)

    def output(self) -> str:
        return self.server.output()

    def stop(self, sig=None, timeout: float = 30.0) -> int:
        """Send ``sig`` (default SIGTERM) and wait; returns the exit status."""
        return self.server.stop(sig, grace_s=timeout)


def start_server(args: list[str], env: dict[str, str], token: str = "", deadline_s: float = 90.0) -> ServerProcess:
    """Start ``posediff serve --port 0 ARGS`` and wait for its ready line and ``/v1/health``.

    Raises:
        RuntimeError: the server exited or did not get ready in ``deadline_s`` (with its output).
    """
    t0 = time.monotonic()
    server = launch(backend_command(), port=0, args=args, env={**os.environ, **env}, cwd=ROOT)
    try:
        server.wait_ready(deadline_s)
    except BackendStartError as e:
        raise RuntimeError(f"server did not start: {e}") from None
    while time.monotonic() - t0 < deadline_s:
        try:
            if httpx.get(server.url + "/v1/health", timeout=5).status_code == 200:
                return ServerProcess(server, token, time.monotonic() - t0)
        except httpx.TransportError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError("server never answered /v1/health:\n" + server.output())
