"""How a command is stopped from outside: Ctrl-C, or SIGTERM from a scheduler or a container.

Python turns Ctrl-C (SIGINT) into ``KeyboardInterrupt`` in the main thread, and every step of a
run already stops cleanly on it: the windows started finish or are left for the next run, no
PATCH is sent after it, the lock is released and the run is recorded as interrupted. SIGTERM,
by default, ends the process where it stands, like ``kill -9``: nothing is lost (the lease
expires and the next run goes on), but the run stays "running" in ``omnisync status`` and its
lock held until the lease runs out. Under :func:`sigterm_stops`, SIGTERM raises
:class:`Terminated`, a ``KeyboardInterrupt``, so that it takes Ctrl-C's path.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread as Ctrl-C is: a scheduler or container stopping it."""


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated("SIGTERM")


@contextlib.contextmanager
def sigterm_stops() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` in the main thread for the block, then the handler
    before it is back. Elsewhere than in the main thread (where a handler cannot be set), the
    block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        # None: a handler set outside Python, which cannot be set again from here
        signal.signal(signal.SIGTERM, signal.SIG_DFL if before is None else before)
