"""How a run gives back the memory of the work it has finished.

A sync holds one window's rows at a time (two with two windows side by side), so its peak should
not depend on how many customers it reads. Two allocators kept what a finished window freed:

* Arrow's default pool (mimalloc) keeps freed pages for reuse. Arrow's C++ code (the Parquet
  reader and writer, compute kernels) takes its pool from ``ARROW_DEFAULT_MEMORY_POOL`` when
  pyarrow is first imported, which ``omnisync/__init__.py`` sets to ``system``; pyarrow's own
  calls are moved by :func:`use_system_allocator`. Moving only the latter leaves Arrow's C++
  allocations in mimalloc, and the peak higher.
* glibc returns freed heap to the system only from the top of the heap; a window's millions of
  small objects leave most of it in the middle. ``malloc_trim`` gives those pages back.
* glibc maps a large block on its own, and unmaps it when it is freed, but raises that size
  (up to 32 MiB) each time it frees one: after a few windows, their column buffers came from the
  heaps of the threads that made them, and a thread's heap keeps its top resident
  (``malloc_trim`` does not shrink it). :func:`map_large_blocks` fixes the size at
  :data:`MMAP_THRESHOLD` for a long plan.

Without them a sync's peak RSS grows with the number of windows (the figures are in
docs/performance.md; ``make bench`` prints them).
"""

from __future__ import annotations

import ctypes
import logging
import resource
from collections.abc import Callable

import pyarrow as pa

log = logging.getLogger("omnisync.run")


#: blocks from this size up are mapped on their own, and unmapped when freed (see above)
MMAP_THRESHOLD = 256 * 1024
_M_MMAP_THRESHOLD = -3  # mallopt's parameter, from glibc's malloc.h
#: a plan of more windows than this maps large blocks on their own (:func:`map_large_blocks`)
LONG_PLAN_WINDOWS = 8


def map_large_blocks(windows: int) -> None:
    """Before a plan of ``windows`` windows runs in this process: when it is long, fix glibc's
    threshold for mapping a block on its own at :data:`MMAP_THRESHOLD`, for the rest of the
    process. Measured side by side (docs/performance.md): at 1M customers (28 windows) it lowered
    both the peak above the base (91 against 94 MiB) and the CPU (34.1 against 35.6 s): the
    heaps no longer grew and were trimmed; at 100k (3 windows) it cost 0.3-0.6 CPU-s of mapping
    for 10 MiB less."""
    if windows > LONG_PLAN_WINDOWS and _MALLOPT is not None:
        _MALLOPT(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)


def use_system_allocator() -> None:
    """pyarrow's buffers from the C allocator from now on (buffers already made keep theirs).
    When pyarrow was imported before omnisync set ``ARROW_DEFAULT_MEMORY_POOL`` (by a program
    that embeds omnisync), Arrow's C++ code keeps its own pool: that is said, once."""
    pool = pa.default_memory_pool()
    if pool.backend_name != "system":
        log.info(
            "Arrow was loaded with its %s allocator: set ARROW_DEFAULT_MEMORY_POOL=system in the "
            "environment for a lower peak memory",
            pool.backend_name,
        )
        pa.set_memory_pool(pa.system_memory_pool())


def _find_libc(name: str) -> Callable[..., int] | None:
    try:
        # The process's own symbols: libc is among them, without find_library's subprocess.
        function: Callable[..., int] = getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return None
    return function


# Resolved once, at import: window threads call them side by side.
_MALLOC_TRIM = _find_libc("malloc_trim")
_MALLOPT = _find_libc("mallopt")


#: a merge gives the heap back after this many bytes of merged rows (the buckets written)
#: rather than after every bucket: a small lake's buckets are small, and each trim walks the
#: whole heap
#: (docs/performance.md)
TRIM_AFTER_BYTES = 4 * 1024 * 1024


def give_back() -> None:
    """Return the heap pages nothing uses any more to the system (glibc): after a window,
    4 MiB of merged rows or a compacted month; it costs little next to that work."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def peak_mib() -> float:
    """The process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
