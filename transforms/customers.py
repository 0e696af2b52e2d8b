"""API customer records to a typed Arrow table, with per-record reasons for what cannot be typed.

``to_table`` never raises for a bad record: a record without a pk, with an unparseable
``modified_date`` or with a value of the wrong type is returned in ``Rejected`` with its reasons,
for quarantine (G6). It raises ``SchemaDrift`` only for a systemic problem: a documented field
missing from every record of the batch.

Columns convert in one vectorised step; only a column whose vectorised conversion fails is
examined value by value, so clean batches cost little more than Arrow's own conversion.
"""

from __future__ import annotations

import datetime as dt
import json
import operator
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from transforms.exact_json import dumps_exact
from transforms.schema import (
    API_FIELDS,
    BOOL_FIELDS,
    CUSTOMER_SCHEMA,
    DATE_FIELDS,
    INT_FIELDS,
    JSON,
    JSON_FIELDS,
    QUARANTINE_SCHEMA,
    REQUIRED_VALUES,
    STRING_FIELDS,
    TIMESTAMP,
    TIMESTAMP_FIELDS,
)

#: per row, what could not be typed (only rows with a problem have an entry)
Reasons = defaultdict[int, list[str]]
_KNOWN = frozenset(API_FIELDS)
_API_VALUES = operator.itemgetter(*API_FIELDS)
# Rows still to be rejected may lack a pk: build with nullable fields, then cast to the real schema.
_LOOSE_SCHEMA = pa.schema([f.with_nullable(True) for f in CUSTOMER_SCHEMA])
_ZONED = re.compile(r"(Z|[+-]\d\d:?\d\d)$")
_ISO_NAIVE = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
# Python's datetime and date, and so many readers of the lake (and the state database's
# watermark), hold years 1 to 9999 only. Arrow parses year 0, and a UTC offset moves
# ``0001-01-01T00:00+05:00`` into year 0: such a value is refused like an unparseable one.
_CALENDAR = {
    TIMESTAMP: (
        pa.scalar(dt.datetime(1, 1, 1, tzinfo=dt.UTC), TIMESTAMP),
        pa.scalar(dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC), TIMESTAMP),
    ),
    pa.date32(): (pa.scalar(dt.date(1, 1, 1)), pa.scalar(dt.date(9999, 12, 31))),
}


def _in_calendar(values: pa.Array) -> bool:
    """Whether every value (nulls aside) is in years 1 to 9999."""
    lowest, highest = _CALENDAR[values.type]
    inside = pc.and_(pc.greater_equal(values, lowest), pc.less_equal(values, highest))
    return pc.all(inside).as_py() is not False


class SchemaDrift(Exception):
    """The API's shape changed (a documented field is gone): fail the run, keep the watermark."""


@dataclass(frozen=True)
class Lineage:
    run_id: str
    extracted_at: dt.datetime
    source: str


@dataclass
class Converted:
    """The typed rows, and the records that could not be typed with their reasons."""

    table: pa.Table
    rejected: pa.Table
    #: how many records carried each field the schema does not know (kept in ``_extra_fields``)
    unknown_field_counts: Counter[str] = field(default_factory=Counter)
    #: each rejected record's ``modified_date`` (null where it cannot be read), row for row
    rejected_modified: pa.Array = field(default_factory=lambda: pa.array([], TIMESTAMP))

    @property
    def unknown_fields(self) -> set[str]:
        return set(self.unknown_field_counts)


def _json_text(value: Any) -> str:
    try:
        return dumps_exact(value)
    except TypeError:  # integers beyond 64 bits given as Python ints, and other oddities
        return json.dumps(value, ensure_ascii=False, default=repr)


