"""Typed rows become the same Arrow rows as the dicts they were sent as, without a dict each."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import orjson
import pytest

from omnisync.client.exact_json import loads_exact
from omnisync.client.records import Customer, customer_text, decode_records
from sandbox.seed import seed_customers
from transforms.customers import Lineage, SchemaDrift, to_table
from transforms.typed_rows import records_to_table

LINEAGE = Lineage("run-1", dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC), "https://omnitron.test")


def source(count: int = 40) -> list[dict[str, Any]]:
    return [dict(c.data) for c in seed_customers(count, seed=11)]


def typed(body: bytes) -> Any:
    return records_to_table(decode_records(body), LINEAGE, Customer, customer_text)


def test_typed_rows_give_the_table_their_dicts_give() -> None:
    body = orjson.dumps(source())
    result = typed(body)
    assert result.table.equals(to_table(loads_exact(body), LINEAGE).table)
    assert result.rejected.num_rows == 0 and not result.unknown_fields


def test_json_objects_keep_the_servers_text_and_null_is_null() -> None:
    records = source(3)
    records[1]["attributes"] = None
    text = b'{"n": 12.10, "big": 123456789012345678901234567890}'
    body = orjson.dumps(records).replace(orjson.dumps(records[0]["extra_field"]), text, 1)
    rows = typed(body).table.to_pylist()
    assert rows[0]["extra_field"] == text.decode()
    assert rows[1]["attributes"] is None


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("modified_date", "yesterday", "modified_date: unparseable"),
        ("created_date", "2024-01-02T03:04:05", "created_date: no timezone"),
        ("date_of_birth", "1990-13-45", "date_of_birth: unparseable"),
        ("extra_field", [1, 2], "extra_field: not a JSON object: [1, 2]"),
        ("attributes", "{}", "attributes: not a JSON object: '{}'"),
        ("channel", 2**70, "channel: out of the 64-bit range"),
        ("modified_date", "0001-01-01T00:00:00+05:00", "modified_date: outside years 1 to 9999"),
        ("modified_date", "9999-12-31T23:30:00-02:00", "modified_date: outside years 1 to 9999"),
        ("date_joined", "0000-03-01T00:00:00Z", "date_joined: outside years 1 to 9999"),
        ("date_of_birth", "0000-01-01", "date_of_birth: outside years 1 to 9999"),
    ],
)
def test_a_typed_row_the_schema_refuses_is_quarantined_with_its_reason_and_text(
    field: str, value: Any, reason: str
) -> None:
    records = source(5)
    records[2][field] = value
    result = typed(json.dumps(records).encode())  # the stdlib writes integers past 64 bits
    assert result.table.num_rows == 4
    quarantined = result.rejected.to_pylist()
    assert len(quarantined) == 1 and quarantined[0]["pk"] == records[2]["pk"]
    assert any(r.startswith(reason) for r in quarantined[0]["reasons"]), quarantined
    assert loads_exact(quarantined[0]["raw"])["email"] == records[2]["email"]


def test_drifted_records_keep_their_unknown_fields_beside_typed_rows() -> None:
    records = source(5)
    records[3]["loyalty_tier"] = {"points": 1}
    records[4]["is_active"] = "yes"
    records[4]["loyalty_tier"] = None
    body = orjson.dumps(records).replace(b'"points":1', b'"points":1.50')
    result = typed(body)
    assert result.unknown_field_counts == {"loyalty_tier": 2}  # counted in rejected ones too
    rows = {r["pk"]: r for r in result.table.to_pylist()}
    assert rows[records[3]["pk"]]["_extra_fields"] == '{"loyalty_tier":{"points":1.50}}'
    assert rows[records[0]["pk"]]["_extra_fields"] is None
    assert result.table.num_rows == 4 and result.rejected.num_rows == 1
    assert result.rejected.to_pylist()[0]["reasons"] == ["is_active: not a boolean: 'yes'"]
    dropped = records_to_table(decode_records(body)[:4], LINEAGE, Customer, customer_text)
    assert dropped.table.equals(result.table)


def test_a_drifted_typed_row_quarantined_keeps_its_text_as_sent() -> None:
    records = source(3)
    records[1]["modified_date"] = "yesterday"
    records[1]["loyalty_tier"] = {"points": 1}
    body = orjson.dumps(records).replace(b'"points":1', b'"points":1.50')
    quarantined = typed(body).rejected.to_pylist()
    assert len(quarantined) == 1 and '"loyalty_tier":{"points":1.50}' in quarantined[0]["raw"]


def test_a_field_gone_from_every_record_is_drift_but_not_beside_a_typed_row() -> None:
    records = source(3)
    for record in records:
        del record["gender"]
    with pytest.raises(SchemaDrift, match="gender"):
        typed(orjson.dumps(records))
    records.append(source(4)[3])
    result = typed(orjson.dumps(records))
    assert result.table.num_rows == 1 and result.rejected.num_rows == 3
