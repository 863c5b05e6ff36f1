"""The local HTTP server that the Blender add-on talks to (``posediff serve``): the routes.

FastAPI on uvicorn, bound to 127.0.0.1 by default. One :class:`backend.service.PoseService` is
loaded at start and every piece of model work runs on ONE worker thread (:mod:`backend.http.jobs`),
in arrival order; synchronous endpoints wait for their turn, and a synchronous request whose
client disconnects (a timeout, Ctrl-C) is cancelled at its next denoising step, so the next one
does not wait for work nobody will read.

Routes (request and response bodies are the models of :mod:`backend.http.schemas`; ``GET
/openapi.json`` documents them):

* ``GET  /v1/health`` -- ``{"status": "ok", "version": ...}``; the only route without a token.
* ``GET  /v1/skeleton`` -- joint names, parents, mirrors, bone lengths.
* ``GET  /v1/info`` -- model version, device, defaults (``PoseService.info()``), ``max_body_bytes``
  and ``request_encodings`` (``["gzip"]``).
* ``POST /v1/estimate | /v1/complete | /v1/generate | /v1/variations | /v1/detect | /v1/assist``
  -- run the task and answer with its response (``assist``: one pose per update of a drag, see
  :mod:`backend.assist`); ``/v1/track`` re-solves a sequence's track; ``/v1/image`` decodes a
  photo as the backend sees it (upright, HEIC too) and answers it as a JPEG.
* ``POST /v1/jobs/{task}`` (same bodies) -- ``202 {"id": ..., "state": "queued"}`` at once;
  ``GET /v1/jobs/{id}`` -- state (queued, running, done, failed, cancelled), progress 0..1,
  ``result`` when done, ``error`` (and ``error_field`` for bad input) when failed;
  ``DELETE /v1/jobs/{id}`` -- cancel (between denoising steps); ``GET /v1/jobs`` -- all
  remembered jobs (no results). The last 64 finished jobs are kept (``--keep-jobs``), their results
  as JSON and 512 MB of them in all (``--keep-results-mb``; the newest is always kept).

Every request except ``/v1/health`` needs ``Authorization: Bearer TOKEN`` (see
:mod:`backend.http.auth` for where the token comes from) and a ``Host`` header naming the bound
address. Request bodies above ``--max-body-mb`` get 413, announced or streamed; a body may be sent
gzip-compressed (``Content-Encoding: gzip``: the limit counts its compressed bytes, and it may
decompress to 8x that, :data:`backend.http.guard.GZIP_EXPANSION`).

Errors (fields named by :func:`backend.errors.field_path`, e.g. ``frames[0].camera.fx``): a request
that violates the schema (:mod:`backend.http.schemas`: ranges, finiteness, joint names, an
orthonormal rotation) -> 422 ``{"detail": [{"loc", "field", "msg", "type"}], "message": "..."}``,
before anything is queued; bad input that only the data reveals (an unreadable image, a result
that is not finite) -> :class:`backend.errors.InputError` -> 400 ``{"detail": {"field",
"message"}}`` (a :class:`backend.errors.NoPersonError` -> 422, same shape); a full queue -> 503;
anything unexpected -> 500 ``{"detail": "internal error", "request_id": ...}``, logged with that id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid

from fastapi import APIRouter, FastAPI, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPBearer
from pydantic import BaseModel

from backend import __version__
from backend.errors import Cancelled, InputError, NoPersonError, field_path, input_error_from
from backend.http import schemas
from backend.http.auth import HostPolicy
from backend.http.guard import REQUEST_ENCODINGS, Guard
from backend.http.jobs import JobQueue, QueueFull, ShuttingDown
from backend.http.responses import ERROR_RESPONSES, Health, JobCreated, JobList, JobStatus, SimpleError, SkeletonInfo

log = logging.getLogger("posediff.server")

DEFAULT_MAX_BODY_MB = 32.0
#: How often a synchronous request checks that its client is still connected (seconds).
DISCONNECT_POLL_S = 0.25

#: Task name -> request model; each is also the name of the PoseService method that runs it.
TASKS: dict[str, type[BaseModel]] = {
    "estimate": schemas.EstimateRequest,
    "complete": schemas.CompleteRequest,
    "generate": schemas.GenerateRequest,
    "variations": schemas.VariationsRequest,
    "detect": schemas.DetectRequest,
    "assist": schemas.AssistRequest,
    "track": schemas.TrackRequest,
    "image": schemas.ImageRequest,
}
RESPONSES: dict[str, type[BaseModel]] = {
    "estimate": schemas.EstimateResponse,
    "complete": schemas.EstimateResponse,
    "generate": schemas.GenerateResponse,
    "variations": schemas.GenerateResponse,
    "detect": schemas.DetectResponse,
    "assist": schemas.AssistResponse,
    "track": schemas.EstimateResponse,
    "image": schemas.ImageResponse,
}
SUMMARIES = {
    "estimate": "3D pose hypotheses from 2D keypoints or a photo (camera frame, metres)",
    "complete": "fill in the unknown joints of a partly posed skeleton (world frame, metres)",
    "generate": "random plausible poses (world frame, Z up, metres, pelvis at the origin)",
    "variations": "poses near a given pose (world frame, metres)",
    "detect": "2D keypoints of a person in photos (pixels)",
    "assist": "pose assist: one completed pose for the pinned joints, warm-started from the previous one "
              "(world frame, metres; fast, continuous under small moves of the pins)",
    "track": "re-solve the track of a sequence response with some frames' hypotheses fixed (no sampling)",
    "image": "a photo decoded as the backend sees it (upright; HEIC too) as a JPEG, for clients that cannot read it",
}


def _json_error(status: int, content: dict, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content=content, headers=headers)


def _request_id(request: Request) -> str:
    return request.scope.get("state", {}).get("request_id") or uuid.uuid4().hex[:12]


def service_call(service, task: str, req: BaseModel):
    """``fn(progress, cancel)`` running ``service.<task>(req, ...)`` on the worker thread.

    A pydantic ``ValidationError`` raised inside the service comes from a model it built out of
    the request: a completion of an empty pose, or a response refusing NaN or infinity
    (:class:`backend.http.schemas.FiniteResponse`), which comes from absurd magnitudes in the
    request. Either is bad input: an :class:`InputError` (-> 400) naming the field
    (:func:`backend.errors.input_error_from`), not an internal error. A non-finite result is
    logged as an error too, in case the cause is the model rather than the request.
    """
    from pydantic import ValidationError

    method = getattr(service, task)

    def fn(progress, cancel):
        try:
            return method(req, progress=progress, cancel=cancel)
        except ValidationError as e:
            err = input_error_from(e)
            kind = e.errors()[0].get("type") if e.errors() else None
            (log.error if kind == "non_finite_result" else log.warning)(
                "%s: the service rejected a model built from the request: %s", task, err)
            raise err from e

    return fn


# ----------------------------------------------------------------------------- ASGI guard


def _json_bytes(response: BaseModel) -> bytes:
    """A job's result as kept: its JSON (a tenth of the memory of the same as Python objects)."""
    return response.__pydantic_serializer__.to_json(response)


