"""Keep freed tensor memory in the process heap (glibc ``mallopt``): no page faults per sampling step.

PyTorch's CPU allocator takes every tensor from ``malloc``. glibc serves a block above its mmap
threshold (128 KiB at start, adapting up to 32 MiB) with a fresh ``mmap`` and unmaps it on free,
and returns the heap's free top to the kernel above its trim threshold; either way the next
allocation of that size touches new pages, which the kernel faults in and zeroes one by one. The
sampler allocates many such temporaries per denoising step (a ``[960, 768]`` float activation
is 2.9 MB), so a sequence paid more for page faults than for most of its arithmetic. Measured
(a 16-frame sequence from keypoints, 60 candidates per frame, one torch thread): 513,543 minor
page faults, 7.66 s user + 1.36 s system time; with the thresholds below 268 faults, 7.08 s +
0.01 s (-21 % CPU time). The numbers computed are unchanged (only where memory comes from).

:data:`MMAP_THRESHOLD` fixes glibc's mmap threshold (blocks below it come from the heap and are
reused after free); :data:`TRIM_THRESHOLD` lets the heap keep up to that much free memory instead
of returning it. The cost: the process keeps its peak heap (at most this much beyond it) for
reuse. Linux with glibc only; elsewhere, or when the user set glibc's own ``MALLOC_*`` variables
or ``GLIBC_TUNABLES`` for malloc, nothing is changed.
"""

from __future__ import annotations

import ctypes
import os
import sys

#: glibc's ``mallopt`` parameters (malloc.h) and the values set (bytes).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 64 << 20
TRIM_THRESHOLD = 256 << 20

_applied = False


def keep_freed_memory() -> bool:
    """Set the thresholds once per process; returns whether they are in effect."""
    global _applied
    if _applied:
        return True
    if not sys.platform.startswith("linux"):
        return False
    if any(k in os.environ for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")) or \
            "malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return False  # the user's own settings win
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (musl, ...)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    _applied = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    return _applied
