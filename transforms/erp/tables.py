"""The match keys, and the schema of every table reconciliation reads or writes: each is defined
once, here, and used both for a run's files and for the lake's datasets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

MatchKey = Literal["pk", "channel_code", "email", "phone"]
KEY_COLUMNS: dict[str, tuple[str, ...]] = {
    "pk": ("pk",),
    "channel_code": ("channel", "channel_code"),
    "email": ("email",),
    "phone": ("phone_number",),
}
CUSTOMER_COLUMNS = [
    "pk",
    "channel",
    "channel_code",
    "email",
    "phone_number",
    "erp_code",
    "modified_date",
]

PLAN_SCHEMA = pa.schema(
    [
        pa.field("pk", pa.int64(), nullable=False),
        pa.field("erp_code", pa.string(), nullable=False),
        pa.field("previous_erp_code", pa.string()),
        pa.field("action", pa.string(), nullable=False),
        pa.field("based_on_modified", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("match_key", pa.string(), nullable=False),
        # The normalised key the customer matched by, so the write-back can refuse a customer
        # whose key changed in Omnitron since the plan (None for clears: nothing matched).
        pa.field("match_value", pa.string()),
    ]
)
ERP_ROW_OUTCOMES = ("planned", "already_right", "conflict", "unknown_customer", "invalid")
ERP_ROW_SCHEMA = pa.schema(
    [
        pa.field("row", pa.int64(), nullable=False),  # 0-based position in the ERP input
        pa.field("erp_code", pa.string()),
        pa.field("key", pa.string()),
        pa.field("pk", pa.int64()),
        pa.field("outcome", pa.string(), nullable=False),
        pa.field("reason", pa.string()),
    ]
)
UNKNOWN_SCHEMA = pa.schema(
    [
        pa.field("pk", pa.int64()),
        pa.field("erp_code", pa.string()),
        pa.field("modified_date", pa.timestamp("us", tz="UTC")),
    ]
)
CONFLICT_SCHEMA = pa.schema(
    [
        pa.field("kind", pa.string(), nullable=False),
        pa.field("erp_code", pa.string()),
        pa.field("key", pa.string()),
        pa.field("pks", pa.list_(pa.int64())),
        pa.field("detail", pa.string(), nullable=False),
    ]
)

#: what became of each planned change (``omnisync.erp.outcomes``)
OUTCOMES_SCHEMA = pa.schema(
    [
        pa.field("_run_id", pa.string()),
        pa.field("pk", pa.int64()),
        pa.field("erp_code", pa.string()),
        pa.field("previous_erp_code", pa.string()),
        pa.field("based_on_modified", pa.timestamp("us", tz="UTC")),
        pa.field("outcome", pa.string()),
        pa.field("status_code", pa.int64()),
        pa.field("detail", pa.string()),
        pa.field("lost_answers", pa.int64()),
        pa.field("seen_modified", pa.timestamp("us", tz="UTC")),
        pa.field("seen_erp_code", pa.string()),
    ]
)


@dataclass
class Reconciliation:
    plan: pa.Table
    conflicts: pa.Table
    unknown_in_erp: pa.Table
    unmatched_erp_rows: int
    unchanged: int
    matched: int
    erp_rows: pa.Table  # one row per ERP input row with its outcome (ERP_ROW_SCHEMA)

    def row_counts(self) -> dict[str, int]:
        """How many ERP rows ended in each outcome; they add up to the input's rows."""
        outcomes = self.erp_rows.column("outcome").to_pylist()
        return {name: outcomes.count(name) for name in ERP_ROW_OUTCOMES}