def _check_value(name: str, value: Any) -> str | None:
    """Why ``value`` cannot be stored in column ``name`` (None: it can)."""
    if value is None:
        return f"{name}: missing" if name in REQUIRED_VALUES else None
    if name in INT_FIELDS:
        ok = isinstance(value, int) and not isinstance(value, bool)
        if ok and not -(2**63) <= value < 2**63:
            return f"{name}: out of the 64-bit range: {value!r:.60}"
        return None if ok else f"{name}: not an integer: {value!r:.60}"
    if name in BOOL_FIELDS:
        return None if isinstance(value, bool) else f"{name}: not a boolean: {value!r:.60}"
    if name in STRING_FIELDS:
        return None if isinstance(value, str) else f"{name}: not a string: {value!r:.60}"
    if name in JSON_FIELDS:
        return None if isinstance(value, dict) else f"{name}: not a JSON object: {value!r:.60}"
    if name in TIMESTAMP_FIELDS or name in DATE_FIELDS:
        target = TIMESTAMP if name in TIMESTAMP_FIELDS else pa.date32()
        if not isinstance(value, str):
            return (
                f"{name}: not a {'datetime' if name in TIMESTAMP_FIELDS else 'date'}: {value!r:.60}"
            )
        if name in TIMESTAMP_FIELDS and _ISO_NAIVE.match(value) and not _ZONED.search(value):
            return f"{name}: no timezone: {value!r:.60}"
        try:
            cast = pc.cast(pa.array([value]), target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return f"{name}: unparseable: {value!r:.60}"
        if not _in_calendar(cast):
            return f"{name}: outside years 1 to 9999 (in UTC): {value!r:.60}"
    return None


def _convert_column(name: str, values: list[Any], reasons: Reasons) -> pa.Array:
    """The column as Arrow; bad values are nulled and their reasons appended per row."""
    target = CUSTOMER_SCHEMA.field(name).type
    prepared = (
        [None if v is None else _json_text(v) if isinstance(v, dict) else v for v in values]
        if name in JSON_FIELDS
        else values
    )
    try:
        if name in JSON_FIELDS and not all(v is None or isinstance(v, dict) for v in values):
            raise pa.ArrowInvalid("not JSON objects")
        if name in TIMESTAMP_FIELDS or name in DATE_FIELDS:
            raw = pa.array(prepared, pa.string())
            if (
                name in TIMESTAMP_FIELDS
                and not pc.all(
                    pc.or_kleene(pc.is_null(raw), pc.match_substring_regex(raw, _ZONED.pattern))
                ).as_py()
            ):
                raise pa.ArrowInvalid("naive datetimes")
            cast = pc.cast(raw, target)
            if not _in_calendar(cast):
                raise pa.ArrowInvalid("outside the calendar")
            return cast
        if name in INT_FIELDS and any(isinstance(v, bool) for v in values):
            raise pa.ArrowInvalid("booleans in an integer column")
        return pa.array(prepared, target)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
        pass
    cleaned: list[Any] = []
    for i, value in enumerate(values):
        problem = _check_value(name, value)
        if problem is not None and value is not None:
            reasons[i].append(problem)  # a defaultdict: only bad rows get a list
            cleaned.append(None)
        else:
            cleaned.append(prepared[i])
    if name in TIMESTAMP_FIELDS or name in DATE_FIELDS:
        return pc.cast(pa.array(cleaned, pa.string()), target)
    return pa.array(cleaned, target)


def to_table(
    records: Sequence[dict[str, Any]], lineage: Lineage, *, complete: bool = False
) -> Converted:
    """Type ``records`` (API JSON objects). Raises SchemaDrift if a documented field vanished
    from every record (``complete``: records of the same batch typed elsewhere have every
    documented field, so none vanished)."""
    count = len(records)
    reasons: Reasons = defaultdict(list)  # row -> what is wrong with it; most rows: nothing
    unknown: set[str] = set()
    present: set[str] = set()
    odd = False  # some record is not a dict of exactly the documented fields
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            reasons[i].append(f"record: not a JSON object: {record!r:.60}")
            odd = True
        elif record.keys() == _KNOWN:
            complete = True
        else:  # rare: only drifted or broken records pay for the details
            odd = True
            missing = [name for name in API_FIELDS if name not in record]
            if missing:
                reasons[i].append(f"fields missing: {', '.join(missing)}")
            else:
                complete = True
            unknown |= record.keys() - _KNOWN
            present |= record.keys()
    if count and not complete:
        gone = [name for name in API_FIELDS if name not in present]
        if gone:
            raise SchemaDrift(f"documented field(s) missing from every record: {', '.join(gone)}")
    values: list[Sequence[Any]]
    if count and not odd:  # every record is a dict of exactly the documented fields
        # One C-level tuple per record, transposed in C: a list comprehension over the dicts per
        # column would walk every record once per field, in Python.
        values = list(zip(*map(_API_VALUES, records), strict=True))
    else:
        safe = [r if isinstance(r, dict) else {} for r in records]
        values = [[r.get(name) for r in safe] for name in API_FIELDS]
    columns = {
        name: _convert_column(name, list(column), reasons)
        for name, column in zip(API_FIELDS, values, strict=True)
    }
    for name in REQUIRED_VALUES:
        for i in pc.indices_nonzero(pc.is_null(columns[name])).to_pylist():
            if not any(reason.startswith(f"{name}:") for reason in reasons.get(i, ())):
                reasons[i].append(f"{name}: missing")
    extras: list[str | None] = [None] * count
    unknown_counts: Counter[str] = Counter()
    if unknown:
        for i, r in enumerate(safe):
            if r.keys() - _KNOWN:
                added = sorted(r.keys() - _KNOWN)
                unknown_counts.update(added)
                extras[i] = _json_text({k: r[k] for k in added})
    # Constant columns are made in C: from Python lists they would cost CPU on every record.
    columns["_run_id"] = pa.repeat(pa.scalar(lineage.run_id, pa.string()), count)
    columns["_extracted_at"] = pa.repeat(pa.scalar(lineage.extracted_at, TIMESTAMP), count)
    columns["_source"] = pa.repeat(pa.scalar(lineage.source, pa.string()), count)
    columns["_extra_fields"] = pa.array(extras, JSON) if unknown else pa.nulls(count, JSON)
    columns["_dq_flags"] = pa.ListArray.from_arrays(
        pa.array(np.zeros(count + 1, dtype=np.int32)), pa.array([], pa.string())
    )
    table = pa.Table.from_pydict(columns, schema=_LOOSE_SCHEMA)
    bad = sorted(i for i, r in reasons.items() if r)
    if not bad:
        return Converted(
            table.cast(CUSTOMER_SCHEMA), _rejected([], [], [], lineage), unknown_counts
        )
    keep_rows = np.ones(count, dtype=np.bool_)
    keep_rows[bad] = False
    keep = pa.array(keep_rows)
    good = table.filter(keep).cast(CUSTOMER_SCHEMA)
    raw = [records[i] for i in bad]
    modified = columns["modified_date"].take(pa.array(bad, pa.int64()))
    return Converted(
        good,
        _rejected(
            raw,
            [reasons[i] for i in bad],
            [
                r.get("pk")
                if isinstance(r, dict)
                and isinstance(r.get("pk"), int)
                and not isinstance(r.get("pk"), bool)
                and -(2**63) <= r["pk"] < 2**63  # past 64 bits: no customer row to tie it to
                else None
                for r in raw
            ],
            lineage,
        ),
        unknown_counts,
        modified,
    )


def _rejected(
    raw: list[Any], reasons: list[list[str]], pks: list[int | None], lineage: Lineage
) -> pa.Table:
    count = len(raw)
    return pa.Table.from_pydict(
        {
            "_run_id": [lineage.run_id] * count,
            "_extracted_at": pa.array([lineage.extracted_at] * count, TIMESTAMP),
            "_source": [lineage.source] * count,
            "pk": pa.array(pks, pa.int64()),
            "reasons": pa.array(reasons, pa.list_(pa.string())),
            "raw": [_json_text(r) for r in raw],
        },
        schema=QUARANTINE_SCHEMA,
    )
