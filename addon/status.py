# SPDX-License-Identifier: GPL-3.0-or-later
"""The backend status line (connected, device, model version) shared by preferences and panel."""

from __future__ import annotations

import textwrap
import threading

_text = "not checked"
_ok: bool | None = None
_lock = threading.Lock()


def set_status(ok: bool | None, text: str) -> None:
    global _text, _ok
    with _lock:
        _ok, _text = ok, text


def get_status() -> tuple[bool | None, str]:
    with _lock:
        return _ok, _text


def describe(health: dict, info: dict) -> str:
    """One line from ``/v1/health`` and ``/v1/info`` answers."""
    parts = ["connected"]
    dev = info.get("device")
    if dev:
        parts.append(f"device {dev}")
    ver = info.get("model_version") or info.get("model") or info.get("version") or health.get("version")
    if isinstance(ver, dict):
        ver = ver.get("version") or ver.get("name")
    if ver:
        parts.append(f"model {ver}")
    prior = info.get("prior")
    if isinstance(prior, dict) and prior.get("name"):
        parts.append(f"prior {prior_name(prior)}: {licence_words(prior)}")
    return ", ".join(parts)


def prior_name(prior: dict) -> str:
    """``default`` / ``cmu`` / the weights file's name (not its whole path)."""
    name = str(prior.get("name", ""))
    return name if name in ("default", "cmu") else name.replace("\\", "/").rsplit("/", 1)[-1]


def licence_words(prior: dict) -> str:
    """The loaded prior's licence in words: "research only", "commercial use OK" or "licence unknown"."""
    if prior.get("commercial") is True:
        return "commercial use OK"
    if prior.get("commercial") is False:
        return "research only"
    return prior.get("licence_summary") or "licence unknown - check your training data"


def draw_status(layout) -> None:
    ok, text = get_status()
    draw_wrapped(layout, text, 70, "CHECKMARK" if ok else ("ERROR" if ok is False else "QUESTION"))


def draw_wrapped(layout, text: str, width: int, icon: str) -> None:
    """``text`` as labels of at most ``width`` characters, ``icon`` before the first line."""
    for i, line in enumerate(textwrap.wrap(text, width) or [""]):
        layout.label(text=line, icon=icon if i == 0 else "BLANK1")
