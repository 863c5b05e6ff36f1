"""The server's own response and error bodies (OpenAPI documentation of status codes)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


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
    400: {"model": InputErrorBody, "description": "bad input only the data reveals (field named): an unreadable "
                                                  "image, or a result that is not finite (request numbers out of range)"},
    401: {"model": SimpleError, "description": "missing or wrong bearer token"},
    413: {"model": SimpleError, "description": "request body too large"},
    422: {"model": ValidationErrorBody, "description": "the request violates the schema (field named as "
                                                       "frames[0].camera.fx; ranges, finiteness, joint names, an "
                                                       "orthonormal rotation); or no person found in a photo"},
    503: {"model": SimpleError, "description": "queue full or server shutting down; retry later"},
}
