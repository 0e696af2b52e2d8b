"""``reconciliation/<table>/``: the ERP reconciliation's five tables, each its own dataset.

Each run writes one file per table, ``reconciliation/<table>/run=<id>/part.parquet`` (a hive
partition ``run``), so ``lake/reconciliation/outcomes`` is one table across runs, with one
schema, in every reader. Five different tables in one folder would be read as a wrong union by
pandas and refused by Polars and DuckDB.

Each table's schema is defined once (``transforms.erp.tables``) and used both for a run's file
(which is cast to it, so a table that drifted fails here rather than in a reader) and for the empty
file a dataset gets when it has none (:func:`write_missing_tables`, from the first sync on): the
empty file and every run's file share one schema, so a reader's union never breaks. The empty
file sits in ``run=none`` and adds no row.
"""

from __future__ import annotations

import pyarrow as pa

from omnisync.lake.storage import LakeStorage
from transforms.erp.tables import (
    CONFLICT_SCHEMA,
    ERP_ROW_SCHEMA,
    OUTCOMES_SCHEMA,
    PLAN_SCHEMA,
    UNKNOWN_SCHEMA,
)

DATASET = "reconciliation"
#: each table's name (its dataset's folder) and schema
TABLES: dict[str, pa.Schema] = {
    "plan": PLAN_SCHEMA,
    "conflicts": CONFLICT_SCHEMA,
    "unknown_in_erp": UNKNOWN_SCHEMA,
    "erp_rows": ERP_ROW_SCHEMA,
    "outcomes": OUTCOMES_SCHEMA,
}
#: the partition of a dataset's empty file: no run wrote it
NO_RUN = "none"


def table_dataset(table: str) -> str:
    """The lake path of one table's dataset (``reconciliation/<table>``)."""
    if table not in TABLES:
        raise ValueError(f"no reconciliation table {table!r}; the tables: {', '.join(TABLES)}")
    return f"{DATASET}/{table}"


def table_path(table: str, run_id: str) -> str:
    """The lake path of one run's file of ``table``."""
    return f"{table_dataset(table)}/run={run_id}/part.parquet"


def write_run_table(storage: LakeStorage, table: str, run_id: str, rows: pa.Table) -> str:
    """Write one run's ``rows`` of ``table``, cast to the table's schema; returns the lake path.
    Raises (pyarrow) when the rows' columns are not the table's."""
    path = table_path(table, run_id)
    storage.write_table(path, rows.cast(TABLES[table]))
    return path


def write_missing_tables(storage: LakeStorage) -> list[str]:
    """Give each reconciliation dataset without a file an empty one with its schema; returns the
    datasets that got one."""
    written = []
    for table, schema in TABLES.items():
        # The empty file is kept once runs wrote theirs: after the first sync, one look per table.
        if storage.exists(table_path(table, NO_RUN)) or storage.files(table_dataset(table)):
            continue
        storage.write_table(table_path(table, NO_RUN), schema.empty_table())
        written.append(table_dataset(table))
    return written
