"""The PII policy on a quarantined record's raw JSON: named keys hashed or removed, the rest as sent."""

from __future__ import annotations

import json

from transforms.pii import apply_pii_policy_to_raw, stable_hash

SALT = b"pepper"


def test_raw_json_keeps_every_other_value_exactly_as_sent() -> None:
    raw = '{"pk":7,"email":"a@b.test","phone_number":"+90 5","balance":12.10,"big":1e2,"x":"y"}'
    treated = apply_pii_policy_to_raw(raw, {"email": "hash", "phone_number": "drop"}, SALT)
    assert treated == (
        f'{{"pk":7,"email":"{stable_hash("a@b.test", SALT)}","balance":12.10,"big":1e2,"x":"y"}}'
    )


def test_extra_fields_stand_for_every_key_the_schema_does_not_know() -> None:
    raw = '{"pk":7,"email":"a@b.test","secret_note":"call me","_run_id":"r1"}'
    treated = json.loads(apply_pii_policy_to_raw(raw, {"_extra_fields": "drop"}, SALT) or "")
    assert treated == {"pk": 7, "email": "a@b.test", "_run_id": "r1"}


def test_a_record_that_is_no_object_is_hashed_whole_and_a_keep_policy_changes_nothing() -> None:
    assert "a@b.test" not in (
        apply_pii_policy_to_raw('["a@b.test"]', {"email": "hash"}, SALT) or ""
    )
    assert apply_pii_policy_to_raw('["a@b.test"]', {"email": "drop"}, b"") == "null"
    assert apply_pii_policy_to_raw('{"email":"a@b.test"}', {"email": "keep"}, SALT) == (
        '{"email":"a@b.test"}'
    )


def test_a_dropped_column_stays_in_the_schema_with_every_value_null() -> None:
    from transforms.pii import apply_pii_policy
    from transforms.schema import CUSTOMER_SCHEMA

    empty = CUSTOMER_SCHEMA.empty_table()
    treated = apply_pii_policy(empty, {"phone_number": "drop", "extra_field": "drop"}, SALT)
    assert treated.schema.names == empty.schema.names
    assert treated.schema.field("extra_field").type == empty.schema.field("extra_field").type

    import pyarrow as pa

    rows = pa.table({"pk": [1, 2], "phone_number": ["+90 5", None]})
    dropped = apply_pii_policy(rows, {"phone_number": "drop"}, SALT)
    assert dropped.column_names == ["pk", "phone_number"]
    assert dropped.column("phone_number").to_pylist() == [None, None]
    assert dropped.schema.field("phone_number").type == pa.string()
