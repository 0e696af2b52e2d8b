"""Watermarks: per stream, the newest modification time every change up to which is in the lake.
A watermark only moves forward, in a fenced transaction (:func:`~omnisync.state.fence.fenced`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update

from omnisync.state.fence import Fence, fenced
from omnisync.state.schema import watermarks
from omnisync.state.times import from_us, iso, now_us, to_us


class Watermarks:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, stream: str) -> dt.datetime | None:
        with self.engine.connect() as connection:
            value = connection.execute(
                select(watermarks.c.value_us).where(watermarks.c.stream == stream)
            ).scalar()
        return None if value is None else from_us(int(value))

    def set(self, stream: str, value: dt.datetime, run_id: str, fence: Fence | None = None) -> None:
        """Move the watermark (only forward: a late writer can never move it back)."""
        us = to_us(value)
        row = {"value_us": us, "value_iso": iso(value), "run_id": run_id, "updated_us": now_us()}
        with fenced(self.engine, fence) as connection:
            current = connection.execute(
                select(watermarks.c.value_us).where(watermarks.c.stream == stream).with_for_update()
            ).scalar()
            if current is None:
                connection.execute(insert(watermarks).values(stream=stream, **row))
            elif us > int(current):
                connection.execute(
                    update(watermarks).where(watermarks.c.stream == stream).values(**row)
                )

    def reset(self, stream: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(delete(watermarks).where(watermarks.c.stream == stream))

    def all(self) -> list[dict[str, Any]]:
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(select(watermarks))]
