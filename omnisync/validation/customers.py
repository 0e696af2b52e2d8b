"""Validating a batch of typed customers (G6): flag, quarantine, or fail the batch.

* A row-level *warning* (invalid email, birth date in the future, unknown choice, ...) keeps the
  row in ``customers/`` and adds the expectation's name to its ``_dq_flags``: the customer is
  still a customer as Omnitron holds it, and source values are never rewritten.
* A row-level *critical* failure moves the row to quarantine with the expectation's name.
* A batch-level *critical* failure (a documented column gone, a wrong type, a duplicate
  (channel, channel_code)) or a quarantined share above ``max_quarantine_share`` fails the batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson
import pyarrow as pa

from omnisync.validation.runner import SuiteResult, Validator
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


def _flags(result: SuiteResult, existing: list[list[str]]) -> list[list[str]]:
    flags = [list(f or []) for f in existing]
    for name, (severity, rows) in result.row_failures.items():
        if severity != "critical":
            for row in rows:
                if name not in flags[row]:
                    flags[row].append(name)
    return flags


def validate_customers(
    validator: Validator,
    table: pa.Table,
    run_name: str,
    max_quarantine_share: float = 0.05,
    already_rejected: int = 0,
) -> CustomerValidation:
    """Validate typed customers; ``already_rejected`` counts rows the typing step quarantined."""
    if table.num_rows == 0:
        return CustomerValidation(table, QUARANTINE_SCHEMA.empty_table())
    result = validator.validate("customers", validation_frame(table), run_name)
    quarantine_rows: dict[int, list[str]] = {}
    for name, (severity, rows) in result.row_failures.items():
        if severity == "critical":
            for row in rows:
                quarantine_rows.setdefault(row, []).append(name)
    flags = _flags(result, table.column("_dq_flags").to_pylist())
    flagged = sum(1 for f in flags if f)
    table = table.set_column(
        table.schema.get_field_index("_dq_flags"),
        table.schema.field("_dq_flags"),
        pa.array(flags, pa.list_(pa.string())),
    )
    keep = pa.array([i not in quarantine_rows for i in range(table.num_rows)])
    good = table.filter(keep)
    quarantined = _quarantine_table(table, quarantine_rows)
    failures = list(result.critical)
    total = table.num_rows + already_rejected
    share = (len(quarantine_rows) + already_rejected) / total if total else 0.0
    if share > max_quarantine_share:
        failures.append(
            f"quarantined share {share:.1%} is above the limit of "
            f"{max_quarantine_share:.1%} (OMNISYNC_MAX_QUARANTINE_SHARE)"
        )
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
