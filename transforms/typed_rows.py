"""Typed customer rows to Arrow: columns built from the rows' attributes, without a dict each.

The client decodes a customer that is exactly as documented into a typed row (an object with one
attribute per API field, ``omnisync.client.records.Customer``): its integers, strings and
booleans are of their type already, its timestamps are text, and its JSON objects are the raw
JSON text the server sent (bytes-like); a drifted one also carries its unknown fields as JSON
text. Any other record (a broken one) comes as the dict it was sent as and is typed by
:func:`transforms.customers.to_table`, which gives each bad value its reason.
:func:`records_to_table` takes a chunk of both and gives one ``Converted``.

What a typed row can still hold that the schema refuses (an unparseable or zone-less timestamp,
a JSON value that is not an object, an integer past 64 bits) is found column by column, as in
``to_table``, and the row quarantined with its reason and its JSON text (``text_of``).
"""

from __future__ import annotations

import json
import operator
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from transforms.customers import (
    _LOOSE_SCHEMA,
    Converted,
    Lineage,
    Reasons,
    _convert_column,
    to_table,
)
from transforms.schema import (
    API_FIELDS,
    CUSTOMER_SCHEMA,
    JSON,
    JSON_FIELDS,
    QUARANTINE_SCHEMA,
    REQUIRED_VALUES,
    TIMESTAMP,
)

_GETTERS = tuple((name, operator.attrgetter(name)) for name in API_FIELDS)


def records_to_table(
    records: Sequence[Any], lineage: Lineage, row_type: type, text_of: Callable[[Any], str]
) -> Converted:
    """Type a chunk of records: the typed rows (of ``row_type`` or a subclass, see
    :func:`rows_to_table`) column by column, the others
    (dicts, or whatever JSON was sent in place of a record) by ``to_table``. ``text_of`` gives a
    typed row's JSON text, for quarantine. Raises SchemaDrift as ``to_table`` does, only when no
    record of the chunk is a typed row (a typed row has every documented field)."""
    rows = [r for r in records if isinstance(r, row_type)]
    if len(rows) == len(records):
        return rows_to_table(rows, lineage, row_type, text_of)
    others = [r for r in records if not isinstance(r, row_type)]
    loose = to_table(others, lineage, complete=bool(rows))
    if not rows:
        return loose
    typed = rows_to_table(rows, lineage, row_type, text_of)
    return Converted(
        pa.concat_tables([typed.table, loose.table]),
        pa.concat_tables([typed.rejected, loose.rejected]),
        typed.unknown_field_counts + loose.unknown_field_counts,
        pa.concat_arrays([typed.rejected_modified, loose.rejected_modified]),
    )


def _json_column(name: str, values: Sequence[Any], reasons: Reasons) -> pa.Array:
    """The raw JSON texts of a column as Arrow JSON: ``null`` is a null, an object is kept as
    its text, anything else is nulled with a reason for its row."""
    count = len(values)
    offsets = np.zeros(count + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, values), dtype=np.int64, count=count), out=offsets[1:])
    data = b"".join(values)
    text = pa.LargeStringArray.from_buffers(count, pa.py_buffer(offsets), pa.py_buffer(data))
    text.validate(full=True)  # UTF-8, as the server's JSON was
    is_object = pc.starts_with(text, "{")
    wrong = pc.invert(pc.or_(is_object, pc.equal(text, "null")))
    for i in pc.indices_nonzero(wrong).to_pylist():
        value = json.loads(bytes(values[i]))
        reasons[i].append(f"{name}: not a JSON object: {value!r:.60}")
    kept = pc.if_else(is_object, text, pa.scalar(None, pa.large_string()))
    return pa.ExtensionArray.from_storage(JSON, kept.cast(pa.string()))


def rows_to_table(
    rows: Sequence[Any], lineage: Lineage, row_type: type, text_of: Callable[[Any], str]
) -> Converted:
    """Type typed rows (see the module's docstring); never raises for a bad value. A row of a
    subclass of ``row_type`` may carry fields the schema does not know: ``extra_keys`` (their
    names, empty when none) and ``extra_text`` (a JSON object of them), kept in
    ``_extra_fields``."""
    count = len(rows)
    reasons: Reasons = defaultdict(list)
    columns: dict[str, Any]
    if count:
        # A column is one C-level pass over the rows: no tuple or dict is made per row.
        columns = {
            name: _json_column(name, list(map(value, rows)), reasons)
            if name in JSON_FIELDS
            else _convert_column(name, list(map(value, rows)), reasons)
            for name, value in _GETTERS
        }
    else:
        columns = {name: pa.nulls(0, CUSTOMER_SCHEMA.field(name).type) for name in API_FIELDS}
    for name in REQUIRED_VALUES:
        for i in pc.indices_nonzero(pc.is_null(columns[name])).to_pylist():
            if not any(reason.startswith(f"{name}:") for reason in reasons.get(i, ())):
                reasons[i].append(f"{name}: missing")
    columns["_run_id"] = pa.repeat(pa.scalar(lineage.run_id, pa.string()), count)
    columns["_extracted_at"] = pa.repeat(pa.scalar(lineage.extracted_at, TIMESTAMP), count)
    columns["_source"] = pa.repeat(pa.scalar(lineage.source, pa.string()), count)
    unknown: Counter[str] = Counter()
    drifted = [i for i, row in enumerate(rows) if type(row) is not row_type and row.extra_keys]
    if drifted:
        extras: list[str | None] = [None] * count
        for i in drifted:
            unknown.update(rows[i].extra_keys)
            extras[i] = rows[i].extra_text
        columns["_extra_fields"] = pa.array(extras, JSON)
    else:
        columns["_extra_fields"] = pa.nulls(count, JSON)
    columns["_dq_flags"] = pa.ListArray.from_arrays(
        pa.array(np.zeros(count + 1, dtype=np.int32)), pa.array([], pa.string())
    )
    table = pa.Table.from_pydict(columns, schema=_LOOSE_SCHEMA)
    bad = sorted(i for i, r in reasons.items() if r)
    if not bad:
        return Converted(table.cast(CUSTOMER_SCHEMA), QUARANTINE_SCHEMA.empty_table(), unknown)
    keep_rows = np.ones(count, dtype=np.bool_)
    keep_rows[bad] = False
    good = table.filter(pa.array(keep_rows)).cast(CUSTOMER_SCHEMA)
    rejected = pa.Table.from_pydict(
        {
            "_run_id": [lineage.run_id] * len(bad),
            "_extracted_at": pa.array([lineage.extracted_at] * len(bad), TIMESTAMP),
            "_source": [lineage.source] * len(bad),
            "pk": pa.array(
                [rows[i].pk if -(2**63) <= rows[i].pk < 2**63 else None for i in bad], pa.int64()
            ),
            "reasons": pa.array([reasons[i] for i in bad], pa.list_(pa.string())),
            "raw": [text_of(rows[i]) for i in bad],
        },
        schema=QUARANTINE_SCHEMA,
    )
    modified = columns["modified_date"].take(pa.array(bad, pa.int64()))
    return Converted(good, rejected, unknown, modified)
