# SPDX-License-Identifier: GPL-3.0-or-later
"""The built extension zip installs into real Blender, registers, and unregisters cleanly."""

from __future__ import annotations

import tomllib
import zipfile

import pytest

bpy = pytest.importorskip("bpy")

from addon_helpers import REPO_MODULE, ROOT, build_zip, install_addon  # noqa: E402

CLASS_NAMES = [
    "POSEDIFF_PT_main", "POSEDIFF_PT_tasks", "POSEDIFF_PT_hypotheses", "POSEDIFF_PT_mapping", "POSEDIFF_UL_hypotheses",
    "POSEDIFF_OT_estimate", "POSEDIFF_OT_complete", "POSEDIFF_OT_generate", "POSEDIFF_OT_variations",
    "POSEDIFF_OT_apply_hypothesis", "POSEDIFF_OT_apply_all", "POSEDIFF_OT_start_backend",
    "POSEDIFF_OT_stop_backend", "POSEDIFF_OT_check_backend", "POSEDIFF_OT_cancel", "POSEDIFF_OT_detect_mapping",
]
OPERATORS = ["estimate", "complete", "generate", "variations", "apply_hypothesis", "apply_all", "start_backend",
             "stop_backend", "check_backend", "cancel", "watch_job", "detect_mapping"]


def _registered_ops():
    out = []
    for name in OPERATORS:
        try:
            getattr(bpy.ops.posediff, name).get_rna_type()
            out.append(name)
        except (KeyError, AttributeError):
            pass
    return out


def test_zip_contents_and_manifest():
    path = build_zip()
    manifest = tomllib.loads((ROOT / "addon" / "blender_manifest.toml").read_text())
    assert path.name == f"posediff-{manifest['version']}.zip"
    assert manifest["license"] == ["SPDX:GPL-3.0-or-later"] and manifest["blender_version_min"] == "4.4.0"
    assert "127.0.0.1" in manifest["permissions"]["network"]
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        assert "blender_manifest.toml" in names and "__init__.py" in names and "LICENSE" in names
        assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
        for n in names:
            if n.endswith(".py"):
                text = zf.read(n).decode()
                assert text.startswith("# SPDX-License-Identifier: GPL-3.0-or-later"), n
                assert "import torch" not in text and "import numpy" not in text, n
        assert "GNU GENERAL PUBLIC LICENSE" in zf.read("LICENSE").decode()[:200]


def test_install_enable_disable_leaves_nothing_registered(tmp_path):
    module = install_addon(tmp_path / "extensions")
    installed = tmp_path / "extensions" / "posediff" / "blender_manifest.toml"
    assert installed.exists()
    assert all(hasattr(bpy.types, c) for c in CLASS_NAMES)
    assert sorted(_registered_ops()) == sorted(OPERATORS)
    assert hasattr(bpy.types.Scene, "posediff") and hasattr(bpy.types.Object, "posediff_roles")
    prefs = bpy.context.preferences.addons[module].preferences
    assert prefs.backend_url == "http://127.0.0.1:8765"

    assert bpy.ops.preferences.addon_disable(module=module) == {"FINISHED"}
    assert module not in bpy.context.preferences.addons
    assert [c for c in CLASS_NAMES if hasattr(bpy.types, c)] == []
    assert _registered_ops() == []
    assert not hasattr(bpy.types.Scene, "posediff") and not hasattr(bpy.types.Object, "posediff_roles")

    # enable again (a second register must work), then uninstall
    assert bpy.ops.preferences.addon_enable(module=module) == {"FINISHED"}
    assert hasattr(bpy.types, "POSEDIFF_PT_main")
    assert bpy.ops.extensions.package_uninstall(repo_index=list(bpy.context.preferences.extensions.repos).index(
        bpy.context.preferences.extensions.repos[REPO_MODULE]), pkg_id="posediff") == {"FINISHED"}
    assert not hasattr(bpy.types, "POSEDIFF_PT_main")
    assert not installed.exists()
