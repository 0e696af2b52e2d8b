"""``quarantine/customers/``: raw records that could not be typed, with their reasons (G6)."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from omnisync.lake.storage import LakeStorage

DATASET = "quarantine/customers"


def write_quarantine(
    storage: LakeStorage, rejected: pa.Table, window: str, extracted_at: dt.datetime
) -> int:
    """Write one window's rejected records, replacing a previous try of the same window on the
    same day (and removing it when this try rejected nothing)."""
    day = extracted_at.astimezone(dt.UTC).strftime("%Y-%m-%d")
    target = f"{DATASET}/extracted_day={day}/part-{window}.parquet"
    if rejected.num_rows == 0:
        storage.delete(target)
        return 0
    storage.write_table(target, rejected)
    count: int = rejected.num_rows
    return count
