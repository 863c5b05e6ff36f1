"""PoseService: the one object that the CLI and the HTTP server call.

It holds the diffusion prior (loaded once), the 2D detector (loaded on first use) and runs the
three tasks of the method on validated requests (:mod:`backend.schemas`). Every method takes
optional ``progress(fraction)`` and ``cancel() -> bool`` callbacks; a cancelled request raises
:class:`backend.errors.Cancelled` between denoising steps. Bad input raises
:class:`backend.errors.InputError` naming the field.
"""

from __future__ import annotations

from typing import Callable

from backend import schemas

Progress = Callable[[float], None] | None
CancelCheck = Callable[[], bool] | None


class PoseService:
    """The backend's tasks on one loaded model.

    Args:
        weights: path to a ``.safetensors`` prior (default: the shipped weights).
        device: ``"cuda"``, ``"cpu"`` or None (CUDA when available).
    """

    def __init__(self, weights=None, device: str | None = None):
        raise NotImplementedError

    def info(self) -> dict:
        """Model version, device, default camera, joint names (``GET /v1/info``)."""
        raise NotImplementedError

    def estimate(self, req: schemas.EstimateRequest, progress: Progress = None, cancel: CancelCheck = None) -> schemas.EstimateResponse:
        raise NotImplementedError

    def complete(self, req: schemas.CompleteRequest, progress: Progress = None, cancel: CancelCheck = None) -> schemas.EstimateResponse:
        raise NotImplementedError

    def generate(self, req: schemas.GenerateRequest, progress: Progress = None, cancel: CancelCheck = None) -> schemas.GenerateResponse:
        raise NotImplementedError

    def variations(self, req: schemas.VariationsRequest, progress: Progress = None, cancel: CancelCheck = None) -> schemas.GenerateResponse:
        raise NotImplementedError

    def detect(self, req: schemas.DetectRequest, progress: Progress = None, cancel: CancelCheck = None) -> schemas.DetectResponse:
        raise NotImplementedError
