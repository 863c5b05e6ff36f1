#!/usr/bin/env python3
"""Build, set up and check PoseDiff.

    python3 build.py          set up .venv, then build the Blender extension zip into dist/ with
                              Blender's own blender_ext.py (shipped in the bpy wheel)
    python3 build.py demo     set up .venv, then pose a Rigify metarig from a sample photo (out/)
    python3 build.py test     set up .venv, build the zip, run ruff check, then the whole test suite
    python3 build.py setup    set up .venv only

The virtual environment `.venv` is created or reused; what is missing is installed. Every
requirement and pin is in pyproject.toml (``[project] dependencies`` and the ``test`` extra).
Only the standard library is used here, so this runs with any Python 3.11.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PY = VENV / "bin" / "python"
STAMP = VENV / ".posediff-installed"

#: The requirements live in pyproject.toml only: ``[project] dependencies`` and the ``test`` extra.
PYPROJECT = ROOT / "pyproject.toml"


def requirements() -> list[str]:
    """The runtime dependencies plus the ``test`` extra, as pinned in pyproject.toml."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    return [*project["dependencies"], *project["optional-dependencies"]["test"]]


def log(msg: str) -> None:
    print(f"[build] {msg}", flush=True)


def run(cmd: list, **kw) -> None:
    subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT, **kw)


def ensure_venv() -> None:
    """Create or reuse .venv and install what is missing (idempotent, fast when up to date)."""
    want = hashlib.sha256(PYPROJECT.read_bytes()).hexdigest()
    if PY.exists() and STAMP.exists() and STAMP.read_text() == want:
        return
    t0 = time.time()
    if not PY.exists():
        log(f"creating {VENV}")
        run([sys.executable, "-m", "venv", VENV])
        run([PY, "-m", "pip", "install", "-q", "--upgrade", "pip"])
    log(f"installing dependencies from pyproject.toml: {' '.join(requirements())} (first run: a few minutes)")
    # The project itself, editable, with the test extra: every pin is in pyproject.toml.
    run([PY, "-m", "pip", "install", "-q", "-e", ".[test]"])
    STAMP.write_text(want)
    log(f"environment ready in {time.time() - t0:.0f} s")


def blender_ext() -> Path:
    """Blender's own extension tool, ``blender_ext.py``, as shipped inside the bpy wheel in .venv.

    Raises:
        SystemExit: bpy is not installed in .venv (run ``python3 build.py setup``).
    """
    found = sorted(VENV.glob("lib/python3*/site-packages/bpy/*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    if not found:
        raise SystemExit(f"blender_ext.py not found under {VENV}: the bpy wheel is missing; run 'python3 build.py setup'")
    return found[-1]


def build_zip() -> Path:
    """Build ``dist/<id>-<version>.zip`` from ``addon/`` with Blender's ``blender_ext.py build``,
    then check the zip with ``blender_ext.py validate`` (manifest fields, lengths, licence, files).

    Raises:
        SystemExit: the manifest or the package is invalid (Blender's message is printed), or
            .venv has no bpy (``ensure_venv()`` first).
    """
    manifest = tomllib.loads((ROOT / "addon" / "blender_manifest.toml").read_text())
    out = ROOT / "dist" / f"{manifest['id']}-{manifest['version']}.zip"
    out.parent.mkdir(exist_ok=True)
    tool = blender_ext()
    p = subprocess.run([PY, tool, "build", "--source-dir", ROOT / "addon", "--output-filepath", out], cwd=ROOT,
                       capture_output=True, text=True)
    if p.returncode == 0:
        # where the backend lives: the add-on's default backend command is this checkout's .venv
        with zipfile.ZipFile(out, "a", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("checkout.json", json.dumps({"checkout": str(ROOT)}))
        p = subprocess.run([PY, tool, "validate", out], cwd=ROOT, capture_output=True, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stdout + p.stderr)
        raise SystemExit("blender_ext.py build/validate failed for addon/ (see above)")
    log(f"wrote {out.relative_to(ROOT)} (blender_ext.py build + validate)")
    return out


def lint() -> int:
    """``ruff check .`` with the rules of ``[tool.ruff]`` in pyproject.toml; returns its exit status."""
    return subprocess.run([VENV / "bin" / "ruff", "check", "."], cwd=ROOT).returncode


def main(argv: list[str]) -> int:
    cmd = argv[1] if len(argv) > 1 else "zip"
    if cmd == "zip":
        ensure_venv()
        build_zip()
        return 0
    if cmd == "test":
        ensure_venv()
        build_zip()
        if lint() != 0:
            log("ruff check failed: fix the findings above (or run '.venv/bin/ruff check --fix .')")
            return 1
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        return subprocess.run([PY, "-m", "pytest", *argv[2:]], cwd=ROOT, env=env).returncode
    if cmd == "demo":
        ensure_venv()
        build_zip()
        return subprocess.run([PY, ROOT / "tools" / "demo.py", *argv[2:]], cwd=ROOT).returncode
    if cmd == "setup":
        ensure_venv()
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
