"""Imports whose objects last as long as the process, made without the cycle collector.

A command's imports (pandas, SQLAlchemy, pyarrow, GX: about 400,000 objects) are modules,
classes and functions that live until the process ends. Python's cycle collector runs every
few hundred new objects and walks the older ones again each time, and once more at exit: about
0.4 CPU-s of collections during a sync's imports and half a CPU-second at its exit, for
almost nothing to collect (docs/performance.md).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def lasting_imports() -> Iterator[None]:
    """Pause the cycle collector for the block's imports, then freeze everything it tracks
    (``gc.freeze``) so that no later pass, the ones at exit included, walks it again.

    Reference counting still frees what the block made and dropped; only garbage in cycles
    made during the block (about 2,000 objects in a sync's imports) is never collected. The
    freeze takes every object tracked by then, the process's earlier ones too, and a frozen
    object that later becomes cyclic garbage is kept for good: use it where those are few and
    lasting (a command's start, a process's first validator), never in a loop."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if collecting:
            gc.enable()
