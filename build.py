#!/usr/bin/env python3
"""Build, set up and check PoseDiff.

    python3 build.py          build the Blender extension zip into dist/
    python3 build.py demo     set up .venv, then pose a Rigify metarig from a sample photo (out/)
    python3 build.py test     set up .venv, then run the whole test suite

The virtual environment `.venv` is created or reused; what is missing is installed. Only the
standard library is used here, so this runs with any Python 3.11.
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

# Pinned where it matters: torch 2.13.0 is the CPU build on this machine's disk (an unpinned
# torch pulls a multi-GB CUDA build); bpy 5.0.1 pins numpy<2, and ai-edge-litert 2.2.0 is the
# last release that works with numpy 1.x.
REQUIREMENTS = [
    "torch==2.13.0",
    "numpy<2",
    "bpy==5.0.1",
    "ai-edge-litert==2.2.0",
    "opencv-python-headless==4.10.0.84",
    "safetensors>=0.4",
    "fastapi>=0.110",
    "uvicorn>=0.29",
    "pydantic>=2.6",
    "pillow>=10",
    "tqdm>=4.66",
    "pytest>=8",
    "httpx>=0.27",
    "schemathesis>=3.30",
]


def log(msg: str) -> None:
    print(f"[build] {msg}", flush=True)


def run(cmd: list, **kw) -> None:
    subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT, **kw)


def ensure_venv() -> None:
    """Create or reuse .venv and install what is missing (idempotent, fast when up to date)."""
    want = hashlib.sha256(
        ("\n".join(REQUIREMENTS) + (ROOT / "pyproject.toml").read_text()).encode()
    ).hexdigest()
    if PY.exists() and STAMP.exists() and STAMP.read_text() == want:
        return
    t0 = time.time()
    if not PY.exists():
        log(f"creating {VENV}")
        run([sys.executable, "-m", "venv", VENV])
        run([PY, "-m", "pip", "install", "-q", "--upgrade", "pip"])
    log("installing dependencies (first run: a few minutes)")
    run([PY, "-m", "pip", "install", "-q", *REQUIREMENTS])
    # The project itself, editable; its dependencies are satisfied above (no CUDA torch pulled).
    run([PY, "-m", "pip", "install", "-q", "--no-deps", "-e", "."])
    STAMP.write_text(want)
    log(f"environment ready in {time.time() - t0:.0f} s")


def build_zip() -> Path:
    """Validate addon/blender_manifest.toml and zip the extension into dist/<id>-<version>.zip."""
    src = ROOT / "addon"
    manifest = tomllib.loads((src / "blender_manifest.toml").read_text())
    for key in ("schema_version", "id", "version", "name", "tagline", "maintainer", "type",
                "blender_version_min", "license"):
        if key not in manifest:
            raise SystemExit(f"addon/blender_manifest.toml: missing required field {key!r}")
    if manifest["type"] != "add-on":
        raise SystemExit("addon/blender_manifest.toml: type must be 'add-on'")
    out = ROOT / "dist" / f"{manifest['id']}-{manifest['version']}.zip"
    out.parent.mkdir(exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(src.rglob("*")):
            rel = path.relative_to(src)
            if path.is_dir() or "__pycache__" in rel.parts or path.suffix in (".pyc", ".blend1"):
                continue
            if rel.parts[0] in ("tests", ".pytest_cache"):
                continue
            zf.write(path, rel.as_posix())
        # where the backend lives: the add-on's default backend command is this checkout's .venv
        zf.writestr("checkout.json", json.dumps({"checkout": str(ROOT)}))
    log(f"wrote {out.relative_to(ROOT)}")
    return out


def main(argv: list[str]) -> int:
    cmd = argv[1] if len(argv) > 1 else "zip"
    if cmd == "zip":
        build_zip()
        return 0
    if cmd == "test":
        ensure_venv()
        build_zip()
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
