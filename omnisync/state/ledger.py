"""The write-back ledger: every PATCH of an ERP code attempted, with its outcome, in order."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, insert, select

from omnisync.state.schema import ledger
from omnisync.state.times import now_us


class Ledger:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(self, **values: Any) -> None:
        with self.engine.begin() as connection:
            connection.execute(insert(ledger).values(attempt_us=now_us(), **values))

    def rows(self, run_id: str | None = None, outcome: str | None = None) -> list[dict[str, Any]]:
        """Ledger rows in attempt order, for one run and/or one outcome (filtered in SQL)."""
        query = select(ledger).order_by(ledger.c.id)
        if run_id:
            query = query.where(ledger.c.run_id == run_id)
        if outcome:
            query = query.where(ledger.c.outcome == outcome)
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]
