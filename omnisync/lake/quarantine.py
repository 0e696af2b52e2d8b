"""``quarantine/customers/``: raw records that could not be typed, with their reasons (G6)."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from omnisync.lake.storage import LakeStorage
from transforms.schema import QUARANTINE_SCHEMA

DATASET = "quarantine/customers"


def write_quarantine(
    storage: LakeStorage, rejected: pa.Table, window: str, extracted_at: dt.datetime
) -> int:
    """Write one window's rejected records, replacing a previous try of the same window on the
    same day (and removing it when this try rejected nothing).

    A lake whose dataset would have no file at all gets this window's empty file, with the
    schema: the path people are told to read exists from the first run on, also on a healthy
    lake, and every reader gives zero rows with the right columns instead of an error."""
    day = extracted_at.astimezone(dt.UTC).strftime("%Y-%m-%d")
    target = f"{DATASET}/extracted_day={day}/part-{window}.parquet"
    if rejected.num_rows == 0:
        storage.delete(target)
        if not storage.files(DATASET):
            storage.write_table(target, QUARANTINE_SCHEMA.empty_table())
        return 0
    storage.write_table(target, rejected)
    count: int = rejected.num_rows
    return count
