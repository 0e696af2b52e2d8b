"""A per-process request budget: a rate (requests per second) and a number of requests in flight.

Every client of one process that talks to the same Omnitron shares one ``Throttle``, so that ten
threads each with their own client still stay within ``OMNISYNC_MAX_RPS`` and
``OMNISYNC_CONCURRENCY`` together. The rate is a leaky bucket without burst: requests start at
least ``1 / rps`` seconds apart.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import ClassVar


class Throttle:
    _shared: ClassVar[dict[tuple[str, float, int], Throttle]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, rps: float, concurrency: int) -> None:
        if rps <= 0 or concurrency < 1:
            raise ValueError("rps must be > 0 and concurrency >= 1")
        self.rps = rps
        self.concurrency = concurrency
        self._interval = 1.0 / rps
        self._next_start = time.monotonic()
        self._lock = threading.Lock()
        self._in_flight = threading.BoundedSemaphore(concurrency)

    @classmethod
    def shared(cls, key: str, rps: float, concurrency: int) -> Throttle:
        """The process-wide throttle for ``key`` (the base URL) with these limits."""
        with cls._shared_lock:
            throttle = cls._shared.get((key, rps, concurrency))
            if throttle is None:
                throttle = cls._shared[(key, rps, concurrency)] = cls(rps, concurrency)
            return throttle

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Block until a request may start, and hold an in-flight place until it ends."""
        with self._in_flight:
            with self._lock:
                now = time.monotonic()
                start = max(now, self._next_start)
                self._next_start = start + self._interval
            if start > now:
                time.sleep(start - now)
            yield
