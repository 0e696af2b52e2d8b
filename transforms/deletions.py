"""Change-log rows that record deletions: the pk, ``_op = 'delete'``, and when it was detected."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from transforms.schema import CUSTOMER_SCHEMA


def deletion_rows(pks: list[int], detected: dt.datetime, run_id: str, source: str) -> pa.Table:
    """One row per deleted pk, shaped like a customer version (every field but the pk, the
    lineage and ``modified_date`` null), with ``_op = 'delete'``. ``modified_date`` and
    ``_extracted_at`` are ``detected``: Omnitron keeps no trace of a deletion to date it by."""
    n = len(pks)
    given = {
        "pk": pa.array(pks, pa.int64()),
        "modified_date": pa.array([detected] * n, CUSTOMER_SCHEMA.field("modified_date").type),
        "_run_id": pa.array([run_id] * n, pa.string()),
        "_extracted_at": pa.array([detected] * n, CUSTOMER_SCHEMA.field("_extracted_at").type),
        "_source": pa.array([source] * n, pa.string()),
    }
    columns = [given.get(f.name, pa.nulls(n, f.type)) for f in CUSTOMER_SCHEMA]
    table = pa.Table.from_arrays(columns, schema=CUSTOMER_SCHEMA)
    return table.append_column("_op", pa.array(["delete"] * n, pa.string()))
