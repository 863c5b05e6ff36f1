"""The local HTTP server that the Blender add-on talks to (``posediff serve``).

FastAPI on uvicorn, bound to 127.0.0.1 by default. One :class:`backend.service.PoseService` is
loaded at start and every piece of model work runs on ONE worker thread (:mod:`backend.jobs`),
in arrival order; synchronous endpoints wait for their turn.

Routes (request and response bodies are the models of :mod:`backend.schemas`; ``GET
/openapi.json`` documents them):

* ``GET  /v1/health`` -- ``{"status": "ok", "version": ...}``; the only route without a token.
* ``GET  /v1/skeleton`` -- joint names, parents, mirrors, bone lengths.
* ``GET  /v1/info`` -- model version, device, defaults (``PoseService.info()``).
* ``POST /v1/estimate | /v1/complete | /v1/generate | /v1/variations | /v1/detect`` -- run the
  task and answer with its response.
* ``POST /v1/jobs/{task}`` (same bodies) -- ``202 {"id": ..., "state": "queued"}`` at once;
  ``GET /v1/jobs/{id}`` -- state (queued, running, done, failed, cancelled), progress 0..1,
  ``result`` when done, ``error`` (and ``error_field`` for bad input) when failed;
  ``DELETE /v1/jobs/{id}`` -- cancel (between denoising steps); ``GET /v1/jobs`` -- all
  remembered jobs (no results). The last 64 finished jobs are kept (``--keep-jobs``).

Every request except ``/v1/health`` needs ``Authorization: Bearer TOKEN`` (see
:mod:`backend.auth` for where the token comes from) and a ``Host`` header naming the bound
address. Request bodies above ``--max-body-mb`` get 413, announced or streamed.

Errors: validation -> 422 ``{"detail": [{"loc", "field", "msg", "type"}], "message": "..."}``;
:class:`backend.errors.InputError` -> 400 ``{"detail": {"field", "message"}}`` (a
:class:`backend.errors.NoPersonError` -> 422, same shape); a full queue -> 503; anything
unexpected -> 500 ``{"detail": "internal error", "request_id": ...}``, logged with that id.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import json
import logging
import math
import socket
import sys
import uuid
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from pydantic import BaseModel, Field

from backend import __version__, schemas
from backend.auth import HostPolicy, TokenSource, bearer_ok, is_loopback, resolve_token
from backend.errors import Cancelled, InputError, NoPersonError
from backend.jobs import JobQueue, QueueFull, ShuttingDown

log = logging.getLogger("posediff.server")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
DEFAULT_MAX_BODY_MB = 32.0
#: Exit status for a bad command line, a busy port or a missing model (as the CLI's bad input).
EXIT_USAGE = 2

#: Task name -> request model; each is also the name of the PoseService method that runs it.
TASKS: dict[str, type[BaseModel]] = {
    "estimate": schemas.EstimateRequest,
    "complete": schemas.CompleteRequest,
    "generate": schemas.GenerateRequest,
    "variations": schemas.VariationsRequest,
    "detect": schemas.DetectRequest,
}
RESPONSES: dict[str, type[BaseModel]] = {
    "estimate": schemas.EstimateResponse,
    "complete": schemas.EstimateResponse,
    "generate": schemas.GenerateResponse,
    "variations": schemas.GenerateResponse,
    "detect": schemas.DetectResponse,
}
SUMMARIES = {
    "estimate": "3D pose hypotheses from 2D keypoints or a photo (camera frame, metres)",
    "complete": "fill in the unknown joints of a partly posed skeleton (world frame, metres)",
    "generate": "random plausible poses (world frame, Z up, metres, pelvis at the origin)",
    "variations": "poses near a given pose (world frame, metres)",
    "detect": "2D keypoints of a person in photos (pixels)",
}


# ----------------------------------------------------------------------------- response models


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    version: str


class SkeletonInfo(BaseModel):
    joint_names: list[str]
    joints: list[dict] = Field(description="per joint: index, name, parent, mirror, bone_length_m (metres)")


class JobCreated(BaseModel):
    id: str
    state: str = Field(description="'queued'")


class JobStatus(BaseModel):
    id: str
    task: str
    state: Literal["queued", "running", "done", "failed", "cancelled"]
    progress: float = Field(ge=0, le=1)
    result: dict | None = Field(None, description="the task's response body (as the synchronous route), when done")
    error: str | None = Field(None, description="what went wrong, when failed")
    error_field: str | None = Field(None, description="the request field at fault, when failed on bad input")
    cancel_requested: bool = False
    created: float = Field(description="Unix time, seconds")
    started: float | None = None
    finished: float | None = None


class JobList(BaseModel):
    jobs: list[JobStatus]


class ErrorField(BaseModel):
    field: str
    message: str


class InputErrorBody(BaseModel):
    detail: ErrorField


class ValidationItem(BaseModel):
    loc: list[str | int]
    field: str
    msg: str
    type: str


class ValidationErrorBody(BaseModel):
    detail: list[ValidationItem]
    message: str


class SimpleError(BaseModel):
    detail: str
    request_id: str | None = None


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": InputErrorBody, "description": "bad input found by the service (field named)"},
    401: {"model": SimpleError, "description": "missing or wrong bearer token"},
    413: {"model": SimpleError, "description": "request body too large"},
    422: {"model": ValidationErrorBody, "description": "invalid request (field named); or no person found"},
    503: {"model": SimpleError, "description": "queue full or server shutting down; retry later"},
}


# ----------------------------------------------------------------------------- helpers


def field_path(loc: tuple | list) -> str:
    """pydantic ``loc`` -> readable path: ``("body", "frames", 0, "camera", "fx")`` -> ``frames[0].camera.fx``."""
    parts = list(loc)
    if parts and parts[0] == "body":
        parts = parts[1:]
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + str(p)
    return out or "body"


def _json_error(status: int, content: dict, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content=content, headers=headers)


def _request_id(request: Request) -> str:
    return request.scope.get("state", {}).get("request_id") or uuid.uuid4().hex[:12]


def _is_finite_json(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_is_finite_json(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(_is_finite_json(v) for v in value)
    return True


def service_call(service, task: str, req: BaseModel):
    """``fn(progress, cancel)`` running ``service.<task>(req, ...)`` on the worker thread.

    A pydantic ``ValidationError`` raised inside the service comes from a model it built out of
    the request (e.g. a completion of an empty pose), so it is bad input: it becomes an
    :class:`InputError` on ``body`` (-> 400) rather than an internal error. So does a result
    holding NaN or infinity (valid JSON cannot carry it), which comes from absurd magnitudes in
    the request (e.g. keypoints at 1e300 pixels); it is logged as an error too, in case the
    cause is the model rather than the request.
    """
    from pydantic import ValidationError

    method = getattr(service, task)

    def fn(progress, cancel):
        try:
            result = method(req, progress=progress, cancel=cancel)
        except ValidationError as e:
            first = e.errors()[0] if e.errors() else {"msg": str(e)}
            log.warning("%s: the service rejected a model built from the request: %s", task, first.get("msg"))
            raise InputError("body", f"the request cannot be processed: {first.get('msg')}") from e
        if not _is_finite_json(result.model_dump()):
            log.error("%s: the result holds NaN or infinity (request numbers out of range?)", task)
            raise InputError("body", "the result is not finite (NaN or infinity): numbers in the request are out of "
                                     "range; keypoints are pixels, joints metres, focal lengths pixels")
        return result

    return fn


# ----------------------------------------------------------------------------- ASGI guard


class Guard:
    """Pure-ASGI middleware in front of the app: request id, ``Host`` check, bearer token,
    bounded body, and a last-resort 500 for anything unexpected.

    Args:
        app: the ASGI app.
        token: the bearer token.
        hosts: the accepted ``Host`` headers.
        max_body: most bytes a request body may have (413 above, whether announced by
            ``Content-Length`` or streamed).
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
        body, complete = await self._read_body(receive)
        if not complete:
            return await self._reject(receive, send_with_id, 413, self._too_large())
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


