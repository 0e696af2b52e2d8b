"""The run record: one place writes a run's start and its outcome, whatever ends it, for syncs
and ERP reconciliations alike.

``RunRecord`` is entered as soon as a run holds its stream, before planning: a run that fails
while planning, extracting, finishing, building Data Docs or writing its artifact is recorded as
``failed`` with its error, and one that completes as ``succeeded`` with its counts. It is never
left ``running`` by an exception. A run that found its stream busy is recorded as ``refused``.
"""

from __future__ import annotations

import datetime as dt
from types import TracebackType
from typing import Any

from omnisync.state.store import StateStore


class RunRecord:
    def __init__(self, store: StateStore, run_id: str, stream: str, kind: str) -> None:
        self.store = store
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
        store.start_run(run_id, stream, kind, store.watermark(stream))
        store.finish_run(run_id, "refused", error=reason[:2000])

    def __enter__(self) -> RunRecord:
        self.watermark_before = self.store.watermark(self.stream)
        self.store.start_run(self.run_id, self.stream, self.kind, self.watermark_before)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.store.finish_run(
            self.run_id,
            "succeeded" if exc is None else "failed",
            window=self.window,
            watermark_before=self.watermark_before,
            watermark_after=self.store.watermark(self.stream) if exc is None else None,
            counts=self.counts,
            error=None if exc is None else f"{type(exc).__name__}: {exc}"[:2000],
        )
