"""Errors that the CLI turns into exit status 2 and the server into 4xx responses."""

from __future__ import annotations


class InputError(ValueError):
    """Bad input: names the offending field (dotted/indexed path, e.g. ``frames[0].camera.fx``).

    Args:
        field: where in the request the problem is.
        message: what is wrong and, where possible, how to fix it.
    """

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class NoPersonError(InputError):
    """The 2D detector found no person in an image."""


class Cancelled(RuntimeError):
    """A job was cancelled between denoising steps."""
