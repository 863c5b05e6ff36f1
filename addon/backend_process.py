# SPDX-License-Identifier: GPL-3.0-or-later
"""Start and stop ``posediff serve`` (pure Python, no bpy).

The one way PoseDiff starts its backend: the add-on's *Start backend* button (``start``), the
demo (``tools/demo_backend.py``) and the tests (``tests/server_process.py``) all go through
``launch()``. It runs ``<posediff> serve --host H --port P ...`` with the token in
``POSEDIFF_TOKEN``; a thread reads the server's output (kept in memory, copied to a log file)
and ``Server.wait_ready()`` returns once the server printed its ready line,
``posediff serving on http://HOST:PORT (device ..., token ...)``, which gives the port it really
listens on. Pass ``port=0`` and the server binds a free port itself: nothing can take the port
between choosing and binding it.
"""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

#: What ``posediff serve`` prints, then ``http://HOST:PORT (...)``, once it accepts requests.
READY_PREFIX = "posediff serving on "
#: Lines of server output kept in memory (the log file has all of them).
KEEP_LINES = 5000


class BackendStartError(RuntimeError):
    """``posediff serve`` could not be run, exited, or printed no ready line in time (the
    message carries the end of its output)."""


def checkout_dir() -> Path | None:
    """The PoseDiff checkout this add-on was built from (``checkout.json`` written into the zip
    by ``build.py``), or the folder above the add-on when it runs from a checkout."""
    here = Path(__file__).resolve().parent
    try:
        import json

        return Path(json.loads((here / "checkout.json").read_text())["checkout"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return here.parent if (here.parent / "build.py").exists() else None


def default_executable() -> str | None:
    """The default backend: the checkout's ``.venv/bin/posediff``, else ``posediff`` on PATH."""
    root = checkout_dir()
    for cand in ((root / ".venv" / "bin" / "posediff", root / ".venv" / "Scripts" / "posediff.exe") if root else ()):
        if cand.exists():
            return str(cand)
    return shutil.which("posediff")


def resolve_command(setting: str) -> list[str]:
    """The backend command from the preference.

    ``setting`` may be: empty (the checkout's ``.venv/bin/posediff``, else ``posediff`` on PATH), a virtual environment folder
    (``<venv>/bin/posediff``), the ``posediff`` executable, or a full command line.

    Raises:
        FileNotFoundError: with what was tried and how to fix it.
    """
    s = (setting or "").strip()
    if not s:
        exe = default_executable()
        if not exe:
            raise FileNotFoundError(
                "no backend found: neither the PoseDiff checkout's .venv/bin/posediff (run 'python3 build.py "
                "setup' there) nor 'posediff' on PATH; set 'Backend command' in Preferences > Add-ons > PoseDiff "
                "to the backend's virtual environment folder"
            )
        return [exe]
    p = Path(os.path.expanduser(s))
    if p.is_dir():
        for cand in (p / "bin" / "posediff", p / "Scripts" / "posediff.exe", p / ".venv" / "bin" / "posediff"):
            if cand.exists():
                return [str(cand)]
        raise FileNotFoundError(f"{p} has no bin/posediff: give the backend's virtual environment folder")
    if p.exists():
        return [str(p)]
    parts = s.split()
    if shutil.which(parts[0]) or Path(parts[0]).exists():
        return parts
    raise FileNotFoundError(f"backend command {s!r} not found: give the posediff executable or its venv folder")


def prior_arguments(prior: str) -> list[str]:
    """``--prior`` for the backend: ``[]`` for the default prior, else ``["--prior", "cmu" | PATH]``.

    Raises:
        FileNotFoundError: ``prior`` is a weights file that does not exist.
    """
    p = (prior or "").strip()
    if not p or p == "default":
        return []
    if p != "cmu":
        path = Path(os.path.expanduser(p))
        if not path.is_file():
            raise FileNotFoundError(f"prior file {p!r} not found: choose an existing .safetensors file for "
                                    "'Prior' in Preferences > Add-ons > PoseDiff")
        p = str(path)
    return ["--prior", p]


class Server:
    """A started ``posediff serve`` process and what it printed.

    Attributes:
        proc: the process (stdout and stderr merged into one pipe, read by a thread).
        command: the command line it was started with.
        url: ``http://HOST:PORT`` from the ready line ("" until ready).
        port: the TCP port it listens on (0 until ready).
        ready_line: the whole ready line.
        lines: its last ``KEEP_LINES`` output lines.
    """

    def __init__(self, proc: subprocess.Popen, command: list[str], log=None):
        self.proc = proc
        self.command = command
        self.url = ""
        self.port = 0
        self.ready_line = ""
        self.lines: collections.deque[str] = collections.deque(maxlen=KEEP_LINES)
        self._ready = threading.Event()
        self._eof = threading.Event()
        self._pump = threading.Thread(target=self._read_output, args=(log,), daemon=True, name="posediff-serve-output")
        self._pump.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def _read_output(self, log) -> None:
        try:
            for raw in self.proc.stdout:
                line = raw.rstrip("\r\n")
                self.lines.append(line)
                if log is not None:
                    log.write(line + "\n")
                    log.flush()
                if not self._ready.is_set() and line.startswith(READY_PREFIX):
                    self.ready_line = line
                    self.url = line[len(READY_PREFIX):].split()[0]
                    self.port = int(self.url.rsplit(":", 1)[1])
                    self._ready.set()
        except (OSError, ValueError):  # pipe closed under us, or a log write failed
            pass
        finally:
            if log is not None:
                log.close()
            self.proc.stdout.close()
            self._eof.set()

    def output(self, last: int | None = None) -> str:
        """What the server printed (its last ``last`` lines; all that are kept by default)."""
        lines = list(self.lines)
        return "\n".join(lines[-last:] if last else lines)

    def wait_ready(self, timeout_s: float = 120.0) -> str:
        """Wait for the ready line; returns ``url``.

        Raises:
            BackendStartError: the process exited first, or ``timeout_s`` passed (the process
                is then stopped); the message ends with its last output lines.
        """
        deadline = time.monotonic() + timeout_s
        while not self._ready.wait(0.1):
            if self._eof.is_set() or self.proc.poll() is not None:
                self._eof.wait(2.0)
                if self._ready.is_set():
                    break
                code = self.proc.wait()
                raise BackendStartError(f"posediff serve exited with status {code}: {self.output(20) or '(no output)'}")
            if time.monotonic() > deadline:
                self.stop()
                raise BackendStartError(f"posediff serve printed no ready line within {timeout_s:.0f} s: "
                                        f"{self.output(20) or '(no output)'}")
        return self.url

    def stop(self, sig=None, grace_s: float = 10.0) -> int:
        """Send ``sig`` (default SIGTERM), wait ``grace_s`` seconds, then kill; returns the exit status."""
        if self.proc.poll() is None:
            if sig is None:
                self.proc.terminate()
            else:
                self.proc.send_signal(sig)
            try:
                self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(grace_s)
        self._pump.join(2.0)
        return self.proc.returncode


def launch(command: list[str], host: str = "127.0.0.1", port: int = 0, args=(), token: str = "",
           env: dict | None = None, cwd: str | os.PathLike | None = None,
           log_path: str | os.PathLike | None = None) -> Server:
    """Start ``COMMAND serve --host HOST --port PORT ARGS...``; call ``wait_ready()`` on the result.

    Args:
        command: the backend entry point, e.g. ``[".venv/bin/posediff"]`` or
            ``[sys.executable, "-m", "backend"]`` (see ``resolve_command``).
        host, port: where to listen; ``port=0`` lets the server pick a free port.
        args: further ``posediff serve`` options (``--device cpu``, ``--weights F``...).
        token: put in ``POSEDIFF_TOKEN`` when not empty.
        env: the environment (default: this process's), ``PYTHONUNBUFFERED=1`` added.
        cwd: working directory of the server.
        log_path: file that gets a copy of everything the server prints (appended).
    Raises:
        BackendStartError: the command cannot be run. OSError: the log file cannot be opened.
    """
    cmd = [str(c) for c in command] + ["serve", "--host", host, "--port", str(port), *map(str, args)]
    full_env = dict(os.environ if env is None else env, PYTHONUNBUFFERED="1")
    if token:
        full_env["POSEDIFF_TOKEN"] = token
    log = open(log_path, "a", encoding="utf-8") if log_path else None
    kw = {"start_new_session": True} if sys.platform != "win32" else {}
    try:
        proc = subprocess.Popen(cmd, cwd=cwd, env=full_env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, encoding="utf-8", errors="replace", **kw)
    except OSError as e:
        if log is not None:
            log.close()
        raise BackendStartError(f"cannot run {cmd[0]}: {e.strerror or e}") from None
    return Server(proc, cmd, log)


# ----------------------------------------------------------------------------- the add-on's backend
_server: Server | None = None


def start(command_setting: str, url: str, token: str = "", log_path: str | None = None, prior: str = "") -> Server:
    """The add-on's *Start backend*: launch the preference's command on the host and port of
    the backend URL (the address the add-on talks to); ``token`` (if any) goes in POSEDIFF_TOKEN;
    ``prior``: ``default`` (or empty), ``cmu`` or the path of a ``.safetensors`` prior (``--prior``).

    Returns the started server (also kept here so ``stop()`` and Blender's exit end it); it is
    ready once ``current().url`` is set.
    Raises FileNotFoundError (see ``resolve_command``, ``prior_arguments``), BackendStartError, OSError (log file),
    or RuntimeError if one already runs.
    """
    global _server
    if is_running():
        raise RuntimeError(f"the backend started by PoseDiff is already running (pid {_server.pid})")
    u = urllib.parse.urlparse(url)
    _server = launch(resolve_command(command_setting), u.hostname or "127.0.0.1", u.port or 8765,
                     args=prior_arguments(prior), token=token, log_path=log_path)
    return _server


def current() -> Server | None:
    """The server the add-on started (running or not), or None."""
    return _server


def is_running() -> bool:
    return _server is not None and _server.running()


def stop(timeout: float = 5.0) -> None:
    """Terminate the backend this add-on started (if any); kill it if it does not exit."""
    global _server
    s, _server = _server, None
    if s is not None:
        s.stop(grace_s=timeout)
