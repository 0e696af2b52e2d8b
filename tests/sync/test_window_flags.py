"""A window's versions carry the flags of their pk's latest, validated version."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from omnisync.sync.window_rows import with_latest_flags

FLAGS = pa.list_(pa.string())
names = st.lists(st.sampled_from(["email_is_valid", "gender_is_known", "phone_is_parseable"]))


@given(
    versions=st.lists(st.tuples(st.integers(1, 30), names), max_size=60),
    latest_flags=st.dictionaries(st.integers(1, 30), names),
)
def test_every_version_gets_its_latest_versions_flags(
    versions: list[tuple[int, list[str]]], latest_flags: dict[int, list[str]]
) -> None:
    table = pa.table(
        {
            "pk": pa.array([pk for pk, _ in versions], pa.int64()),
            "_dq_flags": [f for _, f in versions],
        },
        schema=pa.schema([("pk", pa.int64()), ("_dq_flags", FLAGS)]),
    )
    latest = pa.table(
        {"pk": pa.array(list(latest_flags), pa.int64()), "_dq_flags": list(latest_flags.values())},
        schema=table.schema,
    )
    copied = with_latest_flags(table, latest)
    assert copied.schema == table.schema
    assert copied.column("pk").to_pylist() == [pk for pk, _ in versions]
    if not any(latest_flags.values()):
        assert copied.equals(table), "no flag anywhere: the versions keep what they had"
    else:
        assert copied.column("_dq_flags").to_pylist() == [
            latest_flags.get(pk, []) for pk, _ in versions
        ]


@given(st.lists(st.tuples(st.one_of(st.none(), st.integers(1, 8)), st.integers(0, 3)), max_size=20))
def test_validation_sees_the_same_rows_as_the_latest_version_of_each_pk(
    versions: list[tuple[int | None, int]],
) -> None:
    """A window with one version per pk is validated as it is (no sorted copy); any window
    gives validation the same rows as ``latest_per_pk``, in whatever order."""
    import datetime as dt

    from omnisync.sync.window_rows import latest_versions
    from transforms.versions import latest_per_pk

    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    table = pa.table(
        {
            "pk": pa.array([pk for pk, _ in versions], pa.int64()),
            "modified_date": pa.array(
                [t0 + dt.timedelta(minutes=m) for _, m in versions], pa.timestamp("us", tz="UTC")
            ),
            "_extracted_at": pa.array([t0] * len(versions), pa.timestamp("us", tz="UTC")),
            "row": pa.array(range(len(versions)), pa.int64()),
        }
    )
    chosen = latest_versions(table)
    assert sorted(chosen.column("row").to_pylist()) == sorted(
        latest_per_pk(table).column("row").to_pylist()
    )
    if len({pk for pk, _ in versions}) == len(versions):
        assert chosen is table
