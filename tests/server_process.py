"""Start the real ``posediff serve`` as a subprocess for the server tests (no mocks).

The server picks a free port itself (``--port 0``) and the tests read the port from its
ready line, so parallel test runs never race for a port.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import queue
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
VENV_POSEDIFF = ROOT / ".venv" / "bin" / "posediff"
READY_PREFIX = "posediff serving on "


@functools.cache
def serve_command() -> list[str]:
    """``posediff serve`` when the CLI has it, else ``python -m backend.http.serve``."""
    if VENV_POSEDIFF.exists() and importlib.util.find_spec("backend.cli") is not None:
        probe = subprocess.run([str(VENV_POSEDIFF), "serve", "--help"], capture_output=True, text=True, timeout=60)
        if probe.returncode == 0 and "--max-body-mb" in probe.stdout:
            return [str(VENV_POSEDIFF), "serve"]
    return [sys.executable, "-m", "backend.http.serve"]


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
    """A running server: its process, base URL, token, and every line it printed."""

    proc: subprocess.Popen
    url: str = ""
    port: int = 0
    token: str = ""
    ready_line: str = ""
    startup_s: float = 0.0
    lines: list[str] = field(default_factory=list)
    _q: queue.Queue = field(default_factory=queue.Queue)

    def client(self, token: str | None = "default", **kw) -> httpx.Client:
        headers = {}
        if token == "default":
            token = self.token
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.Client(base_url=self.url, headers=headers, timeout=kw.pop("timeout", 120.0), **kw)

    def output(self) -> str:
        self._drain()
        return "\n".join(self.lines)

    def _drain(self):
        while True:
            try:
                self.lines.append(self._q.get_nowait())
            except queue.Empty:
                return

    def stop(self, sig=None, timeout: float = 30.0) -> int:
        """Send ``sig`` (default SIGTERM) and wait; returns the exit status."""
        import signal

        if self.proc.poll() is None:
            self.proc.send_signal(sig or signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise


def start_server(args: list[str], env: dict[str, str], token: str = "", deadline_s: float = 90.0) -> ServerProcess:
    """Start ``posediff serve ARGS`` and wait for its ready line and ``/v1/health``.

    Raises:
        RuntimeError: the server exited or did not get ready in ``deadline_s`` (with its output).
    """
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
    command = serve_command() + args
    t0 = time.monotonic()
    proc = subprocess.Popen(command, cwd=ROOT, env=full_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    sp = ServerProcess(proc, token=token)

    def pump():
        for line in proc.stdout:
            sp._q.put(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    while time.monotonic() - t0 < deadline_s:
        try:
            line = sp._q.get(timeout=0.2)
        except queue.Empty:
            if proc.poll() is not None:
                break
            continue
        sp.lines.append(line)
        if line.startswith(READY_PREFIX):
            sp.ready_line = line
            sp.url = line[len(READY_PREFIX):].split()[0]
            sp.port = int(sp.url.rsplit(":", 1)[1])
            break
    if not sp.url:
        proc.kill()
        proc.wait(10)
        raise RuntimeError("server did not start:\n" + sp.output())
    while time.monotonic() - t0 < deadline_s:
        try:
            if httpx.get(sp.url + "/v1/health", timeout=5).status_code == 200:
                sp.startup_s = time.monotonic() - t0
                return sp
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server never answered /v1/health:\n" + sp.output())
