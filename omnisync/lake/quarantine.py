"""``quarantine/customers/``: raw records that could not be typed, with their reasons (G6)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from omnisync.lake.storage import LakeStorage

DATASET = "quarantine/customers"


def write_quarantine(storage: LakeStorage, rejected: pa.Table, window: str) -> int:
    """Write one window's rejected records (replacing a previous try of the same window)."""
    if rejected.num_rows == 0:
        return 0
    day = pc.strftime(rejected.column("_extracted_at")[0], format="%Y-%m-%d").as_py()
    storage.write_table(f"{DATASET}/extracted_day={day}/part-{window}.parquet", rejected)
    count: int = rejected.num_rows
    return count
