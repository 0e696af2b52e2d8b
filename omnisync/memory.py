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


def _find_malloc_trim() -> Callable[[int], int] | None:
    try:
        # The process's own symbols: libc is among them, without find_library's subprocess.
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return None
    return trim


# Resolved once, at import: window threads call it side by side.
_MALLOC_TRIM = _find_malloc_trim()


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
