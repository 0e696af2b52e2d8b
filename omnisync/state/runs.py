"""The run log: one row per run, written when it starts and when it ends
(:class:`~omnisync.state.record.RunRecord` decides what is written)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import Engine, insert, select, update

from omnisync.state.schema import runs
from omnisync.state.times import iso, now_us


class Runs:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def start(
        self, run_id: str, stream: str, kind: str, watermark_before: dt.datetime | None
    ) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                insert(runs).values(
                    run_id=run_id,
                    stream=stream,
                    kind=kind,
                    started_us=now_us(),
                    status="running",
                    watermark_before_iso=iso(watermark_before),
                )
            )

    def finish(
        self,
        run_id: str,
        status: str,
        *,
        window: tuple[Any, Any] | None = None,
        watermark_before: dt.datetime | None = None,
        watermark_after: dt.datetime | None = None,
        counts: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        values: dict[str, Any] = {
            "status": status,
            "ended_us": now_us(),
            "error": error,
            "counts": json.dumps(counts or {}, default=str),
            "watermark_after_iso": iso(watermark_after),
        }
        if watermark_before is not None:
            values["watermark_before_iso"] = iso(watermark_before)
        if window is not None:
            values["window_lo_iso"], values["window_hi_iso"] = iso(window[0]), iso(window[1])
        with self.engine.begin() as connection:
            connection.execute(update(runs).where(runs.c.run_id == run_id).values(**values))

    def succeeded_counts(self, stream: str, kinds: tuple[str, ...], limit: int) -> list[str]:
        """The ``counts`` (JSON text) of ``stream``'s latest ``limit`` succeeded runs of
        ``kinds``, newest first."""
        query = (
            select(runs.c.counts)
            .where(runs.c.stream == stream, runs.c.kind.in_(kinds), runs.c.status == "succeeded")
            .order_by(runs.c.started_us.desc())
            .limit(limit)
        )
        with self.engine.connect() as connection:
            return [text or "{}" for (text,) in connection.execute(query)]

    def recent(self, stream: str | None = None, limit: int = 10) -> list[dict[str, Any]]:
        query = select(runs).order_by(runs.c.started_us.desc()).limit(limit)
        if stream:
            query = query.where(runs.c.stream == stream)
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]
