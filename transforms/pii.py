"""The PII policy for analyst datasets: per column, keep, hash (sha256 with a secret salt) or drop.

Hashing is stable for a given salt, so joins on a hashed column still match across runs and
datasets. The salt is a secret: without it a hash of a phone number is easy to reverse.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Literal

import pyarrow as pa

from transforms.schema import API_FIELDS

PiiAction = Literal["keep", "hash", "drop"]
PROTECTED = frozenset({"pk", "modified_date"})
#: The columns a policy may name: the API's, and the fields the schema does not know yet.
PII_COLUMNS: tuple[str, ...] = (*API_FIELDS, "_extra_fields")


def stable_hash(value: str, salt: bytes) -> str:
    return hashlib.sha256(salt + value.encode()).hexdigest()


def apply_pii_policy(table: pa.Table, policy: Mapping[str, PiiAction], salt: bytes) -> pa.Table:
    """``table`` with each column treated as ``policy`` says (unnamed columns are kept).

    Raises ValueError for a column outside :data:`PII_COLUMNS`: a misspelt name would leave the
    column it meant in clear."""
    for name, action in policy.items():
        if name not in PII_COLUMNS:
            raise ValueError(f"the PII policy names {name!r}, which is no customer column")
        if name in PROTECTED and action != "keep":
            raise ValueError(f"{name} identifies the row and cannot be {action}ed")
        if name not in table.column_names or action == "keep":
            continue
        index = table.column_names.index(name)
        if action == "drop":
            table = table.remove_column(index)
            continue
        if not salt:
            raise ValueError(f"hashing {name} needs OMNISYNC_PII_SALT")
        values = table.column(name).cast(pa.string()).to_pylist()
        hashed = pa.array(
            [None if v is None else stable_hash(v, salt) for v in values], pa.string()
        )
        table = table.set_column(index, pa.field(name, pa.string()), hashed)
    return table
