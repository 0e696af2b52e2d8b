"""Validating a batch of typed customers (G6): flag, quarantine, or fail the batch.

* A row-level *warning* (invalid email, birth date in the future, unknown choice, ...) keeps the
  row in ``customers/`` and adds the expectation's name to its ``_dq_flags``: the customer is
  still a customer as Omnitron holds it, and source values are never rewritten.
* A row-level *critical* failure moves the row to quarantine with the expectation's name.
* A batch-level *critical* failure (a documented column gone, a wrong type, a duplicate
  (channel, channel_code)) fails the batch.

Whether too large a share of rows was quarantined is not judged here, per batch: one bad record
among a dozen changes is not a systemic problem. The sync judges it over a whole run, once it has
read a meaningful number of rows (``omnisync/sync/finish.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from omnisync.validation.runner import Validator
from omnisync.validation.suites import SuiteResult
from transforms.quality import validation_frame
from transforms.schema import QUARANTINE_SCHEMA, TIMESTAMP


@dataclass
class CustomerValidation:
    good: pa.Table
    quarantined: pa.Table
    warnings: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    flagged_rows: int = 0
    docs_index: str | None = None

    @property
    def passed(self) -> bool:
        return not self.failures


def _flags(result: SuiteResult, existing: pa.ChunkedArray) -> tuple[pa.Array, int]:
    """``_dq_flags`` with the warnings' names added, and how many rows carry a flag. Built from
    offsets: most rows have none, and a Python list per row would cost CPU on every row."""
    added: dict[int, list[str]] = {}
    for name, (severity, rows) in result.row_failures.items():
        if severity != "critical":
            for row in rows:
                added.setdefault(row, []).append(name)
    before = existing.to_pylist() if pc.max(pc.list_value_length(existing)).as_py() else None
    if before is not None:  # rows flagged already: merge them one by one
        for row, names in added.items():
            added[row] = [*before[row], *(n for n in names if n not in before[row])]
        for row, names in enumerate(before):
            if names and row not in added:
                added[row] = list(names)
    lengths = np.zeros(len(existing), dtype=np.int32)
    order = sorted(added)
    lengths[order] = [len(added[row]) for row in order]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    values = pa.array([name for row in order for name in added[row]], pa.string())
    return pa.ListArray.from_arrays(pa.array(offsets), values), len(order)


def validate_customers(validator: Validator, table: pa.Table, run_name: str) -> CustomerValidation:
    """Validate typed customers: which to flag, which to quarantine, and batch-level failures."""
    if table.num_rows == 0:
        return CustomerValidation(table, QUARANTINE_SCHEMA.empty_table())
    frame = validation_frame(table, validator.columns_read("customers"))
    result = validator.validate("customers", frame, run_name)
    del frame  # not held while the result is applied
    quarantine_rows: dict[int, list[str]] = {}
    for name, (severity, rows) in result.row_failures.items():
        if severity == "critical":
            for row in rows:
                quarantine_rows.setdefault(row, []).append(name)
    flags, flagged = _flags(result, table.column("_dq_flags"))
    table = table.set_column(
        table.schema.get_field_index("_dq_flags"), table.schema.field("_dq_flags"), flags
    )
    keep = np.ones(table.num_rows, dtype=np.bool_)
    keep[list(quarantine_rows)] = False
    good = table.filter(pa.array(keep)) if quarantine_rows else table
    quarantined = _quarantine_table(table, quarantine_rows)
    failures = list(result.critical)
    return CustomerValidation(
        good, quarantined, result.warnings, failures, flagged, result.docs_index
    )


def _quarantine_table(table: pa.Table, rows: dict[int, list[str]]) -> pa.Table:
    if not rows:
        return QUARANTINE_SCHEMA.empty_table()
    picked = table.take(pa.array(sorted(rows)))
    records = picked.to_pylist()
    return pa.Table.from_pydict(
        {
            "_run_id": picked.column("_run_id"),
            "_extracted_at": picked.column("_extracted_at").cast(TIMESTAMP),
            "_source": picked.column("_source"),
            "pk": picked.column("pk"),
            "reasons": pa.array([rows[i] for i in sorted(rows)], pa.list_(pa.string())),
            "raw": [orjson.dumps(r, default=str).decode() for r in records],
        },
        schema=QUARANTINE_SCHEMA,
    )
