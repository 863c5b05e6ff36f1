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


class MocapFileError(InputError):
    """A malformed mocap file (BVH, ASF/AMC); the message names the file and the line (1-based).

    Args:
        source: the file name (or zip member) being parsed.
        line: 1-based line number of the problem (0 when no line applies).
        message: what is wrong and, where possible, how to fix it.
    """

    def __init__(self, source: str, line: int, message: str):
        super().__init__(f"{source}:{line}" if line else source, message)
        self.source = source
        self.line = line


class NoPersonError(InputError):
    """The 2D detector found no person in an image."""


class Cancelled(RuntimeError):
    """A job was cancelled between denoising steps."""


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


def input_error_from(err) -> InputError:
    """The first error of a pydantic ``ValidationError`` as an :class:`InputError`: field named with
    :func:`field_path` (``body`` when the error is about the whole model), pydantic's message, and
    how many more errors there were."""
    items = err.errors()
    first = items[0] if items else {"loc": (), "msg": str(err)}
    more = f" (and {len(items) - 1} more)" if len(items) > 1 else ""
    return InputError(field_path(first.get("loc", ())), f"{first.get('msg', 'invalid')}{more}")
