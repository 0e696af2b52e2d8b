"""What a window does to its rows around validation, column-wise (no Python list per row).

Validation sees each customer's latest version in the window (:func:`latest_versions`); its
flags are then copied onto every version of that customer (:func:`with_latest_flags`); and the
raw JSON of what is quarantined gets the PII policy like the lake's rows (:func:`policy_applied`,
G8). ``window.py`` runs these in order.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from omnisync.settings import Settings
from transforms.pii import apply_pii_policy_to_raw
from transforms.versions import latest_per_pk


def policy_applied(quarantine: pa.Table, settings: Settings) -> pa.Table:
    """The quarantine rows with the PII policy applied to their raw JSON: what could not be
    typed or was refused by validation is no reason to keep an email in clear (G8)."""
    if quarantine.num_rows == 0 or all(a == "keep" for a in settings.pii_policy.values()):
        return quarantine
    salt = settings.pii_salt.get_secret_value().encode()
    raw = [
        apply_pii_policy_to_raw(text, settings.pii_policy, salt)
        for text in quarantine.column("raw").to_pylist()
    ]
    index = quarantine.schema.get_field_index("raw")
    return quarantine.set_column(
        index, quarantine.schema.field(index), pa.array(raw, quarantine.schema.field(index).type)
    )


def latest_versions(table: pa.Table) -> pa.Table:
    """Each customer's latest version in the window, for validation. A backfill's window holds
    one version per customer: then the window itself, not a sorted copy of it (a copy of the
    window's rows, held while GX runs). Validation reads no order: its verdicts go back by pk."""
    if pc.count_distinct(table.column("pk"), mode="all").as_py() == table.num_rows:
        return table
    return latest_per_pk(table)


def pks_of(table: pa.Table) -> set[int]:
    return set(table.column("pk").to_pylist()) if table.num_rows else set()


def with_latest_flags(table: pa.Table, latest: pa.Table) -> pa.Table:
    """Copy the flags of each pk's latest version (``latest``, as validated) onto every version
    of it in ``table``; versions of unflagged pks get none. Column-wise: a Python list per row
    would cost CPU on every version."""
    flags = latest.column("_dq_flags")
    flagged = latest.filter(pc.greater(pc.list_value_length(flags), 0))
    if not flagged.num_rows:
        return table
    index = table.schema.get_field_index("_dq_flags")
    field = table.schema.field(index)
    at = pc.index_in(table.column("pk"), value_set=flagged.column("pk"))
    copied = pc.coalesce(flagged.column("_dq_flags").take(at), pa.scalar([], field.type))
    return table.set_column(index, field, copied)