def status_response(status: dict):
    """A job's status as the answer: the dict, or, with a result kept as JSON bytes
    (:func:`_json_bytes`), the status's JSON with the result spliced in unparsed."""
    raw = status.get("result")
    if not isinstance(raw, bytes):
        return status
    head = json.dumps({k: v for k, v in status.items() if k != "result"}, separators=(",", ":")).encode()
    return Response(content=head[:-1] + b',"result":' + raw + b"}", media_type="application/json")


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
            field, msg = field_path(loc), str(e.get("msg", ""))
            if e.get("type") == "json_invalid":  # loc = ["body", character offset]
                at = f" at character {loc[1]}" if len(loc) > 1 else ""
                field, msg = "body", f"not valid JSON{at}: {(e.get('ctx') or {}).get('error', msg)}"
            elif loc == ["body"] and isinstance(e.get("input"), (bytes, str)):  # not parsed as JSON: the content type
                field, msg = "body", "the body must be a JSON object sent with 'Content-Type: application/json'"
            items.append({"loc": loc, "field": field, "msg": msg, "type": str(e.get("type", ""))})
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
        fut = asyncio.wrap_future(job.future)
        while not fut.done():
            # a client that hangs up (a timeout, Ctrl-C) stops its work: the queue is free for the next request
            await asyncio.wait({fut}, timeout=DISCONNECT_POLL_S)
            if not fut.done() and await request.is_disconnected():
                jobs.cancel(job.id)
                log.warning("request %s: the client disconnected; its %s was cancelled", rid, task)
                with contextlib.suppress(Exception):
                    await fut
                return _json_error(499, {"detail": "the client disconnected; the request was cancelled"})
        try:
            result = await fut
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
                job = jobs.submit(task, service_call(service, task, body), serialize=_json_bytes)
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
                                               f"{jobs.keep_finished} finished jobs are kept, and results of "
                                               f"{jobs.keep_result_bytes / 2**20:g} MB in all)"})
        return status_response(job.status())

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

    @api.get("/info", summary="model version, device, defaults and the request body limit")
    async def info() -> dict:
        return {**service.info(), "max_body_bytes": max_body_bytes, "request_encodings": list(REQUEST_ENCODINGS)}

    app.include_router(api)

    @app.get("/v1/health", response_model=Health, summary="liveness; needs no token")
    async def health():
        return {"status": "ok", "version": __version__}

    guarded = Guard(app, token, hosts, max_body_bytes)
    return guarded, app, jobs
