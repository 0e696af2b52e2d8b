"""A listing holding a record whose pk cannot be read as an integer (``"pk": "5"``) proves no
customer of its range absent: that record may be any of them. Two such listings once
confirmed pk 5 deleted (the sync's check, a full refresh's rebuild, and verify alike)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import httpx
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from omnisync.lake import LakeStorage
from omnisync.sync.deletions import _Budget, narrow
from omnisync.sync.rebuild import confirmed_absent
from omnisync.verify import verify
from tests.client.fake_omnitron import FakeOmnitron

BASE = dt.datetime(2024, 3, 9, 20, 0, tzinfo=dt.UTC)


def _unreadable_five() -> FakeOmnitron:
    """Customers 1..9 (10 was deleted); every listing renders pk 5 as the text ``"5"``, its
    own URL answers as usual."""
    fake = FakeOmnitron({pk: BASE + dt.timedelta(minutes=pk) for pk in range(1, 10)})
    inner = fake.handle

    def handle(request: httpx.Request) -> httpx.Response:
        response = inner(request)
        body = orjson.loads(response.content)
        if isinstance(body, dict) and "results" in body:
            for record in body["results"]:
                if record.get("pk") == 5:
                    record["pk"] = "5"
        return httpx.Response(response.status_code, content=orjson.dumps(body))

    fake.handle = handle  # type: ignore[method-assign]
    return fake


def test_the_deletion_check_does_not_confirm_a_pk_a_listing_cannot_name() -> None:
    lake = np.arange(1, 11, dtype=np.int64)
    with _unreadable_five().client(page_size=100) as client:
        found, _ = narrow(_Budget(client, None), lake, np.zeros(0, np.int64), [(None, None)], 100)
    assert 5 not in found
    assert found == [10]  # asked one by one: the customer really gone still leaves


def test_a_full_refresh_does_not_confirm_a_pk_a_listing_cannot_name() -> None:
    lake = np.arange(1, 11, dtype=np.int64)
    with _unreadable_five().client(page_size=100) as client:
        assert confirmed_absent(client, [5, 10], lake, 100) == [10]


def test_verify_does_not_call_deleted_a_pk_a_listing_cannot_name(tmp_path: Path) -> None:
    folder = tmp_path / "customers" / "bucket=0"
    folder.mkdir(parents=True)
    pks = list(range(1, 11))
    pq.write_table(
        pa.table(
            {
                "pk": pa.array(pks, pa.int64()),
                "modified_date": pa.array(
                    [BASE + dt.timedelta(minutes=pk) for pk in pks], pa.timestamp("us", tz="UTC")
                ),
            }
        ),
        folder / "part.parquet",
    )
    with _unreadable_five().client(page_size=100) as client:
        out = verify(client, LakeStorage(str(tmp_path)), BASE + dt.timedelta(minutes=10), 100)
    assert out.found["deleted"] == [10], out.line()
