"""The PII policy for analyst datasets: per column, keep, hash (sha256 with a secret salt) or drop.

A dropped column stays in the schema with every value null: a reader's query that names it, over
files written before or after, runs the same (its values are simply gone).

Hashing is stable for a given salt, so joins on a hashed column still match across runs and
datasets. The salt is a secret: without it a hash of a phone number is easy to reverse.

The policy holds for every dataset of the lake, quarantine included: a record quarantined
because it could not be typed, or because validation refused it, keeps its raw JSON there, and
:func:`apply_pii_policy_to_raw` treats that JSON's named keys as the columns are treated (the
same salted hash of a string value, or the key removed), every other value written back as the
server sent it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Literal

import pyarrow as pa

from transforms.exact_json import dumps_exact, loads_verbatim
from transforms.schema import API_FIELDS

PiiAction = Literal["keep", "hash", "drop"]
PROTECTED = frozenset({"pk", "modified_date"})
#: The columns a policy may name: the API's, and the fields the schema does not know yet.
PII_COLUMNS: tuple[str, ...] = (*API_FIELDS, "_extra_fields")


def stable_hash(value: str, salt: bytes) -> str:
    return hashlib.sha256(salt + value.encode()).hexdigest()


def _nulls(kind: pa.DataType, rows: int) -> pa.Array:
    if isinstance(kind, pa.BaseExtensionType):  # JSON: nulls of its storage, typed again
        return pa.ExtensionArray.from_storage(kind, pa.nulls(rows, kind.storage_type))
    return pa.nulls(rows, kind)


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
            field = table.schema.field(index).with_nullable(True)
            table = table.set_column(index, field, _nulls(field.type, table.num_rows))
            continue
        if not salt:
            raise ValueError(f"hashing {name} needs OMNISYNC_PII_SALT")
        values = table.column(name).cast(pa.string()).to_pylist()
        hashed = pa.array(
            [None if v is None else stable_hash(v, salt) for v in values], pa.string()
        )
        table = table.set_column(index, pa.field(name, pa.string()), hashed)
    return table


def apply_pii_policy_to_raw(
    raw: str | None, policy: Mapping[str, PiiAction], salt: bytes
) -> str | None:
    """One quarantined record's raw JSON with the policy applied to its top-level keys: a key a
    policy hashes holds the hash of its value (a string's text, any other value's JSON text), a
    key it drops is removed, and ``_extra_fields`` stands for every key the schema does not
    know. Other values keep their exact JSON text.

    A record that is not a JSON object (or not JSON), under a policy that hashes or drops
    anything, becomes ``{"_hashed_record": <hash of its whole text>}`` (``null`` when nothing
    is hashed, so there is no salt): no key can be told apart in it, and it may hold any of
    them."""
    acting = {name: action for name, action in policy.items() if action != "keep"}
    if raw is None or not acting:
        return raw
    if "hash" in acting.values() and not salt:
        raise ValueError("hashing a quarantined record needs OMNISYNC_PII_SALT")
    try:
        record = loads_verbatim(raw)
    except ValueError:
        record = None
    if not isinstance(record, dict):
        return dumps_exact({"_hashed_record": stable_hash(raw, salt)}) if salt else "null"
    known = set(API_FIELDS)
    treated: dict[str, object] = {}
    for key, value in record.items():
        # Lineage columns (``_run_id``, ``_source``...) of a typed row are no customer field.
        extra = key not in known and not key.startswith("_")
        action = acting.get(key) or (acting.get("_extra_fields") if extra else None)
        if action == "drop":
            continue
        if action == "hash" and value is not None:
            text = value if isinstance(value, str) else dumps_exact(value)
            value = stable_hash(text, salt)
        treated[key] = value
    return dumps_exact(treated)
