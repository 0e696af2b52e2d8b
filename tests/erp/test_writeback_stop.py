"""A second Ctrl-C while the write-back's pool shuts down: each change still gets one ledger row.

The first Ctrl-C stops the write-back (no PATCH from then on) and the pool's shutdown waits for
its workers; a second one ends that wait, and the ``finally`` records every change no worker
took as ``not_attempted`` while the workers, still running, take queued changes too. Each change
must be taken once. The interleaving is made by the test, not by timing: the pool's workers
wait at a gate, which the first ledger row the ``finally`` writes opens, and that row waits for
them to end.
"""

from __future__ import annotations

import datetime as dt
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

import pyarrow as pa
import pytest

from omnisync.erp import writeback


class _Ledger:
    def __init__(self) -> None:
        self.recorded: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.gate = threading.Event()
        self.taken: list[Future[Any]] = []  # what the pool's workers were handed

    def rows(self, **_: Any) -> list[dict[str, Any]]:
        return []

    def record(self, **row: Any) -> None:
        with self.lock:
            self.recorded.append(row)
        if threading.current_thread() is threading.main_thread() and not self.gate.is_set():
            self.gate.set()  # the finally's first row: the workers go on, and end theirs
            wait(self.taken, timeout=30)


class _Store:
    def __init__(self) -> None:
        self.ledger = _Ledger()


def test_a_second_ctrl_c_during_the_pools_shutdown_records_each_change_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = _Store()
    ledger = store.ledger
    pools: list[ThreadPoolExecutor] = []

    class Interrupted(ThreadPoolExecutor):
        """map hands every change to workers held at the gate, then Ctrl-C comes; the shutdown
        that waits for them is ended by a second Ctrl-C."""

        def map(self, fn: Any, *iterables: Any, **_: Any) -> Any:  # type: ignore[override]
            def gated(change: Any) -> Any:
                ledger.gate.wait(timeout=30)
                return fn(change)

            ledger.taken.extend(self.submit(gated, change) for change in iterables[0])
            pools.append(self)
            raise KeyboardInterrupt

        def shutdown(self, wait: bool = True, **_: Any) -> None:
            raise KeyboardInterrupt  # the second Ctrl-C, in the middle of the wait

    monkeypatch.setattr(writeback, "ThreadPoolExecutor", Interrupted)
    stamp = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    plan = pa.table(
        {
            "pk": list(range(1, 9)),
            "erp_code": [f"C{pk}" for pk in range(1, 9)],
            "previous_erp_code": [None] * 8,
            "based_on_modified": [stamp] * 8,
        }
    )
    with pytest.raises(KeyboardInterrupt):
        writeback.write_back(None, store, plan, "run", concurrency=2)  # type: ignore[arg-type]
    ledger.gate.set()
    for pool in pools:
        ThreadPoolExecutor.shutdown(pool, wait=True)
    pks = sorted(row["pk"] for row in ledger.recorded)
    assert pks == list(range(1, 9)), "one row a change, none twice"
    assert {row["outcome"] for row in ledger.recorded} == {"not_attempted"}
