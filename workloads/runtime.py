"""Process-level settings for training on CPUs."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


@functools.cache
def tune_cpu_allocator(keep_bytes: int = 1 << 30) -> bool:
    """Keep large freed blocks in glibc's heap instead of returning them to the OS.

    glibc serves every allocation above its mmap threshold (at most 32 MiB) with a
    fresh ``mmap`` and unmaps it on free, so each training step page-faults its
    feature maps and their gradients in again: zero-filling one 8 x 64 x 128 x 128
    gradient took 11 ms here against 1 ms for warm memory. Raising the thresholds
    (what jemalloc/tcmalloc achieve, and what PyTorch's CPU tuning guide advises)
    makes those allocations reuse warm memory. Process-wide; returns False where the
    C library is not glibc. Called once per process by the trial runner and benchmarks.
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    ok = mallopt(_M_MMAP_THRESHOLD, int(keep_bytes)) == 1
    ok = mallopt(_M_TRIM_THRESHOLD, int(2 * keep_bytes)) == 1 and ok
    return ok
