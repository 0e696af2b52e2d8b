"""Choosing versions (G2): the snapshot's latest per customer and the change log's one row per
version, held to the rule written out in plain Python on any mix of duplicates and ties."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.versions import latest_per_pk, unique_versions

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
STAMP = pa.timestamp("us", tz="UTC")

rows = st.lists(
    st.tuples(
        st.integers(1, 6),  # pk
        st.integers(0, 4).map(lambda d: T0 + dt.timedelta(days=31 * d)),  # modified_date
        st.integers(0, 2).map(lambda s: T0 + dt.timedelta(seconds=s)),  # _extracted_at
    ),
    max_size=40,
)


def table_of(found: list[tuple[int, dt.datetime, dt.datetime]]) -> pa.Table:
    return pa.table(
        {
            "pk": pa.array([pk for pk, _, _ in found], pa.int64()),
            "modified_date": pa.array([m for _, m, _ in found], STAMP),
            "_extracted_at": pa.array([e for _, _, e in found], STAMP),
            "row": pa.array(range(len(found)), pa.int64()),
        }
    )


def in_rule_order(found: list[tuple[int, dt.datetime, dt.datetime]]) -> list[int]:
    """Row numbers by pk, newest version first, the one extracted last first (a stable sort:
    rows equal in all three keep their order)."""
    return sorted(
        range(len(found)),
        key=lambda i: (found[i][0], -found[i][1].timestamp(), -found[i][2].timestamp()),
    )


@settings(max_examples=300, deadline=None)
@given(rows)
def test_the_latest_version_of_each_customer(
    found: list[tuple[int, dt.datetime, dt.datetime]],
) -> None:
    expected: dict[int, int] = {}
    for i in in_rule_order(found):
        expected.setdefault(found[i][0], i)
    got = latest_per_pk(table_of(found)).column("row").to_pylist()
    assert got == list(expected.values())


@settings(max_examples=300, deadline=None)
@given(rows, st.booleans())
def test_one_row_per_version_ordered_by_month_when_grouped(
    found: list[tuple[int, dt.datetime, dt.datetime]], grouped: bool
) -> None:
    expected: dict[tuple[int, dt.datetime], int] = {}
    for i in in_rule_order(found):
        expected.setdefault(found[i][:2], i)
    order = list(expected.values())
    table = table_of(found)
    if grouped:  # the change log's grouping: by month of modified_date, then as above
        order.sort(key=lambda i: found[i][1].strftime("%Y-%m"))
        months = pa.array([m.strftime("%Y-%m") for _, m, _ in found], pa.string())
        got = unique_versions(table.append_column("month", months), "month")
    else:
        got = unique_versions(table)
    assert got.column("row").to_pylist() == order
