"""Every dataset people are told about exists from the first sync on, with its columns.

A reader given ``lake/customers`` or ``lake/customer_changes`` must get zero rows with the right
columns, not "no such file", from a lake whose first sync read nothing (an empty Omnitron, or a
window that held only quarantined records). Where a dataset has no file yet, one empty file with
the analyst schema is written where the dataset's files go; the first rows written beside it (or
a compaction) make it irrelevant, and it adds no row to any reader. ``quarantine/customers/``
does the same on its own (``omnisync.lake.quarantine``). The five ``reconciliation/<table>/``
datasets get theirs here too, before any reconciliation ran (``omnisync.lake.reconciliation``).
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from omnisync.lake.changes import DATASET as CHANGES
from omnisync.lake.changes import PARTITION, PARTITION_NOTE, with_op
from omnisync.lake.reconciliation import write_missing_tables
from omnisync.lake.snapshot import DATASET as SNAPSHOT
from omnisync.lake.snapshot import bucket_path
from omnisync.lake.storage import LakeStorage


def write_missing_datasets(storage: LakeStorage, schema: pa.Schema, now: dt.datetime) -> list[str]:
    """Give ``customers/``, ``customer_changes/`` and each ``reconciliation/<table>/`` an empty
    file when they have none (``schema``: the columns the sync writes, after the PII policy);
    returns the datasets that got one. The change log's goes into the month of ``now`` (UTC),
    the open month."""
    empty = schema.empty_table()
    month = now.astimezone(dt.UTC).strftime("%Y-%m")
    targets = {
        SNAPSHOT: bucket_path(0),
        CHANGES: f"{CHANGES}/{PARTITION}={month}/part-empty.parquet",
    }
    written = []
    for dataset, target in targets.items():
        if storage.files(dataset):
            continue
        # The change log's rows say what they record (``_op``): its empty file says it too, so
        # that every file of the dataset has the same columns.
        table = (
            empty if dataset == SNAPSHOT else with_op(empty).replace_schema_metadata(PARTITION_NOTE)
        )
        storage.write_table(target, table)
        written.append(dataset)
    return written + write_missing_tables(storage)
