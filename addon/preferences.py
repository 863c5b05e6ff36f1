# SPDX-License-Identifier: GPL-3.0-or-later
"""Add-on preferences: backend URL, token, backend command; start/stop/check buttons."""

from __future__ import annotations

import bpy
from bpy.props import EnumProperty, StringProperty

from . import backend_process, status
from .client import DEFAULT_TOKEN_FILE, DEFAULT_URL, Client, read_token


def prefs():
    """This add-on's preferences (None when not registered as an add-on, e.g. plain import)."""
    addon = bpy.context.preferences.addons.get(__package__)
    return addon.preferences if addon else None


def make_client(timeout: float = 30.0) -> Client:
    """A client configured from the preferences (defaults when there are none)."""
    p = prefs()
    url = p.backend_url if p else DEFAULT_URL
    token = read_token(p.token if p else "", p.token_file if p else "")
    return Client(url, token, timeout)


#: The priors *Start backend* can load (``posediff serve --prior``), with their licences.
PRIOR_ITEMS = [
    ("default", "Research prior (default) - research only",
     "The shipped prior, trained on Human3.6M and Bandai-Namco besides CMU: research only, non-commercial"),
    ("cmu", "CMU prior - commercial use OK",
     "Trained only on CMU mocap: its poses may be used in commercial work (the CMU data may not be resold)"),
    ("file", "Weights file - licence of its training data",
     "A .safetensors prior of your own ('posediff train'); its licence is that of its training data"),
]


def prior_setting(p) -> str:
    """``--prior`` value from the preferences: ``default``, ``cmu`` or the weights file path."""
    if p is None:
        return "default"
    return p.prior_file if p.prior == "file" else p.prior


class POSEDIFF_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    backend_url: StringProperty(name="Backend URL", default=DEFAULT_URL,
                                description="Where 'posediff serve' listens (loopback only)")
    token: StringProperty(name="Token", default="", subtype="PASSWORD",
                          description="Bearer token; empty = $POSEDIFF_TOKEN or the token file")
    token_file: StringProperty(name="Token file", default=DEFAULT_TOKEN_FILE, subtype="FILE_PATH",
                               description="File holding the token the server wrote at its first start")
    backend_command: StringProperty(
        name="Backend command", default="", subtype="FILE_PATH",
        description="The backend's virtual environment folder (e.g. the PoseDiff checkout's .venv), "
                    "or the posediff executable; empty = this checkout's .venv/bin/posediff, else 'posediff' on PATH")
    prior: EnumProperty(name="Prior", items=PRIOR_ITEMS, default="default",
                        description="The pose prior Start backend loads; the status line shows its licence")
    prior_file: StringProperty(name="Prior file", default="", subtype="FILE_PATH",
                               description="The .safetensors prior to load when Prior is 'Weights file'")

    def draw(self, context):
        layout = self.layout
        col = layout.column()
        col.prop(self, "backend_url")
        col.prop(self, "token")
        col.prop(self, "token_file")
        col.prop(self, "backend_command")
        col.prop(self, "prior")
        if self.prior == "file":
            col.prop(self, "prior_file")
        row = layout.row(align=True)
        if backend_process.is_running():
            row.operator("posediff.stop_backend", icon="CANCEL")
        else:
            row.operator("posediff.start_backend", icon="PLAY")
        row.operator("posediff.check_backend", icon="FILE_REFRESH")
        status.draw_status(layout)


CLASSES = (POSEDIFF_AddonPreferences,)
