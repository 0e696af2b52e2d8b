"""Backfill plans: a run's time range cut into windows, each extracted, staged, then merged.

A plan stays open while any of its windows is pending (not extracted) or done (extracted, its
staged rows not merged yet): the next run resumes it. Every change of a plan runs in a fenced
transaction (:func:`~omnisync.state.fence.fenced`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func, insert, select, update

from omnisync.state.fence import Fence, fenced
from omnisync.state.schema import windows


@dataclass(frozen=True)
class Window:
    lo_us: int
    hi_us: int
    status: str
    rows: int | None = None
    max_modified_us: int | None = None
    quarantined: int | None = None
    counts: dict[str, Any] | None = None


class Plans:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def save(
        self, stream: str, plan_id: str, bounds: list[tuple[int, int]], fence: Fence | None = None
    ) -> None:
        with fenced(self.engine, fence) as connection:
            for lo, hi in bounds:
                connection.execute(
                    insert(windows).values(
                        stream=stream, plan_id=plan_id, lo_us=lo, hi_us=hi, status="pending"
                    )
                )

    def open(self, stream: str) -> tuple[str, list[Window]] | None:
        """The unfinished plan of ``stream``: windows still to extract, or extracted windows
        whose staged rows are not merged yet (a previous run stopped half-way). Should several
        be open, the oldest (the lowest upper bound) comes first, whatever order the database
        returns rows in: each run then finishes the same one, and older staged versions are
        merged before newer ones."""
        with self.engine.connect() as connection:
            plan_id = connection.execute(
                select(windows.c.plan_id)
                .where(windows.c.stream == stream, windows.c.status.in_(("pending", "done")))
                .group_by(windows.c.plan_id)
                .order_by(func.max(windows.c.hi_us), windows.c.plan_id)
                .limit(1)
            ).scalar()
        if plan_id is None:
            return None
        return str(plan_id), self.windows(stream, str(plan_id))

    def windows(self, stream: str, plan_id: str) -> list[Window]:
        """Every window of one plan, in order."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(windows)
                .where(windows.c.stream == stream, windows.c.plan_id == plan_id)
                .order_by(windows.c.lo_us)
            )
            return [
                Window(
                    r.lo_us,
                    r.hi_us,
                    r.status,
                    r.rows,
                    r.max_modified_us,
                    r.quarantined,
                    json.loads(r.counts) if r.counts else None,
                )
                for r in rows
            ]

    def finished(self, stream: str, plan_ids: list[str]) -> set[str]:
        """Those of ``plan_ids`` the store knows and that are over (merged or abandoned): their
        staged files belong to no run. A plan it does not know is not among them."""
        if not plan_ids:
            return set()
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(windows.c.plan_id, windows.c.status).where(
                    windows.c.stream == stream, windows.c.plan_id.in_(plan_ids)
                )
            ).all()
        known = {str(r.plan_id) for r in rows}
        open_ = {str(r.plan_id) for r in rows if r.status in ("pending", "done")}
        return known - open_

    def close(self, stream: str, plan_id: str, fence: Fence | None = None) -> None:
        """Every window's rows are merged into the snapshot: the plan is finished."""
        with fenced(self.engine, fence) as connection:
            connection.execute(
                update(windows)
                .where(windows.c.stream == stream, windows.c.plan_id == plan_id)
                .values(status="merged")
            )

    def complete_window(
        self,
        stream: str,
        plan_id: str,
        lo_us: int,
        rows: int,
        max_modified_us: int | None,
        quarantined: int = 0,
        counts: dict[str, Any] | None = None,
        fence: Fence | None = None,
    ) -> None:
        self._set_window(
            stream,
            plan_id,
            lo_us,
            fence,
            status="done",
            rows=rows,
            max_modified_us=max_modified_us,
            quarantined=quarantined,
            counts=json.dumps(counts or {}, sort_keys=True),
        )

    def reopen_window(
        self, stream: str, plan_id: str, lo_us: int, fence: Fence | None = None
    ) -> None:
        """A window read before is to be read again (its staged rows cannot be read): pending,
        with nothing counted, as it was planned."""
        self._set_window(
            stream,
            plan_id,
            lo_us,
            fence,
            status="pending",
            rows=None,
            max_modified_us=None,
            quarantined=None,
            counts=None,
        )

    def _set_window(
        self, stream: str, plan_id: str, lo_us: int, fence: Fence | None, **values: Any
    ) -> None:
        with fenced(self.engine, fence) as connection:
            connection.execute(
                update(windows)
                .where(
                    windows.c.stream == stream,
                    windows.c.plan_id == plan_id,
                    windows.c.lo_us == lo_us,
                )
                .values(**values)
            )

    def abandon(self, stream: str, plan_id: str | None = None, fence: Fence | None = None) -> None:
        """Give up the open plan(s) of ``stream`` (a full refresh, or a plan judged systemic-
        ally bad): the next run plans again from the watermark, which never moved for them."""
        condition = [windows.c.stream == stream, windows.c.status.in_(("pending", "done"))]
        if plan_id is not None:
            condition.append(windows.c.plan_id == plan_id)
        with fenced(self.engine, fence) as connection:
            connection.execute(update(windows).where(*condition).values(status="abandoned"))
