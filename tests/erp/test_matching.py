"""Matching and planning (pure): normalisation, conflicts never guessed, unchanged rows skipped."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
import pytest

from transforms.erp.keys import normalise_email, normalise_phone
from transforms.erp.planning import plan_changes
from transforms.erp.replanning import replan_one
from transforms.erp.tables import CUSTOMER_COLUMNS

T = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
#: the synced customers' columns planning reads, as the lake types them
CUSTOMERS_SCHEMA = pa.schema(
    [
        ("pk", pa.int64()),
        ("channel", pa.int64()),
        ("channel_code", pa.string()),
        ("email", pa.string()),
        ("phone_number", pa.string()),
        ("erp_code", pa.string()),
        ("modified_date", pa.timestamp("us", tz="UTC")),
    ]
)


def customers(rows: list[dict[str, Any]]) -> pa.Table:
    base = {
        "channel": 1,
        "channel_code": None,
        "email": None,
        "phone_number": None,
        "erp_code": None,
        "modified_date": T,
    }
    full = [{**base, **row} for row in rows]
    for row in full:
        row.setdefault("channel_code", f"c{row['pk']}")
    return pa.Table.from_pylist(full, schema=CUSTOMERS_SCHEMA).select(CUSTOMER_COLUMNS)


def erp(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(
        [{k: None if v is None else str(v) for k, v in r.items()} for r in rows]
    )


@pytest.mark.parametrize(
    ("raw", "normal"),
    [("  Ayse.Yilmaz@Example.COM ", "ayse.yilmaz@example.com"), ("", None), (None, None)],
)
def test_emails_are_trimmed_and_case_folded(raw: Any, normal: str | None) -> None:
    assert normalise_email(raw) == normal


@pytest.mark.parametrize(
    "raw", ["05321234567", "+90 532 123 45 67", "0532 123 45 67", "5321234567", "+905321234567"]
)
def test_turkish_phone_formats_become_one_e164_number(raw: str) -> None:
    assert normalise_phone(raw) == "+905321234567"


def test_unparseable_phones_do_not_match() -> None:
    assert normalise_phone("12") is None and normalise_phone("call me") is None


def test_plan_sets_missing_codes_corrects_wrong_ones_and_skips_right_ones() -> None:
    result = plan_changes(
        erp(
            [
                {"pk": 1, "erp_code": "A"},
                {"pk": 2, "erp_code": "B"},
                {"pk": 3, "erp_code": "C"},
                {"pk": 99, "erp_code": "Z"},
            ]
        ),
        customers(
            [
                {"pk": 1, "erp_code": "A"},
                {"pk": 2},
                {"pk": 3, "erp_code": "old"},
                {"pk": 4, "erp_code": "X"},
            ]
        ),
        "pk",
    )
    plan = {r["pk"]: (r["erp_code"], r["action"]) for r in result.plan.to_pylist()}
    assert plan == {2: ("B", "set"), 3: ("C", "correct")}
    assert result.unchanged == 1 and result.unmatched_erp_rows == 1
    assert result.unknown_in_erp.column("pk").to_pylist() == [4]


def test_unknown_codes_are_cleared_only_when_asked() -> None:
    result = plan_changes(
        erp([{"pk": 1, "erp_code": "A"}]),
        customers([{"pk": 1, "erp_code": "A"}, {"pk": 4, "erp_code": "X"}]),
        "pk",
        clear_unknown=True,
    )
    assert [(r["pk"], r["action"]) for r in result.plan.to_pylist()] == [(4, "clear")]


def test_ambiguous_matches_and_double_claims_are_conflicts_not_guesses() -> None:
    result = plan_changes(
        erp(
            [
                {"email": "shared@x.com", "erp_code": "S"},
                {"email": "ONE@x.com", "erp_code": "P"},
                {"email": "one@x.com ", "erp_code": "Q"},
                {"email": "two@x.com", "erp_code": "DUP"},
                {"email": "three@x.com", "erp_code": "DUP"},
                {"email": "fine@x.com", "erp_code": "F"},
            ]
        ),
        customers(
            [
                {"pk": 1, "email": "shared@x.com"},
                {"pk": 2, "email": "Shared@X.com"},
                {"pk": 3, "email": "one@x.com"},
                {"pk": 4, "email": "two@x.com"},
                {"pk": 5, "email": "three@x.com"},
                {"pk": 6, "email": "FINE@x.com"},
            ]
        ),
        "email",
    )
    kinds = {r["kind"]: r["pks"] for r in result.conflicts.to_pylist()}
    assert kinds == {
        "ambiguous_match": [1, 2],
        "customer_claimed_twice": [3],
        "code_claimed_by_several": [4, 5],
    }
    assert [(r["pk"], r["erp_code"]) for r in result.plan.to_pylist()] == [(6, "F")]


def test_matching_by_channel_code_and_by_phone() -> None:
    by_code = plan_changes(
        erp([{"channel": 2, "channel_code": " k-1 ", "erp_code": "K"}]),
        customers(
            [
                {"pk": 7, "channel": 2, "channel_code": "k-1"},
                {"pk": 8, "channel": 1, "channel_code": "k-1"},
            ]
        ),
        "channel_code",
    )
    assert by_code.plan.column("pk").to_pylist() == [7]
    by_phone = plan_changes(
        erp([{"phone_number": "+90 532 123 45 67", "erp_code": "P"}]),
        customers([{"pk": 9, "phone_number": "05321234567"}]),
        "phone",
    )
    assert by_phone.plan.column("pk").to_pylist() == [9]


def test_a_customer_changed_in_omnitron_since_the_plan_is_never_overwritten() -> None:
    change = {
        "pk": 1,
        "erp_code": "NEW",
        "previous_erp_code": None,
        "action": "set",
        "match_key": "email",
        "match_value": "a@x.com",
    }
    assert replan_one({"erp_code": "SET-BY-HAND", "email": "a@x.com"}, change)[0] is None
    assert replan_one({"erp_code": "NEW", "email": "a@x.com"}, change)[0] is None
    assert replan_one({"erp_code": None, "email": "b@x.com"}, change)[0] is None
    assert replan_one({"erp_code": None, "email": "A@x.com"}, change)[0] == "NEW"


def test_every_erp_row_ends_in_exactly_one_named_outcome() -> None:
    """Rows with an empty code, a key that is not one, no customer, a conflict, a right code or
    a change to make: each is accounted for, and the counts add up to the input."""
    rows = [
        {"pk": "1", "erp_code": "A"},  # already right
        {"pk": "2.0", "erp_code": "B"},  # a float-looking id still matches pk 2: planned
        {"pk": "3", "erp_code": ""},  # invalid: empty code
        {"pk": "abc", "erp_code": "Q"},  # invalid: not an id
        {"pk": "2.5", "erp_code": "R"},  # invalid: not an integer
        {"pk": "99", "erp_code": "Z"},  # unknown customer
        {"pk": "4", "erp_code": "X1"},  # conflict: customer claimed twice
        {"pk": "4", "erp_code": "X2"},
        {"pk": "5", "erp_code": "DUP"},  # conflict: one code for two customers
        {"pk": "6", "erp_code": "DUP"},
        {"pk": "7", "erp_code": "S"},  # planned (twice the same claim: both rows planned)
        {"pk": "7", "erp_code": "S"},
    ]
    result = plan_changes(
        erp(rows),
        customers([{"pk": 1, "erp_code": "A"}, *({"pk": pk} for pk in range(2, 8))]),
        "pk",
    )
    outcomes = result.erp_rows.to_pylist()
    assert [o["row"] for o in outcomes] == list(range(len(rows)))
    assert [o["outcome"] for o in outcomes] == [
        "already_right",
        "planned",
        "invalid",
        "invalid",
        "invalid",
        "unknown_customer",
        "conflict",
        "conflict",
        "conflict",
        "conflict",
        "planned",
        "planned",
    ]
    assert outcomes[2]["reason"] == "erp_code: empty"
    assert "pk: not an integer ('abc')" in outcomes[3]["reason"].replace("pk=", "")
    assert result.row_counts() == {
        "planned": 3,
        "already_right": 1,
        "conflict": 4,
        "unknown_customer": 1,
        "invalid": 3,
    }
    assert sum(result.row_counts().values()) == len(rows)
    assert sorted(result.plan.column("pk").to_pylist()) == [2, 7]
