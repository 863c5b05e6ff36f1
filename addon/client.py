# SPDX-License-Identifier: GPL-3.0-or-later
"""HTTP client for the local PoseDiff backend (standard library only: urllib + json).

No bpy here: usable from worker threads and from tests. Every failure is a ``BackendError``
whose message says what happened and what to do (start the backend, fix the token...).
"""

from __future__ import annotations

import gzip
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable

DEFAULT_URL = "http://127.0.0.1:8765"
DEFAULT_TOKEN_FILE = os.path.join("~", ".config", "posediff", "token")
TASKS = ("estimate", "complete", "generate", "variations", "detect", "track", "assist")
#: Tasks whose frames may carry photos; their file paths are sent as the files' bytes.
PHOTO_TASKS = ("estimate", "detect")


class BackendError(RuntimeError):
    """A request to the backend failed; ``str(err)`` is a message fit for the user."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class BackendUnreachable(BackendError):
    """Nothing answers at the backend URL."""


class JobCancelled(BackendError):
    """The job was cancelled (by the user or the server)."""


def start_hint(url: str) -> str:
    port = urllib.parse.urlparse(url).port or 8765
    return (f"start it with 'posediff serve --port {port}' (or the Start backend button in "
            "Preferences > Add-ons > PoseDiff)")


def read_token(token: str = "", token_file: str = "") -> str:
    """The bearer token: ``token`` if given, else ``$POSEDIFF_TOKEN``, else the token file's
    first line (default ``~/.config/posediff/token``), else an empty string."""
    if token.strip():
        return token.strip()
    env = os.environ.get("POSEDIFF_TOKEN", "").strip()
    if env:
        return env
    p = Path(os.path.expanduser(token_file or DEFAULT_TOKEN_FILE))
    try:
        return p.read_text().strip().splitlines()[0].strip()
    except (OSError, IndexError):
        return ""


class Client:
    """Talks to ``posediff serve``.

    Args:
        url: base URL, e.g. ``http://127.0.0.1:8765``.
        token: bearer token ("" sends none; the server then answers 401 except on /v1/health).
        timeout: seconds per HTTP request (a job's total time is not bounded by it).
    """

    def __init__(self, url: str = DEFAULT_URL, token: str = "", timeout: float = 30.0):
        u = (url or DEFAULT_URL).strip().rstrip("/")
        if not u.startswith(("http://", "https://")):
            raise BackendError(f"backend URL {url!r} must start with http:// (e.g. {DEFAULT_URL})")
        self.url = u
        self.token = token
        self.timeout = timeout
        self._max_body: int | None = None
        self._gzip: bool | None = None

    # ------------------------------------------------------------------ plumbing
    def request(self, method: str, path: str, body: dict | None = None, timeout: float | None = None,
                gzip_over: int | None = None):
        """One HTTP request; returns the decoded JSON body. ``gzip_over``: a JSON body of more bytes
        than this is sent gzip-compressed (``Content-Encoding: gzip``; only for a backend that lists
        it in ``request_encodings``, see :meth:`gzip_threshold`); None: always plain.

        Raises:
            BackendUnreachable: connection refused / host down (message tells how to start it).
            BackendError: any HTTP error, with the server's ``detail`` (422 names the field).
        """
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        gzip_body = gzip_over is not None and data is not None and len(data) > gzip_over
        if gzip_body:
            data = gzip.compress(data, compresslevel=6)
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if gzip_body:
            req.add_header("Content-Encoding", "gzip")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=timeout or self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            raise BackendError(self._http_message(e), e.code) from None
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise BackendUnreachable(
                f"PoseDiff backend not reachable at {self.url} ({reason}); {start_hint(self.url)}"
            ) from None
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise BackendError(f"backend at {self.url} sent a non-JSON answer to {method} {path}") from None

    def _http_message(self, e: urllib.error.HTTPError) -> str:
        try:
            payload = json.loads(e.read() or b"{}")
        except ValueError:
            payload = {}
        detail = payload.get("detail") if isinstance(payload, dict) else None
        if isinstance(detail, list):  # FastAPI validation errors
            parts = []
            for d in detail[:5]:
                # the server names the field as frames[0].camera.fx (backend.errors.field_path)
                loc = d.get("field") or ".".join(str(x) for x in d.get("loc", []) if x != "body")
                loc = "" if loc == "body" else loc
                parts.append(f"{loc}: {d.get('msg', '')}" if loc else str(d.get("msg", "")))
            detail = "; ".join(parts)
        elif isinstance(detail, dict):
            msg = detail.get("message") or json.dumps(detail)
            detail = f"{detail['field']}: {msg}" if detail.get("field") and not msg.startswith(str(detail["field"])) else msg
        if e.code == 401:
            return ("backend refused the token (401): set the token in Preferences > Add-ons > PoseDiff, "
                    "or point the token file at the one the server wrote (~/.config/posediff/token)")
        if e.code == 404 and not detail:
            detail = "not found"
        return f"backend error {e.code}: {detail or e.reason}"

    # ------------------------------------------------------------------ endpoints
    def health(self) -> dict:
        return self.request("GET", "/v1/health", timeout=min(self.timeout, 5.0)) or {}

    def info(self) -> dict:
        return self.request("GET", "/v1/info") or {}

    def skeleton(self) -> dict:
        return self.request("GET", "/v1/skeleton") or {}

    def max_body_bytes(self) -> int | None:
        """The backend's request body limit in bytes (``GET /v1/info``; asked once per client),
        or None when the backend does not say."""
        if self._max_body is None:
            info = self.info()
            limit = info.get("max_body_bytes")
            self._max_body = int(limit) if isinstance(limit, (int, float)) and limit > 0 else 0
            self._gzip = "gzip" in (info.get("request_encodings") or [])
        return self._max_body or None

    def gzip_threshold(self) -> int | None:
        """Body size above which requests are sent gzip-compressed: the backend's body limit, when
        it takes gzip bodies (``request_encodings`` of ``GET /v1/info``), so that a request that
        fits goes plain (no compression time on loopback) and one that does not, e.g. the track
        request of a long clip (JSON of poses shrinks 3-4x), is compressed; None: never."""
        limit = self.max_body_bytes()
        return limit if self._gzip else None

    def run(
        self,
        task: str,
        payload: dict,
        progress: Callable[[float], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
        poll_interval: float = 0.2,
    ) -> dict:
        """Run a task as a server job and wait for its result (call from a worker thread).

        Falls back to the direct ``POST /v1/{task}`` if the server has no jobs endpoint. Photos
        given as file paths (``frames[i].image`` of estimate and detect) are sent as the files'
        bytes, so a backend on another machine can read them (``photos.inline_images``); so is a
        video file that fits under the body limit (``photos.inline_video``; a larger one stays a path).

        Args:
            task: one of ``TASKS``.
            payload: the request body (see the backend's schemas).
            progress: called with 0..1 as the job advances.
            cancelled: polled; when it returns True the job is deleted on the server.
        Returns:
            the task's response body.
        Raises:
            JobCancelled, BackendUnreachable, BackendError (``photos.PhotoTooLarge`` when the
            photos do not fit under the backend's body limit: nothing is sent then).
        """
        if task not in TASKS:
            raise BackendError(f"unknown task {task!r}; tasks: {', '.join(TASKS)}")
        kept = None
        if task == "estimate":
            from .photos import inline_image_sequence, inline_video

            payload = inline_video(payload, self.max_body_bytes())
            payload, kept = inline_image_sequence(payload, self.max_body_bytes())
        names = {}
        if task in PHOTO_TASKS:
            from .photos import image_names, inline_images

            names = image_names(payload)
            payload = inline_images(payload, self.max_body_bytes(), self.url)
        try:
            result = self._run_job(task, payload, progress, cancelled, poll_interval)
        except BackendError as e:
            if not names or "<base64>" not in str(e):
                raise
            from .photos import name_inlined

            raise type(e)(name_inlined(str(e), names), e.status) from None
        if kept is not None and isinstance(result.get("sequence"), dict):
            # the frames were the folder's images ``kept``: report them as the source frames
            from .photos import SEQUENCE_FPS

            result["sequence"]["source_frames"], result["sequence"]["source_fps"] = kept, SEQUENCE_FPS
        return result

    def _run_job(self, task: str, payload: dict, progress, cancelled, poll_interval: float) -> dict:
        """POST the job, poll it until done (see :meth:`run`)."""
        try:
            job = self.request("POST", f"/v1/jobs/{task}", payload, gzip_over=self.gzip_threshold())
        except BackendError as e:
            if e.status in (404, 405):
                return self.request("POST", f"/v1/{task}", payload, timeout=max(self.timeout, 600),
                                    gzip_over=self.gzip_threshold())
            raise
        job_id = (job or {}).get("id")
        if not job_id:
            raise BackendError(f"backend answered POST /v1/jobs/{task} without a job id")
        while True:
            if cancelled is not None and cancelled():
                try:
                    self.request("DELETE", f"/v1/jobs/{job_id}")
                except BackendError:
                    pass
                raise JobCancelled("cancelled")
            st = self.request("GET", f"/v1/jobs/{job_id}") or {}
            state = st.get("state")
            if progress is not None and st.get("progress") is not None:
                progress(float(st["progress"]))
            if state == "done":
                return st.get("result") or {}
            if state == "failed":
                err = st.get("error")
                if isinstance(err, dict):
                    err = err.get("message") or json.dumps(err)
                if st.get("error_field") and err and not str(err).startswith(str(st["error_field"])):
                    err = f"{st['error_field']}: {err}"
                if isinstance(payload.get("video"), dict) and "path" in payload["video"] and "not found" in str(err):
                    from .photos import path_not_seen_hint

                    err = f"{err} ({path_not_seen_hint(payload['video']['path'], self.max_body_bytes(), self.url)})"
                raise BackendError(f"{task} failed: {err}")
            if state == "cancelled":
                raise JobCancelled("cancelled on the server")
            time.sleep(poll_interval)
