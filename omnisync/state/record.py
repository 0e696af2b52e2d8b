"""The run record: one place writes a run's start and its outcome, whatever ends it, for syncs
and ERP reconciliations alike.

``RunRecord`` is entered as soon as a run holds its stream, before planning: a run that fails
while planning, extracting, finishing, building Data Docs or writing its artifact is recorded as
``failed`` with its error, and one that completes as ``succeeded`` with its counts. It is never
left ``running`` by an exception. A run that found its stream busy is recorded as ``refused``.

A run killed outright (SIGKILL, a lost VM) cannot record its end, so its row says ``running``.
Two things tell that it is not:

- A run that holds its stream's lock is the only one working on the stream: every other run of
  the stream still marked ``running`` (a verification, which holds no lock, aside) was killed, or
  stalled past its lease and can change nothing any more (G5). Entering the record marks them
  ``interrupted``, naming the run that took over and why, as far as this host can tell.
  Taking a lock from a dead holder also marks that holder's own run (the lock row names it)
  ``interrupted``, whatever stream it records under: a reconciliation records under ``erp``
  and locks ``erp-writeback``.
- Each run notes its process (host, pid, PID namespace) while it runs. :func:`outcome_now` shows a
  ``running`` run whose process is gone from this host as ``interrupted`` at once: a
  reconciliation, which holds no stream lock while it plans, is covered too.
"""

from __future__ import annotations

import datetime as dt
import json
from types import TracebackType
from typing import Any

from sqlalchemy import select, update

from omnisync.state.process import process_gone, why_taken_over
from omnisync.state.schema import runs
from omnisync.state.store import StateStore
from omnisync.stopping import Terminated

INTERRUPTED = "interrupted"
STOPPED = "stopped"
REFUSED = "refused"


class RunRecord:
    """``stopped_by``: the errors that end a run on purpose before it changed anything (an ERP
    plan above its limit, say): recorded as ``stopped``, not ``failed``. ``refused_by``: those
    that say another run holds what this one needs (a busy write-back lock): ``refused``, as a
    sync that finds its stream busy."""

    def __init__(
        self,
        store: StateStore,
        run_id: str,
        stream: str,
        kind: str,
        stopped_by: tuple[type[BaseException], ...] = (),
        refused_by: tuple[type[BaseException], ...] = (),
    ) -> None:
        self.store = store
        self.stopped_by = stopped_by
        self.refused_by = refused_by
        self.run_id = run_id
        self.stream = stream
        self.kind = kind
        self.watermark_before: dt.datetime | None = None
        self.window: tuple[dt.datetime | None, dt.datetime] | None = None
        self.watermark_after: dt.datetime | None = None
        self.counts: dict[str, Any] = {}

    @staticmethod
    def refused(store: StateStore, run_id: str, stream: str, kind: str, reason: str) -> None:
        """Record a run that found its stream busy and did nothing (not a failure)."""
        store.runs.start(run_id, stream, kind, store.watermarks.get(stream))
        store.runs.finish(run_id, REFUSED, error=reason[:2000])

    def __enter__(self) -> RunRecord:
        self.watermark_before = self.store.watermarks.get(self.stream)
        self.store.runs.start(self.run_id, self.stream, self.kind, self.watermark_before)
        holder = self.store.lease.holder(self.stream)
        with self.store.engine.begin() as connection:
            # The process, for omnisync status while the run is marked running; the outcome's
            # counts replace it.
            connection.execute(
                update(runs)
                .where(runs.c.run_id == self.run_id)
                .values(counts=json.dumps({"process": self.store.lease.owner}))
            )
            if holder is not None and holder.get("run_id") == self.run_id:
                others = connection.execute(
                    select(runs.c.run_id, runs.c.counts).where(
                        runs.c.stream == self.stream,
                        runs.c.status == "running",
                        runs.c.run_id != self.run_id,
                        # a verification holds no lock: it may well be running beside this run
                        runs.c.kind != "verify",
                    )
                ).all()
                for run_id, counts in others:  # a running run's counts name its process
                    why = why_taken_over(_process_of(counts))
                    connection.execute(
                        update(runs)
                        .where(runs.c.run_id == run_id, runs.c.status == "running")
                        .values(status=INTERRUPTED, error=f"taken over by run {self.run_id}: {why}")
                    )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        error = None if exc is None else f"{type(exc).__name__}: {exc}"[:2000]
        if exc is None:
            status = "succeeded"
        elif isinstance(exc, Terminated):  # the command line's SIGTERM: omnisync/stopping.py
            status, error = INTERRUPTED, "ended by SIGTERM (a scheduler or container stopping it)"
        elif isinstance(exc, KeyboardInterrupt):  # not a failure of the run's own
            status, error = INTERRUPTED, "stopped by Ctrl-C (SIGINT)"
        elif type(exc).__name__ == "TerminationSignal":  # Prefect's SIGTERM: a worker stopping
            status, error = INTERRUPTED, "ended by SIGTERM (its worker or container stopping)"
        elif isinstance(exc, self.refused_by):
            status = REFUSED
        else:
            status = STOPPED if isinstance(exc, self.stopped_by) else "failed"
        self.store.runs.finish(
            self.run_id,
            status,
            window=self.window,
            watermark_before=self.watermark_before,
            watermark_after=self.store.watermarks.get(self.stream) if exc is None else None,
            counts=self.counts,
            error=error,
        )


def outcome_now(run: dict[str, Any]) -> str:
    """The outcome to show for a run-log row: its status, except that a ``running`` run whose
    process is gone from this host is ``interrupted`` (it could not record its end)."""
    if run["status"] != "running":
        return str(run["status"])
    process = _process_of(run["counts"])
    return INTERRUPTED if process is not None and process_gone(process) else "running"


def _process_of(counts: object) -> str | None:
    """The process a running run's row names (its counts until it ends), if any."""
    try:
        process = json.loads(str(counts or "{}")).get("process")
    except (ValueError, AttributeError):
        return None
    return process if isinstance(process, str) else None
