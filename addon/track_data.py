# SPDX-License-Identifier: GPL-3.0-or-later
"""A video estimate's response as the add-on keeps and re-sends it (pure Python, no bpy).

* :func:`track_request_frames` — the part of each frame the backend's ``track`` task reads to
  re-solve the path (``backend.sequence.add_track``: every hypothesis's ``joints``, ``score``,
  ``root_translation``, camera tilt and reprojection error, the frame's ``keypoints``, ``camera``
  and ``warnings``), without the world-frame copies and previews it does not: about half the
  bytes, so a per-frame override of a long clip stays under the backend's request body limit.
* :func:`merge_tracks` — the re-solved ``track`` (and the warnings and gap fills that come with it)
  put back into the stored full frames.
* :func:`encode` / :func:`decode` — the text block's content: a header line naming the format with
  a fresh id (so a reader can tell the content changed from that line alone), then the JSON
  zlib-compressed, in base64 lines of 76 characters. A 60 s clip (1800 frames, 20 hypotheses) is
  58 MB of JSON and 22 MB so; the .blend and every autosave carry it. Plain JSON (files saved
  before this format) is still read.
"""

from __future__ import annotations

import base64
import json
import secrets
import zlib

#: First characters of the header line of :func:`encode`'s text.
HEADER = "# PoseDiff sequence estimate, zlib + base64 JSON (do not edit) id="

#: Hypothesis fields the track solver reads (the rest, e.g. ``world_joints``, is not sent back).
HYPOTHESIS_FIELDS = ("joints", "score", "root_translation", "camera_pitch_deg", "camera_roll_deg", "reprojection_error_px")
#: Frame fields the track solver reads (``aggregate`` is required by the response schema).
FRAME_FIELDS = ("aggregate", "camera", "keypoints", "warnings")


def track_request_frames(frames: list[dict]) -> list[dict]:
    """The ``frames`` of a ``track`` request from a sequence response's frames (see the module
    docstring); the input is not changed.

    Args:
        frames: ``response["frames"]`` of a video / sequence estimate, T frames.
    Returns:
        T dicts with only :data:`FRAME_FIELDS` and ``hypotheses`` of :data:`HYPOTHESIS_FIELDS`.
    """
    out = []
    for fr in frames:
        slim = {k: fr[k] for k in FRAME_FIELDS if fr.get(k) is not None}
        slim["hypotheses"] = [{k: h[k] for k in HYPOTHESIS_FIELDS if h.get(k) is not None} for h in fr.get("hypotheses", [])]
        out.append(slim)
    return out


def merge_tracks(stored: dict, resolved: dict) -> dict:
    """``stored`` (a sequence estimate response) with each frame's ``track``, ``warnings`` and,
    on frames without hypotheses (gaps), ``aggregate`` taken from ``resolved`` (the answer to a
    ``track`` request built by :func:`track_request_frames`), and ``resolved``'s sequence info
    merged over its own. Returns a new dict; neither input is changed.

    Raises:
        ValueError: the two have different numbers of frames.
    """
    old, new = stored["frames"], resolved["frames"]
    if len(old) != len(new):
        raise ValueError(f"the re-solved track has {len(new)} frames, the stored estimate {len(old)}: "
                         "estimate the video again")
    frames = []
    for a, b in zip(old, new):
        fr = dict(a, track=b.get("track"), warnings=list(b.get("warnings", a.get("warnings", []))))
        if not a.get("hypotheses"):
            fr["aggregate"] = b.get("aggregate", a.get("aggregate"))
        frames.append(fr)
    return dict(stored, frames=frames, sequence={**(stored.get("sequence") or {}), **(resolved.get("sequence") or {})})


def encode(data: dict) -> str:
    """Text for the text block holding ``data`` (see the module docstring): header line, base64 lines."""
    raw = zlib.compress(json.dumps(data, separators=(",", ":")).encode(), 6)
    return HEADER + secrets.token_hex(8) + "\n" + base64.encodebytes(raw).decode("ascii")


def content_id(first_line: str) -> str | None:
    """The id in an :func:`encode` header line (None for plain JSON or anything else)."""
    return first_line[len(HEADER):].strip() or None if first_line.startswith(HEADER) else None


def decode(text: str) -> dict:
    """``data`` back from :func:`encode`'s text, or from plain JSON.

    Raises:
        ValueError: neither (an edited or damaged text block).
    """
    if not text.startswith(HEADER):
        return json.loads(text)
    try:
        body = text.split("\n", 1)[1] if "\n" in text else ""
        return json.loads(zlib.decompress(base64.decodebytes(body.encode("ascii"))))
    except (ValueError, zlib.error, UnicodeError) as e:
        raise ValueError(f"the stored video estimate is damaged ({e}); estimate the video again") from None