def _start(status: int, extra_headers=()) -> dict:
    return {"type": "http.response.start", "status": status,
            "headers": [(b"content-type", b"application/json"), (b"connection", b"close"), *extra_headers]}


def _body(content: dict) -> dict:
    return {"type": "http.response.body", "body": json.dumps(content).encode()}


# ----------------------------------------------------------------------------- the app


def create_app(service, token: str, hosts: HostPolicy, max_body_bytes: int = int(DEFAULT_MAX_BODY_MB * 2**20),
               jobs: JobQueue | None = None):
    """The ASGI app: FastAPI routes behind the :class:`Guard`.

    Args:
        service: a loaded :class:`backend.service.PoseService` (or any object with its methods).
        token: the bearer token every route except ``/v1/health`` requires.
        hosts: accepted ``Host`` headers.
        max_body_bytes: request body limit (bytes).
        jobs: the queue whose single worker thread runs all model work (made here if None).
    Returns:
        ``(asgi_app, fastapi_app, jobs)``.
    """
    from backend.skeleton import JOINT_NAMES, describe

    jobs = jobs or JobQueue()

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        yield
        await asyncio.get_running_loop().run_in_executor(None, jobs.close)

    app = FastAPI(
        title="PoseDiff backend",
        version=__version__,
        description=__doc__,
        docs_url=None,  # the interactive docs load scripts from a CDN; /openapi.json is enough
        redoc_url=None,
        lifespan=lifespan,
    )
    # Documentation only: the Guard enforces the token on every route but /v1/health.
    bearer = HTTPBearer(auto_error=False, description="the token from $POSEDIFF_TOKEN or the token file")
    api = APIRouter(prefix="/v1", dependencies=[Security(bearer)], responses={401: ERROR_RESPONSES[401]})

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        items = []
        for e in exc.errors():
            loc = [p if isinstance(p, (str, int)) else str(p) for p in e.get("loc", ())]
            items.append({"loc": loc, "field": field_path(loc), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))})
        first = items[0] if items else {"field": "body", "msg": "invalid request"}
        more = f" (and {len(items) - 1} more)" if len(items) > 1 else ""
        return _json_error(422, {"detail": items, "message": f"{first['field']}: {first['msg']}{more}"})

    @app.exception_handler(InputError)
    async def _input_error(request: Request, exc: InputError):
        status = 422 if isinstance(exc, NoPersonError) else 400
        return _json_error(status, {"detail": {"field": exc.field, "message": exc.message}})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        # answered here; the Guard, which sees the exception re-raised, logs it with this id
        return _json_error(500, {"detail": "internal error", "request_id": _request_id(request)})

    async def run_task(request: Request, task: str, req: BaseModel):
        rid = _request_id(request)
        try:
            job = jobs.submit(f"{task} (request {rid})", service_call(service, task, req), keep=False)
        except (QueueFull, ShuttingDown) as e:
            return _json_error(503, {"detail": str(e)}, headers={"retry-after": "5"})
        try:
            result = await asyncio.wrap_future(job.future)
        except InputError:
            raise
        except Cancelled:
            return _json_error(503, {"detail": "cancelled: the server is shutting down"})
        except Exception:  # noqa: BLE001 - already logged by the worker, with this request id
            return _json_error(500, {"detail": "internal error", "request_id": rid})
        return result

    def add_task_routes(task: str):
        req_model, res_model = TASKS[task], RESPONSES[task]

        async def run_sync(request: Request, body: req_model):  # type: ignore[valid-type]
            return await run_task(request, task, body)

        async def submit_job(request: Request, body: req_model):  # type: ignore[valid-type]
            try:
                job = jobs.submit(task, service_call(service, task, body), serialize=lambda r: r.model_dump(mode="json"))
            except (QueueFull, ShuttingDown) as e:
                return _json_error(503, {"detail": str(e)}, headers={"retry-after": "5"})
            return JSONResponse(status_code=202, content={"id": job.id, "state": job.state})

        # the body's type is chosen at run time (annotations are strings under __future__.annotations)
        run_sync.__annotations__["body"] = submit_job.__annotations__["body"] = req_model
        errs = {k: ERROR_RESPONSES[k] for k in (400, 413, 422, 503)}
        api.add_api_route(f"/{task}", run_sync, methods=["POST"], response_model=res_model, summary=SUMMARIES[task],
                          responses=errs, name=task)
        api.add_api_route(f"/jobs/{task}", submit_job, methods=["POST"], status_code=202, response_model=JobCreated,
                          summary=f"start a '{task}' job (poll GET /v1/jobs/{{id}})",
                          responses={k: ERROR_RESPONSES[k] for k in (413, 422, 503)}, name=f"job_{task}")

    for task in TASKS:
        add_task_routes(task)

    @api.post("/jobs/{task}", include_in_schema=False)
    async def unknown_task(task: str):
        return _json_error(404, {"detail": f"unknown task {task!r}; valid: {', '.join(TASKS)}"})

    @api.get("/jobs", response_model=JobList, summary="all remembered jobs, oldest first (without results)")
    async def list_jobs():
        return {"jobs": [{**j.status(), "result": None} for j in jobs.list()]}

    def status_or_404(job, job_id: str):
        if job is None:
            return _json_error(404, {"detail": f"no job {job_id!r} (unknown, or forgotten: only the last "
                                               f"{jobs.keep_finished} finished jobs are kept)"})
        return job.status()

    @api.get("/jobs/{job_id}", response_model=JobStatus, responses={404: {"model": SimpleError}},
             summary="a job's state, progress (0..1) and, when done, its result")
    async def get_job(job_id: str):
        return status_or_404(jobs.get(job_id), job_id)

    @api.delete("/jobs/{job_id}", response_model=JobStatus, responses={404: {"model": SimpleError}},
                summary="cancel a job (a running one stops at its next denoising step)")
    async def cancel_job(job_id: str):
        return status_or_404(jobs.cancel(job_id), job_id)

    @api.get("/skeleton", response_model=SkeletonInfo, summary="joint names, parents, mirrors, bone lengths")
    async def skeleton():
        return {"joint_names": list(JOINT_NAMES), "joints": describe()}

    @api.get("/info", summary="model version, device and defaults")
    async def info() -> dict:
        return service.info()

    app.include_router(api)

    @app.get("/v1/health", response_model=Health, summary="liveness; needs no token")
    async def health():
        return {"status": "ok", "version": __version__}

    guarded = Guard(app, token, hosts, max_body_bytes)
    return guarded, app, jobs


