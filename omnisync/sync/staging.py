"""Staged windows: where a plan's windows leave their rows until the plan is finished.

Each window of a plan writes its rows to one file under ``_staging/customers/plan=<id>/``,
beside the datasets and never inside one (readers never see it), with one row group per
snapshot bucket and the buckets listed in the file's metadata; the plan's finish
(``finish.py``, or ``rebuild.py`` for a full refresh) reads each bucket's groups from every
window's file, so a backfill rewrites each bucket once. A retried window replaces its file.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
import pyarrow as pa

from omnisync.lake import LakeStorage, Snapshot

log = logging.getLogger("omnisync.sync")

STAGING = "_staging/customers"  # beside the datasets, never inside one: readers never see it
BUCKETS_KEY = b"omnisync.buckets"


def staging_dir(plan_id: str) -> str:
    return f"{STAGING}/plan={plan_id}"


def stage_window(
    storage: LakeStorage, snapshot: Snapshot, plan_id: str, name: str, rows: pa.Table
) -> None:
    """Stage a window's rows for the merge: one file, one row group per snapshot bucket, the
    buckets listed in the file's metadata (64 files per chunk before: 640 per 100k rows)."""
    groups = list(snapshot.split(rows))
    if not groups:
        storage.delete(f"{staging_dir(plan_id)}/{name}.parquet")
        return
    metadata = {**(rows.schema.metadata or {}), BUCKETS_KEY: orjson.dumps([b for b, _ in groups])}
    storage.write_row_groups(
        f"{staging_dir(plan_id)}/{name}.parquet",
        [part.replace_schema_metadata(metadata) for _, part in groups],
        scratch=True,
    )
    log.debug("staged window %s: %d rows in %d bucket(s)", name, rows.num_rows, len(groups))


def staged_buckets(file: Any) -> list[int]:
    """The bucket of each row group of a staged window file (``stage_window``)."""
    buckets: list[int] = orjson.loads(file.schema_arrow.metadata[BUCKETS_KEY])
    return buckets


def without_staging_metadata(rows: pa.Table) -> pa.Table:
    metadata = {k: v for k, v in (rows.schema.metadata or {}).items() if k != BUCKETS_KEY}
    return rows.replace_schema_metadata(metadata or None)
