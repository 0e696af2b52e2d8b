"""A window's versions carry the flags of their pk's latest, validated version."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from omnisync.sync.window import with_latest_flags

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
