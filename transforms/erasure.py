"""Erasing a customer's personal values from rows already written (G9, ``OMNISYNC_ERASE_DELETED``).

Pure: a table and the pks to erase in, the same table out, with the named columns null in those
rows and every other row and column as it was (the same values, the same types). A quarantined
record's raw JSON gets the same treatment by key (``_extra_fields`` stands for every key the
schema does not know), and its reasons lose the values they quote.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

import pyarrow as pa
import pyarrow.compute as pc

from transforms.exact_json import dumps_exact, loads_verbatim
from transforms.schema import API_FIELDS

#: a reason is ``<field>: <what is wrong>: <the value>``; the value is what must go
_REASON_PARTS = 2


def rows_of(table: pa.Table, pks: Iterable[int], column: str = "pk") -> pa.Array:
    """A boolean mask: the rows of ``table`` whose ``column`` is one of ``pks`` (null: no)."""
    wanted = pa.array(sorted(set(pks)), pa.int64())
    return pc.fill_null(pc.is_in(table.column(column), value_set=wanted), False).combine_chunks()


def _null_where(values: pa.ChunkedArray, mask: pa.Array) -> pa.Array:
    values = values.combine_chunks()
    if isinstance(values.type, pa.BaseExtensionType):
        # if_else knows no extension type (JSON): erase in its storage, then type it again
        storage = pc.if_else(mask, pa.scalar(None, values.storage.type), values.storage)
        return pa.ExtensionArray.from_storage(values.type, storage)
    return pc.if_else(mask, pa.scalar(None, values.type), values)


def erase_columns(table: pa.Table, mask: pa.Array, columns: Collection[str]) -> pa.Table:
    """``table`` with ``columns`` (those it has) null in the rows of ``mask``."""
    for name in columns:
        if name in table.column_names:
            index = table.column_names.index(name)
            erased = _null_where(table.column(name), mask)
            table = table.set_column(index, table.schema.field(index), erased)
    return table


def erase_raw(raw: str | None, columns: Collection[str]) -> str | None:
    """One quarantined record's JSON with the keys of ``columns`` set to null (``_extra_fields``:
    every key the schema does not know, lineage keys aside); other values keep their exact text.
    A record that is not a JSON object cannot be told apart by key: it becomes ``null``."""
    if raw is None:
        return None
    try:
        record = loads_verbatim(raw)
    except ValueError:
        return "null"
    if not isinstance(record, dict):
        return "null"
    known = set(API_FIELDS)
    unknown = "_extra_fields" in columns
    for key in record:
        extra = key not in known and not key.startswith("_")
        if key in columns or (unknown and extra):
            record[key] = None
    return dumps_exact(record)


def cut_reasons(reasons: list[str] | None) -> list[str] | None:
    """Reasons without the values they quote: ``email: not a string`` (was ``...: 42``)."""
    if reasons is None:
        return None
    return [":".join(reason.split(":")[:_REASON_PARTS]) for reason in reasons]


def erase_quarantine(table: pa.Table, mask: pa.Array, columns: Collection[str]) -> pa.Table:
    """Quarantined rows: ``raw`` erased by key and ``reasons`` cut in the rows of ``mask``."""
    chosen = mask.to_pylist()
    raws = table.column("raw").combine_chunks()
    storage = raws.storage if isinstance(raws, pa.ExtensionArray) else raws
    texts = storage.to_pylist()
    reasons = table.column("reasons").to_pylist()
    new_raw = [erase_raw(t, columns) if c else t for t, c in zip(texts, chosen, strict=True)]
    new_reasons = [cut_reasons(r) if c else r for r, c in zip(reasons, chosen, strict=True)]
    raw_array: pa.Array = pa.array(new_raw, storage.type)
    if isinstance(raws, pa.ExtensionArray):
        raw_array = pa.ExtensionArray.from_storage(raws.type, raw_array)
    index = table.column_names.index("raw")
    table = table.set_column(index, table.schema.field(index), raw_array)
    index = table.column_names.index("reasons")
    reasons_type = table.schema.field(index).type
    return table.set_column(index, table.schema.field(index), pa.array(new_reasons, reasons_type))
