"""The Arrow/DuckDB planner against the reference planner, on inputs hypothesis makes up.

The reference (``reference_planning.py``) reads the matching rules one ERP row at a time; the
planner that runs must agree with it on the plan, the conflicts, the unknown codes and the
outcome of every ERP row, for every match key, with and without ``clear_unknown``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.erp.reference_planning import reference_plan_changes
from tests.erp.test_matching import CUSTOMERS_SCHEMA
from transforms.erp.planning import plan_changes
from transforms.erp.tables import CUSTOMER_COLUMNS, Reconciliation

T = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
CODES = st.sampled_from(["A", "B", " C ", "DUP", "", "x\u00e7", "7"]) | st.none()
EMAILS = st.sampled_from(["a@x.com", "A@X.com ", "b@x.com", "stra\u00dfe@x.com", "", "  "])
PHONES = st.sampled_from(["05321234567", "+90 532 123 45 67", "12", "+905551112233", ""])
IDS = st.sampled_from(["1", " 2 ", "3.0", "abc", "2.5", "007", "-0", "+4", "", "\u0663"])


@st.composite
def customers(draw: st.DrawFn) -> pa.Table:
    count = draw(st.integers(0, 12))
    rows = [
        {
            "pk": pk,
            "channel": draw(st.integers(1, 2)),
            "channel_code": draw(st.sampled_from(["k1", "k2", " k1", "", None])),
            "email": draw(EMAILS | st.none()),
            "phone_number": draw(PHONES | st.none()),
            "erp_code": draw(CODES),
            "modified_date": T + dt.timedelta(seconds=pk),
        }
        for pk in range(1, count + 1)
    ]
    return pa.Table.from_pylist(rows, schema=CUSTOMERS_SCHEMA).select(CUSTOMER_COLUMNS)


@st.composite
def erp_rows(draw: st.DrawFn) -> pa.Table:
    rows = [
        {
            "pk": draw(IDS | st.integers(0, 14).map(str) | st.none()),
            "channel": draw(st.sampled_from(["1", "2", "2.0", "x"]) | st.none()),
            "channel_code": draw(st.sampled_from(["k1", " k2 ", "", "k3"]) | st.none()),
            "email": draw(EMAILS | st.none()),
            "phone_number": draw(PHONES | st.none()),
            "erp_code": draw(CODES),
        }
        for _ in range(draw(st.integers(0, 16)))
    ]
    return pa.Table.from_pylist(rows, schema=pa.schema([(k, pa.string()) for k in ERP_FIELDS]))


ERP_FIELDS = ("pk", "channel", "channel_code", "email", "phone_number", "erp_code")


def comparable(result: Reconciliation) -> dict[str, Any]:
    def key(conflict: dict[str, Any]) -> tuple[str, ...]:
        return tuple(str(conflict[k]) for k in ("kind", "key", "erp_code", "pks", "detail"))

    return {
        "plan": sorted(result.plan.to_pylist(), key=lambda r: (r["pk"], r["action"])),
        "conflicts": sorted(result.conflicts.to_pylist(), key=key),
        "unknown": sorted(result.unknown_in_erp.to_pylist(), key=lambda r: r["pk"]),
        "rows": result.erp_rows.to_pylist(),
        "counts": (result.unmatched_erp_rows, result.unchanged, result.matched),
    }


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    erp=erp_rows(),
    synced=customers(),
    match_on=st.sampled_from(["pk", "channel_code", "email", "phone"]),
    clear_unknown=st.booleans(),
)
def test_the_planner_agrees_with_the_reference_on_every_input(
    erp: pa.Table, synced: pa.Table, match_on: Any, clear_unknown: bool
) -> None:
    got = plan_changes(erp, synced, match_on, clear_unknown=clear_unknown)
    want = reference_plan_changes(erp, synced, match_on, clear_unknown=clear_unknown)
    assert comparable(got) == comparable(want)
    assert got.plan.schema == want.plan.schema and got.erp_rows.schema == want.erp_rows.schema
    assert got.plan.column("pk").to_pylist() == sorted(got.plan.column("pk").to_pylist())
