# SPDX-License-Identifier: GPL-3.0-or-later
"""A video estimate's response as the add-on keeps and re-sends it (pure Python, no bpy).

* :func:`track_request_frames` — the part of each frame the backend's ``track`` task reads to
  re-solve the path (``backend.sequence.add_track``: every hypothesis's ``joints``, ``score``,
  ``root_translation``, camera tilt and reprojection error, the frame's ``keypoints``, ``camera``
  and ``warnings``), without the world-frame copies and previews it does not: about half the
  bytes, so a per-frame override of a long clip stays under the backend's request body limit.
* :func:`merge_tracks` — the re-solved ``track`` (and the warnings and gap fills that come with it)
  put back into the stored full frames.
* :func:`encode` / :class:`StoredEstimate` — the text block's content: a header line, then blocks
  of JSON zlib-compressed in base64 lines of 76 characters, a head (settings, the response's
  sequence info, each frame block's length) and one block per frame, so that one frame is read
  without decoding the others (*Frame hypotheses* on a 60 s clip: milliseconds, not seconds). A 60 s
  clip (1800 frames, 20 hypotheses) is 58 MB of JSON and ~22 MB so; the .blend and every autosave
  carry it. Plain JSON (files saved before this format) is still read.
"""

from __future__ import annotations

import base64
import json
import zlib

#: The header line of :func:`encode`'s text, before the head block's line count.
HEADER = "# PoseDiff sequence estimate, zlib + base64 JSON blocks (do not edit); head lines: "

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


def _block(obj) -> list[str]:
    """``obj`` as JSON, zlib-compressed, in base64 lines of 76 characters."""
    return base64.encodebytes(zlib.compress(json.dumps(obj, separators=(",", ":")).encode(), 6)).decode("ascii").splitlines()


def _unblock(lines: list[str]):
    try:
        return json.loads(zlib.decompress(base64.decodebytes("\n".join(lines).encode("ascii"))))
    except (ValueError, zlib.error, UnicodeError) as e:
        raise ValueError(f"the stored video estimate is damaged ({e}); estimate the video again") from None


def encode(data: dict) -> str:
    """Text for the text block holding ``data`` = ``{"response", "meta"}`` (see the module docstring):
    the header line (with the head block's line count), the head block (``meta``, the response
    without its frames, each frame block's line count), then one block per frame."""
    frames = [_block(fr) for fr in data["response"]["frames"]]
    head = _block({"meta": data["meta"], "response": {k: v for k, v in data["response"].items() if k != "frames"},
                   "frame_lines": [len(b) for b in frames]})
    return "\n".join([f"{HEADER}{len(head)}", *head, *(line for b in frames for line in b)]) + "\n"


class StoredEstimate:
    """Reads :func:`encode`'s text, given as its ``lines``: the head at once, a frame only when asked
    for. Plain JSON (older files) is read whole.

    Raises:
        ValueError: a damaged or edited text (from the constructor or :meth:`frame`).
    """

    def __init__(self, lines: list[str]):
        self._lines = lines
        count = len(lines)
        first = lines[0] if count else ""
        if not first.startswith(HEADER):
            try:
                whole = json.loads("\n".join(lines))
            except ValueError as e:
                raise ValueError(f"the stored video estimate is damaged ({e}); estimate the video again") from None
            self.meta, self.response, self._frames = whole["meta"], dict(whole["response"]), whole["response"]["frames"]
            self.response.pop("frames")
            return
        try:
            n_head = int(first[len(HEADER):])
        except ValueError:
            raise ValueError("the stored video estimate's header is damaged; estimate the video again") from None
        head = _unblock(lines[1 : 1 + n_head])
        self.meta, self.response, self._frames = head["meta"], head["response"], None
        self._starts, at = [], 1 + n_head
        for n in head["frame_lines"]:
            self._starts.append((at, n))
            at += n
        if at > count:
            raise ValueError("the stored video estimate is cut short; estimate the video again")

    def __len__(self) -> int:
        return len(self._frames) if self._frames is not None else len(self._starts)

    def frame(self, t: int) -> dict:
        """Frame ``t`` of the response (decoded now)."""
        if self._frames is not None:
            return self._frames[t]
        a, n = self._starts[t]
        return _unblock(self._lines[a : a + n])

    def data(self) -> dict:
        """The whole ``{"response", "meta"}`` (every frame decoded)."""
        return {"response": {**self.response, "frames": [self.frame(t) for t in range(len(self))]}, "meta": self.meta}