# ----------------------------------------------------------------------------- command line


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``posediff serve``'s options to ``parser``."""
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help="address to bind (default 127.0.0.1; anything but loopback exposes the server to "
                             "the network, token or not)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="TCP port (default 8765; 0 = any free port)")
    parser.add_argument("--device", choices=["cuda", "cpu"], default=None,
                        help="run the model here (default: CUDA when available, else CPU)")
    parser.add_argument("--weights", default=None, help="prior weights (.safetensors; default: the shipped ones)")
    parser.add_argument("--token-file", default=None,
                        help="where the token is kept when $POSEDIFF_TOKEN is not set "
                             "(default $POSEDIFF_TOKEN_FILE or ~/.config/posediff/token)")
    parser.add_argument("--max-body-mb", type=float, default=DEFAULT_MAX_BODY_MB,
                        help="largest request body in MB (default 32; larger -> 413)")
    parser.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                        help="also accept this name in the Host header (repeatable)")
    parser.add_argument("--keep-jobs", type=int, default=64, help="finished jobs remembered (default 64)")
    parser.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"],
                        help="server log level (default warning; 'info' logs every request)")


def _fail(message: str) -> int:
    print(f"posediff serve: {message}", file=sys.stderr, flush=True)
    return EXIT_USAGE


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``port`` 0: any free port).

    Raises:
        OSError: the port is in use (``errno.EADDRINUSE``) or the address cannot be bound.
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, socktype, proto, _, addr = infos[0]
    sock = socket.socket(family, socktype, proto)
    try:
        if sys.platform != "win32":  # on Windows SO_REUSEADDR would let two servers share a port
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def serve_command(args: argparse.Namespace) -> int:
    """Run the server until SIGINT/SIGTERM (``posediff serve``).

    Checks the port before loading the model; prints one line when ready:
    ``posediff serving on http://HOST:PORT (device ..., token file ...)``.

    Returns:
        0 after a clean shutdown; 2 for a busy port, a bad option, missing weights or an
        unavailable device (with a one-line message on stderr).
    """
    if not 0 <= args.port <= 65535:
        return _fail(f"--port {args.port}: must be 0..65535")
    if not (args.max_body_mb > 0 and math.isfinite(args.max_body_mb)):
        return _fail(f"--max-body-mb {args.max_body_mb}: must be a positive number of megabytes")
    if args.keep_jobs < 1:
        return _fail(f"--keep-jobs {args.keep_jobs}: must be at least 1")
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        sock = bind_socket(args.host, args.port)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            return _fail(f"port {args.port} on {args.host} is already in use (another 'posediff serve'?); "
                         "stop it or choose another port with --port")
        return _fail(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}")
    port = sock.getsockname()[1]
    if not is_loopback(args.host):
        print(f"posediff serve: WARNING: listening on {args.host}, not loopback: other machines can reach this "
              "server; anyone with the token can run the model and read image files", file=sys.stderr, flush=True)
    try:
        tokens: TokenSource = resolve_token(args.token_file)
    except (OSError, ValueError) as e:
        sock.close()
        return _fail(f"token: {e}")
    try:
        from backend.service import PoseService

        service = PoseService(weights=args.weights, device=args.device)
    except (FileNotFoundError, ValueError, OSError, RuntimeError) as e:
        sock.close()
        return _fail(f"cannot load the model: {e}")

    import uvicorn

    jobs = JobQueue(keep_finished=args.keep_jobs)
    hosts = HostPolicy(args.host, port, frozenset(h.lower() for h in args.allow_host))
    asgi, _, _ = create_app(service, tokens.token, hosts, int(args.max_body_mb * 2**20), jobs)
    ready = (f"posediff serving on http://{_url_host(args.host)}:{port} "
             f"(device {service.device}, {tokens.describe()})")
    config = uvicorn.Config(asgi, log_level=args.log_level, access_log=args.log_level in ("debug", "info"),
                            lifespan="on", timeout_graceful_shutdown=10, server_header=False)
    server = _Server(config, jobs, ready)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0


class _Server:
    """uvicorn's Server, printing the ready line once listening and cancelling jobs on a signal."""

    def __new__(cls, config, jobs: JobQueue, ready: str):
        import uvicorn

        class Server(uvicorn.Server):
            async def startup(self, sockets=None):
                await super().startup(sockets=sockets)
                if self.started:
                    print(ready, flush=True)

            def handle_exit(self, sig, frame):
                super().handle_exit(sig, frame)
                self._captured_signals.clear()  # a signal is how this server stops: exit 0, no re-raise
                with contextlib.suppress(RuntimeError):
                    asyncio.get_event_loop().call_soon_threadsafe(_cancel_all, jobs)

        return Server(config)


def _cancel_all(jobs: JobQueue) -> None:
    for job in jobs.list():
        jobs.cancel(job.id)


def main(argv: list[str] | None = None) -> int:
    """``python -m backend.server [options]``: the same as ``posediff serve``."""
    parser = argparse.ArgumentParser(prog="posediff serve", description="PoseDiff local HTTP server")
    add_serve_arguments(parser)
    return serve_command(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
