"""Erasing chosen rows of a table: the named columns become null there, and nothing else moves."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from transforms.customers import Lineage, to_table
from transforms.erasure import cut_reasons, erase_columns, erase_quarantine, erase_raw, rows_of
from transforms.schema import QUARANTINE_SCHEMA


def _customers() -> pa.Table:
    def record(pk: int) -> dict[str, object]:
        return {
            "pk": pk,
            "channel": 1,
            "email": f"c{pk}@example.test",
            "first_name": "Ada",
            "last_name": "Yılmaz",
            "phone_number": "0532 000 00 0" + str(pk),
            "is_active": True,
            "channel_code": f"C{pk}",
            "erp_code": None,
            "extra_field": {"address": "Kadıköy"},
            "modified_date": "2024-05-01T10:00:00Z",
            "created_date": "2024-05-01T10:00:00Z",
            "date_joined": "2024-05-01T10:00:00Z",
            "email_allowed": True,
            "sms_allowed": False,
            "call_allowed": False,
            "gender": "female",
            "attributes": {},
            "user_type": "registered",
            "date_of_birth": "1990-01-02",
            "attributes_kwargs": {},
            "localized_attributes": {},
            "localized_attributes_kwargs": {},
        }

    lineage = Lineage("run", dt.datetime(2024, 5, 1, tzinfo=dt.UTC), "src")
    return to_table([record(1), record(2), record(3)], lineage).table


def test_only_the_chosen_rows_lose_only_the_named_columns() -> None:
    table = _customers()
    columns = ("email", "phone_number", "date_of_birth", "extra_field", "not_in_this_table")
    erased = erase_columns(table, rows_of(table, [2]), columns)
    assert erased.schema == table.schema, "types (JSON included) and metadata are kept"
    before, after = table.to_pylist(), erased.to_pylist()
    assert after[0] == before[0] and after[2] == before[2]
    assert {k: v for k, v in after[1].items() if v != before[1][k]} == dict.fromkeys(columns[:4])
    assert after[1]["first_name"] == "Ada" and after[1]["pk"] == 2
    assert erase_columns(erased, rows_of(erased, [2]), columns).equals(erased), "idempotent"


def test_a_raw_record_loses_the_named_keys_and_unknown_ones_and_keeps_exact_numbers() -> None:
    raw = '{"pk":7,"email":"a@b.c","score":1.10,"nickname":"x","_run_id":"r","is_active":"yes"}'
    assert erase_raw(raw, ["email", "_extra_fields"]) == (
        '{"pk":7,"email":null,"score":null,"nickname":null,"_run_id":"r","is_active":"yes"}'
    )
    assert erase_raw(raw, ["email"]).startswith('{"pk":7,"email":null,"score":1.10')
    assert erase_raw("[1, 2]", ["email"]) == "null" and erase_raw("{not json", ["email"]) == "null"


def test_reasons_keep_what_was_wrong_but_not_the_value() -> None:
    assert cut_reasons(["email: not a string: 42", "fields missing: email, pk"]) == [
        "email: not a string",
        "fields missing: email, pk",
    ]


def test_quarantined_rows_of_other_customers_are_kept() -> None:
    table = pa.Table.from_pylist(
        [
            {
                "_run_id": "r",
                "_extracted_at": dt.datetime(2024, 5, 1, tzinfo=dt.UTC),
                "_source": "s",
                "pk": pk,
                "reasons": [f"email: not a string: {pk}"],
                "raw": f'{{"pk":{pk},"email":{pk}}}',
            }
            for pk in (1, 2)
        ]
        + [
            {
                "_run_id": "r",
                "_extracted_at": dt.datetime(2024, 5, 1, tzinfo=dt.UTC),
                "_source": "s",
                "pk": None,
                "reasons": ["record: not a JSON object: 'x'"],
                "raw": '"x"',
            }
        ],
        schema=QUARANTINE_SCHEMA,
    )
    erased = erase_quarantine(table, rows_of(table, [2]), ["email"])
    assert erased.schema == table.schema
    rows = erased.to_pylist()
    assert rows[0] == table.to_pylist()[0] and rows[2] == table.to_pylist()[2]
    assert rows[1]["raw"] == '{"pk":2,"email":null}'
    assert rows[1]["reasons"] == ["email: not a string"]
