"""Pure-ASGI middleware in front of the app: request id, ``Host`` check, bearer token, bounded body
(optionally gzip-compressed, ``Content-Encoding: gzip``, decompressed here within a bound)."""

from __future__ import annotations

import json
import logging
import uuid
import zlib

from backend.http.auth import HostPolicy, bearer_ok

log = logging.getLogger("posediff.server")

#: A gzip request body (``Content-Encoding: gzip``) may decompress to at most this many times the
#: body limit (413 above): JSON of poses compresses about 3-4x, so a long clip's track request fits
#: where its plain JSON would not, while a compression bomb is stopped after a bounded amount of work.
GZIP_EXPANSION = 8
#: The request encodings accepted (``GET /v1/info`` lists them as ``request_encodings``).
REQUEST_ENCODINGS = ("gzip",)


class Guard:
    """Pure-ASGI middleware in front of the app: request id, ``Host`` check, bearer token,
    bounded body, and a last-resort 500 for anything unexpected.

    Args:
        app: the ASGI app.
        token: the bearer token.
        hosts: the accepted ``Host`` headers.
        max_body: most bytes a request body may have (413 above, whether announced by
            ``Content-Length`` or streamed); a ``Content-Encoding: gzip`` body counts its
            compressed bytes, and may decompress to at most :data:`GZIP_EXPANSION` times that
            (413 above; a corrupt stream is 400, another encoding 415).
        open_paths: paths answered without a token.
    """

    def __init__(self, app, token: str, hosts: HostPolicy, max_body: int, open_paths=("/v1/health",)):
        self.app = app
        self.token = token
        self.hosts = hosts
        self.max_body = max_body
        self.open_paths = frozenset(open_paths)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return await self.app(scope, receive, send)
        if scope["type"] != "http":  # no websockets here
            await send({"type": "websocket.close", "code": 1008})
            return
        rid = uuid.uuid4().hex[:12]
        scope.setdefault("state", {})["request_id"] = rid
        headers = {}
        for k, v in scope.get("headers", []):
            headers.setdefault(k.decode("latin-1").lower(), v.decode("latin-1"))
        started = False

        async def send_with_id(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = dict(message)
                message["headers"] = list(message.get("headers", [])) + [(b"x-request-id", rid.encode())]
            await send(message)

        host = headers.get("host")
        if not self.hosts.allows(host):
            return await self._reject(receive, send_with_id, 400, {
                "detail": f"Host header {host!r} is not accepted: this server answers requests for "
                          f"localhost:{self.hosts.port} (add other names with --allow-host)"})
        if scope.get("path") not in self.open_paths and not bearer_ok(headers.get("authorization"), self.token):
            given = "authorization" in headers
            return await self._reject(receive, send_with_id, 401, {
                "detail": "wrong token" if given else
                "missing 'Authorization: Bearer TOKEN' header (the token is in the file the server printed "
                "at start, or $POSEDIFF_TOKEN)"}, extra_headers=[(b"www-authenticate", b"Bearer")])

        declared = headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                return await self._reject(receive, send_with_id, 400, {"detail": "invalid Content-Length header"})
            if int(declared) > self.max_body:
                return await self._reject(receive, send_with_id, 413, self._too_large())
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("identity", *REQUEST_ENCODINGS):
            return await self._reject(receive, send_with_id, 415, {
                "detail": f"Content-Encoding {encoding!r} is not accepted; send the body plain or as gzip"})
        body, complete = await self._read_body(receive)
        if not complete:
            return await self._reject(receive, send_with_id, 413, self._too_large())
        if encoding == "gzip":
            try:
                body = gunzip_bounded(body, self.max_body * GZIP_EXPANSION)
            except ValueError as e:
                await send_with_id(_start(413 if isinstance(e, BodyTooLarge) else 400))  # body read: nothing to drain
                return await send_with_id(_body({"detail": str(e)}))
            scope = dict(scope, headers=[(k, v) for k, v in scope.get("headers", [])
                                         if k.lower() not in (b"content-encoding", b"content-length")]
                         + [(b"content-length", str(len(body)).encode())])
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        try:
            await self.app(scope, replay, send_with_id)
        except Exception:  # noqa: BLE001 - last resort: log with the request id, answer 500
            log.exception("request %s %s %s failed", rid, scope.get("method"), scope.get("path"))
            if not started:
                await send_with_id(_start(500))
                await send_with_id(_body({"detail": "internal error", "request_id": rid}))

    def _too_large(self) -> dict:
        return {"detail": f"request body larger than {self.max_body / 2**20:g} MB; "
                          "send a smaller image or fewer frames, or start the server with a larger --max-body-mb"}

    async def _read_body(self, receive) -> tuple[bytes, bool]:
        """Read the whole body; (body, True) or (partial, False) once it passes ``max_body``."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"".join(chunks), True
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return b"", False
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), True

    async def _reject(self, receive, send, status: int, content: dict, extra_headers=()):
        """Answer ``status`` with a JSON body, after reading (and dropping) a bounded amount of the
        request body so that a client still uploading receives the answer rather than a reset."""
        await self._drain(receive)
        await send(_start(status, extra_headers))
        await send(_body(content))

    async def _drain(self, receive) -> None:
        cap, size = self.max_body + 64 * 2**20, 0
        while size <= cap:
            message = await receive()
            if message["type"] != "http.request":
                return
            size += len(message.get("body", b""))
            if not message.get("more_body", False):
                return


class BodyTooLarge(ValueError):
    """A request body that decompresses past its bound (413)."""


def gunzip_bounded(data: bytes, limit: int) -> bytes:
    """Decompress a gzip request body of at most ``limit`` bytes once decompressed.

    Raises:
        BodyTooLarge: the body decompresses to more than ``limit`` bytes.
        ValueError: it is not one complete gzip stream.
    """
    d = zlib.decompressobj(wbits=31)  # gzip header and trailer
    try:
        out = d.decompress(data, limit + 1)
    except zlib.error as e:
        raise ValueError(f"the gzip request body is corrupt ({e}); send it again, or plain") from None
    if len(out) > limit:
        raise BodyTooLarge(f"request body larger than {limit / 2**20:g} MB once decompressed (gzip); send fewer "
                         "frames, or start the server with a larger --max-body-mb")
    if not d.eof or d.unused_data:
        raise ValueError("the gzip request body is incomplete or has data after its end; send it again, or plain")
    return out


def _start(status: int, extra_headers=()) -> dict:
    return {"type": "http.response.start", "status": status,
            "headers": [(b"content-type", b"application/json"), (b"connection", b"close"), *extra_headers]}


def _body(content: dict) -> dict:
    return {"type": "http.response.body", "body": json.dumps(content).encode()}
