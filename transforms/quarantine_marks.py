"""Marking a customer's row as quarantined: ``customers/`` never holds an older version silently.

When a customer's newest version cannot be represented (a value of the wrong type, say), its
raw record goes to ``quarantine/customers/`` and the row ``customers/`` already holds (the
newest version that could be) stays, with two entries added to its ``_dq_flags``:

* ``quarantined``: Omnitron holds a newer version of this customer than this row;
* ``quarantine_record=<path>#<modified_date>``: the file of ``quarantine/customers/`` that holds
  that version's raw record (its row with this ``pk``), and the version's ``modified_date``.

A later version that can be represented replaces the row, flags and all. Pure Arrow: the sync
decides which versions to mark (``omnisync/sync/window.py``) and applies the marks when it
merges a bucket (``omnisync/sync/finish.py``).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from transforms.schema import TIMESTAMP

FLAG = "quarantined"
POINTER = "quarantine_record="

MARK_SCHEMA = pa.schema(
    [
        pa.field("pk", pa.int64(), nullable=False),
        pa.field("modified_date", TIMESTAMP, nullable=False),
        pa.field("record", pa.string(), nullable=False),
    ]
)


def marks_for(
    pks: pa.Array | pa.ChunkedArray, modified: pa.Array | pa.ChunkedArray, record: str
) -> pa.Table:
    """The marks of quarantined versions whose ``pk`` and ``modified_date`` can both be read
    (a record without them names no customer row); ``record``: their quarantine file."""
    table = pa.table({"pk": pks, "modified_date": modified.cast(TIMESTAMP)})
    table = table.filter(
        pc.and_(pc.is_valid(table.column("pk")), pc.is_valid(table.column("modified_date")))
    )
    return pa.table(
        {
            "pk": table.column("pk"),
            "modified_date": table.column("modified_date"),
            "record": pa.repeat(pa.scalar(record, pa.string()), table.num_rows),
        },
        schema=MARK_SCHEMA,
    )


def newest_marks(marks: pa.Table) -> dict[int, tuple[object, str]]:
    """Per pk, the newest quarantined version's ``modified_date`` and its record."""
    newest: dict[int, tuple[object, str]] = {}
    for pk, stamp, record in zip(
        marks.column("pk").to_pylist(),
        marks.column("modified_date").to_pylist(),
        marks.column("record").to_pylist(),
        strict=True,
    ):
        if pk not in newest or stamp >= newest[pk][0]:
            newest[pk] = (stamp, record)
    return newest


def is_mark(flag: str) -> bool:
    return flag == FLAG or flag.startswith(POINTER)


def mark_rows(rows: pa.Table, marks: pa.Table) -> pa.Table | None:
    """``rows`` (one per pk) with the marks applied to every row older than its pk's newest
    quarantined version (earlier marks replaced); None when no row changes."""
    newest = newest_marks(marks)
    if not newest or rows.num_rows == 0:
        return None
    index = rows.schema.get_field_index("_dq_flags")
    flags = rows.column(index).to_pylist()
    changed = False
    for i, (pk, stamp) in enumerate(
        zip(rows.column("pk").to_pylist(), rows.column("modified_date").to_pylist(), strict=True)
    ):
        mark = newest.get(pk)
        if mark is None or not stamp < mark[0]:
            continue
        pointer = f"{POINTER}{mark[1]}#{mark[0].isoformat()}"  # type: ignore[attr-defined]
        kept = [flag for flag in flags[i] or [] if not is_mark(flag)]
        updated = [*kept, FLAG, pointer]
        if updated != flags[i]:
            flags[i], changed = updated, True
    if not changed:
        return None
    field = rows.schema.field(index)
    return rows.set_column(index, field, pa.array(flags, field.type))
