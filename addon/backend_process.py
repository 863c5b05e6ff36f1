# SPDX-License-Identifier: GPL-3.0-or-later
"""Start and stop ``posediff serve`` as a child process of Blender (no bpy here)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.parse
from pathlib import Path

_proc: subprocess.Popen | None = None


def resolve_command(setting: str) -> list[str]:
    """The backend command from the preference.

    ``setting`` may be: empty (``posediff`` on PATH), a virtual environment folder
    (``<venv>/bin/posediff``), the ``posediff`` executable, or a full command line.

    Raises:
        FileNotFoundError: with what was tried and how to fix it.
    """
    s = (setting or "").strip()
    if not s:
        exe = shutil.which("posediff")
        if not exe:
            raise FileNotFoundError(
                "no 'posediff' on PATH: set 'Backend command' in Preferences > Add-ons > PoseDiff to the "
                "backend's virtual environment folder (the .venv of the PoseDiff checkout)"
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


def start(command_setting: str, url: str, token: str = "", log_path: str | None = None, prior: str = "") -> subprocess.Popen:
    """Launch ``<command> serve --host H --port P [--prior P]``; ``token`` (if any) goes in POSEDIFF_TOKEN.

    ``prior``: ``default`` (or empty), ``cmu`` or the path of a ``.safetensors`` prior.
    Returns the running process (also kept here so ``stop()`` and Blender's exit end it).
    Raises FileNotFoundError (see ``resolve_command``, ``prior_arguments``) or RuntimeError if one already runs.
    """
    global _proc
    if is_running():
        raise RuntimeError(f"the backend started by PoseDiff is already running (pid {_proc.pid})")
    u = urllib.parse.urlparse(url)
    cmd = resolve_command(command_setting) + ["serve", "--host", u.hostname or "127.0.0.1", "--port", str(u.port or 8765)]
    cmd += prior_arguments(prior)
    env = dict(os.environ)
    if token:
        env["POSEDIFF_TOKEN"] = token
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL
    kw = {"start_new_session": True} if sys.platform != "win32" else {}
    _proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **kw)
    return _proc


def is_running() -> bool:
    return _proc is not None and _proc.poll() is None


def pid() -> int | None:
    return _proc.pid if is_running() else None


def stop(timeout: float = 5.0) -> None:
    """Terminate the backend this add-on started (if any); kill it if it does not exit."""
    global _proc
    p, _proc = _proc, None
    if p is None or p.poll() is not None:
        return
    p.terminate()
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(timeout)
