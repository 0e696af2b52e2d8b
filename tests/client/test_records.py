"""Pages decode straight into typed customers; only drifted or broken records become dicts."""

from __future__ import annotations

from typing import Any

import orjson

from omnisync.client.records import (
    Customer,
    DriftedCustomer,
    SentCustomer,
    customer_text,
    decode_records,
    envelope,
    record_modified,
    record_pk,
)
from sandbox.seed import seed_customers
from transforms.schema import API_FIELDS


def customers(count: int = 3) -> list[dict[str, Any]]:
    return [dict(c.data) for c in seed_customers(count, seed=5)]


def test_the_typed_customer_has_the_documented_fields_in_their_order() -> None:
    assert Customer.__struct_fields__ == API_FIELDS


def test_documented_customers_decode_typed_with_json_objects_as_the_server_wrote_them() -> None:
    source = customers()
    text = b'{"a": 12.10, "b": 1e2, "c": 123456789012345678901234567890, "d": [1.0]}'
    body = orjson.dumps(source).replace(
        orjson.dumps(source[0]["extra_field"]), text, 1
    )  # the first record's extra_field
    records = decode_records(body)
    assert all(type(r) is SentCustomer for r in records)
    assert bytes(records[0].extra_field) == text
    assert [record_pk(r) for r in records] == [c["pk"] for c in source]
    assert [record_modified(r) for r in records] == [c["modified_date"] for c in source]
    assert orjson.loads(customer_text(records[1])) == source[1]


def test_a_record_with_unknown_fields_is_typed_and_keeps_them_as_the_servers_text() -> None:
    source = customers()
    source[1]["loyalty_tier"] = {"points": 1}
    source[1]["omnisync:source"] = "x"  # a server's field of the name we use is kept too
    body = orjson.dumps(source).replace(b'"points":1', b'"points":1.50')
    records = decode_records(body)
    assert all(isinstance(r, Customer) for r in records)
    assert not records[0].extra_keys and not records[2].extra_keys  # type: ignore[attr-defined]
    drifted = records[1]
    assert type(drifted) is DriftedCustomer and drifted.email == source[1]["email"]
    assert drifted.extra_keys == ("loyalty_tier", "omnisync:source")
    assert drifted.extra_text == '{"loyalty_tier":{"points":1.50},"omnisync:source":"x"}'
    assert customer_text(drifted) == orjson.dumps(source[1]).decode().replace("1}", "1.50}", 1)


def test_records_with_a_wrong_type_or_a_missing_field_are_decoded_alone() -> None:
    source = customers(4)
    source[0]["is_active"] = "yes"
    del source[2]["gender"]
    records = decode_records(orjson.dumps(source))
    assert records[0] == source[0] and records[2] == source[2]
    assert type(records[1]) is SentCustomer and type(records[3]) is SentCustomer


def test_a_value_that_is_not_a_record_is_passed_on_as_sent() -> None:
    records = decode_records(orjson.dumps([customers(1)[0], "x", None]))
    assert type(records[0]) is SentCustomer and records[1:] == ["x", None]
    assert record_pk("x") is None and record_modified(None) is None


def test_text_only_the_stdlib_reads_is_decoded_exactly() -> None:
    body = orjson.dumps(customers(2)).replace(b'"first_name":"', b'"first_name":"\\ud800', 1)
    records = decode_records(body)
    assert isinstance(records[0], dict) and records[0]["first_name"].startswith("\ud800")


def test_the_envelope_leaves_the_results_as_text() -> None:
    body = b'{"count": 2, "next": null, "previous": null, "results": [1, {"pk": 2}]}'
    assert envelope(body) == (2, None, b'[1, {"pk": 2}]')
    assert envelope(b'{"count": 2}') is None and envelope(b"not json") is None


def test_a_page_where_every_record_has_a_new_field_stays_typed() -> None:
    source = customers(4)
    for number, record in enumerate(source):
        record["loyalty_tier"] = number
    records = decode_records(orjson.dumps(source))
    assert all(type(r) is DriftedCustomer for r in records)
    assert [r.extra_text for r in records] == [f'{{"loyalty_tier":{n}}}' for n in range(4)]


def test_a_typed_customers_text_is_the_servers_in_its_field_order() -> None:
    """The API promises no field order: the text of a typed customer (its ``raw``, should it be
    quarantined) is what was sent, not the struct written again in documented order."""
    source = customers()
    reordered = [dict(reversed(list(c.items()))) for c in source]
    body = orjson.dumps(reordered).replace(
        b'"attributes_kwargs":{}', b'"attributes_kwargs": {"a": 1.50}', 1
    )
    sent = orjson.loads(body)
    for records in (decode_records(body), [decode_records(body)[1]]):
        assert all(type(r) is SentCustomer for r in records)
    records = decode_records(body)
    texts = [customer_text(r) for r in records]
    assert texts[0].startswith('{"localized_attributes_kwargs":') and '"a": 1.50' in texts[0]
    assert [orjson.loads(t) for t in texts] == sent
    # a page decoded record by record (one of its records is broken) keeps each text too
    broken = body.replace(b'"is_active":true', b'"is_active":"yes"', 1)
    again = decode_records(broken)
    assert customer_text(again[-1]) == texts[-1]
    # a server's key of a name the struct uses is never taken for its own
    named = body.replace(b'{"localized', b'{"omnisync:position":0,"localized', 1)
    first = decode_records(named)[0]
    assert type(first) is DriftedCustomer and first.extra_keys == ("omnisync:position",)
    assert customer_text(first).startswith('{"omnisync:position":0,')
