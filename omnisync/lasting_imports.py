"""Imports whose objects last as long as the process, made without the cycle collector.

A command's imports (pandas, SQLAlchemy, pyarrow, GX: about 400,000 objects) are modules,
classes and functions that live until the process ends. Python's cycle collector runs every
few hundred new objects and walks the older ones again each time, and once more at exit: about
0.4 CPU-s of collections during a sync's imports and half a CPU-second at its exit, for
almost nothing to collect (docs/performance.md).
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def lasting_imports() -> Iterator[None]:
    """Pause the cycle collector for the block's imports, then freeze everything it tracks
    (``gc.freeze``) so that no later pass, the ones at exit included, walks it again.

    What is garbage before the block is collected first (a few milliseconds at a command's
    start), so the freeze keeps only what lasts: the block's modules and the objects still
    alive then. Reference counting still frees what is dropped later; only what becomes cyclic
    garbage after being frozen is never collected (about 2,000 objects made by a sync's own
    imports). The collector is paused for the whole process: when GX imports on its own thread
    while planning asks Omnitron (``RunContext.prepare_validator``), the cyclic garbage planning
    leaves meanwhile is frozen too and kept to the process's end (a review measured one page's
    answer, about 0.6 MB, on an incremental; 1.8 MB when the import took 6 s). A block that
    imported nothing (the modules were loaded already: a second run in one process) freezes
    nothing."""
    loaded = len(sys.modules)
    gc.collect()
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if len(sys.modules) > loaded:
            gc.freeze()
        if collecting:
            gc.enable()
