"""``posediff eval ... --prior default,cmu``: several priors side by side in one table.

Every evaluation command (any ``--protocol``) prints its results through
:func:`backend.evaluate.print_table`. To compare priors, the same command runs once per prior
with the same arguments (so the same frames, cameras, noise and seeds) while a :class:`Recorder`
collects its tables and printed lines; :func:`print_merged` then prints each table once, with a
``prior`` column, one row per prior, and a row giving each further prior's relative difference
from the first (``+4.2 %``: larger than the first prior's value). Rows that are the same for
every prior (reference rows, e.g. the training poses' own numbers) are printed once, prior ``(any)``.
"""

from __future__ import annotations

import contextlib
from typing import Callable

_active: Recorder | None = None


class Recorder:
    """What one evaluation command printed: ``("table", title, header, rows)`` and ``("text", s)`` items."""

    def __init__(self):
        self.items: list[tuple] = []

    # a write-only text stream (stdout is redirected here while recording)
    def write(self, s: str) -> int:
        if s:
            if self.items and self.items[-1][0] == "text":
                self.items[-1] = ("text", self.items[-1][1] + s)
            else:
                self.items.append(("text", s))
        return len(s)

    def flush(self) -> None:
        pass

    def table(self, title: str, header: list, rows: list) -> None:
        self.items.append(("table", title, list(header), [list(r) for r in rows]))


def active() -> Recorder | None:
    """The recorder of the command running now (None: print directly)."""
    return _active


@contextlib.contextmanager
def recording():
    """Record tables (via :func:`backend.evaluate.print_table`) and stdout of the enclosed code."""
    global _active
    rec, prev = Recorder(), _active
    _active = rec
    try:
        with contextlib.redirect_stdout(rec):
            yield rec
    finally:
        _active = prev


def relative(base: str, other: str) -> str:
    """``other`` relative to ``base`` in percent (``"+4.2 %"``); ``""`` where either is not a number or base is 0."""
    try:
        a, b = float(base), float(other)
    except (TypeError, ValueError):
        return ""
    if a == 0:
        return ""
    return f"{(b - a) / abs(a) * 100:+.1f} %"


def merged_rows(names: list[str], tables: list[tuple]) -> tuple[list, list[list]]:
    """One table from the same table of each prior: (header, rows).

    Args:
        names: the priors' names, in order; the first is the reference.
        tables: ``(title, header, rows)`` per prior, with the same header and row labels.
    Raises:
        ValueError: the tables differ in shape (then they cannot be put side by side).
    """
    header = tables[0][1]
    shapes = {(len(t[2]), tuple(len(r) for r in t[2])) for t in tables}
    if any(t[1] != header for t in tables) or len(shapes) != 1:
        raise ValueError("tables of different shapes")
    out = []
    for i, base in enumerate(tables[0][2]):
        if all(t[2][i] == base for t in tables[1:]):  # a reference row (training / held-out data): once
            out.append([base[0], "(any)", *base[1:]])
            continue
        for name, t in zip(names, tables):
            out.append([t[2][i][0], name, *t[2][i][1:]])
        for name, t in zip(names[1:], tables[1:]):
            out.append([base[0], f"{name} vs {names[0]}", *(relative(a, b) for a, b in zip(base[1:], t[2][i][1:]))])
    return [header[0], "prior", *header[1:]], out


def print_merged(names: list[str], recs: list[Recorder], print_table: Callable) -> None:
    """Print the recordings of one command run per prior as one output, tables merged.

    Text lines that are the same for every prior are printed once, others once per prior
    prefixed with ``[name]``; tables that cannot be merged are printed one per prior.
    """
    n = max(len(r.items) for r in recs)
    for k in range(n):
        items = [r.items[k] if k < len(r.items) else None for r in recs]
        kinds = {it[0] if it else None for it in items}
        if kinds == {"table"}:
            try:
                header, rows = merged_rows(names, [it[1:] for it in items])
            except ValueError:
                pass
            else:
                print_table(f"{items[0][1]} -- priors {', '.join(names)} (same frames and seeds)", header, rows)
                continue
        texts = [it[1] if it and it[0] == "text" else None for it in items]
        if kinds == {"text"} and len(set(texts)) == 1:
            print(texts[0], end="")
            continue
        for name, it in zip(names, items):
            if it is None:
                continue
            if it[0] == "table":
                print_table(f"[{name}] {it[1]}", it[2], it[3])
            else:
                for line in it[1].splitlines():
                    print(f"[{name}] {line}" if line.strip() else line)
