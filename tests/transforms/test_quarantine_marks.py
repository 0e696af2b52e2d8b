"""Marks of quarantined versions on customers/ rows: only on rows older than the version."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from transforms.quarantine_marks import FLAG, POINTER, mark_rows, marks_for
from transforms.schema import TIMESTAMP

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def rows(*versions: tuple[int, dt.datetime, list[str]]) -> pa.Table:
    return pa.table(
        {
            "pk": pa.array([v[0] for v in versions], pa.int64()),
            "modified_date": pa.array([v[1] for v in versions], TIMESTAMP),
            "_dq_flags": pa.array([v[2] for v in versions], pa.list_(pa.string())),
        }
    )


def test_a_row_older_than_its_quarantined_version_is_marked_with_a_pointer() -> None:
    later = T0 + dt.timedelta(hours=1)
    marks = marks_for(
        pa.array([1, 2, None, 3]), pa.array([later, later, later, None], TIMESTAMP), "q/f.parquet"
    )
    assert marks.column("pk").to_pylist() == [1, 2], "no pk or no date: no row to mark"
    table = rows((1, T0, ["email_is_valid"]), (2, later, []), (4, T0, []))
    marked = mark_rows(table, marks)
    assert marked is not None
    flags = marked.column("_dq_flags").to_pylist()
    assert flags[0] == ["email_is_valid", FLAG, f"{POINTER}q/f.parquet#{later.isoformat()}"]
    assert flags[1] == [] and flags[2] == [], "a row as new as the version, or unmarked pk"


def test_marking_again_replaces_the_earlier_mark_and_is_idempotent() -> None:
    first, second = T0 + dt.timedelta(hours=1), T0 + dt.timedelta(hours=2)
    table = rows((1, T0, []))
    once = mark_rows(table, marks_for(pa.array([1]), pa.array([first], TIMESTAMP), "a"))
    assert once is not None
    twice = mark_rows(once, marks_for(pa.array([1]), pa.array([second], TIMESTAMP), "b"))
    assert twice is not None
    assert twice.column("_dq_flags").to_pylist() == [[FLAG, f"{POINTER}b#{second.isoformat()}"]]
    again = mark_rows(twice, marks_for(pa.array([1]), pa.array([second], TIMESTAMP), "b"))
    assert again is None, "the same marks change nothing"
