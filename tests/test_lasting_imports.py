"""Imports made without the cycle collector, and frozen out of its later passes."""

from __future__ import annotations

import gc
import weakref

from omnisync.lasting_imports import lasting_imports
from omnisync.validation.gx_import import import_gx


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the cycle collector frees it


def test_the_collector_is_paused_in_the_block_and_what_it_made_is_frozen() -> None:
    assert gc.isenabled()
    frozen = gc.get_freeze_count()
    with lasting_imports():
        assert not gc.isenabled()
        made = [Node() for _ in range(100)]
        dropped = weakref.ref(Node())  # cyclic garbage made in the block
    assert gc.isenabled()
    assert gc.get_freeze_count() >= frozen + 100
    gc.collect()
    assert dropped() is not None, "frozen: no later pass walks it (the documented price)"
    assert len(made) == 100


def test_a_paused_collector_stays_paused() -> None:
    gc.disable()
    try:
        with lasting_imports():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_gx_is_imported_and_frozen_once_per_process() -> None:
    """A long-lived process (a Prefect worker) builds a validator per run: only the first
    import freezes, never the runs' objects after it."""
    import_gx()  # the test session imported it first (tests/conftest.py)
    frozen = gc.get_freeze_count()
    keep = [Node() for _ in range(50)]
    import_gx()
    assert gc.get_freeze_count() == frozen
    del keep
