"""A customer Omnitron still has is never reported deleted, and a repair never removes one.

A candidate the ``modified_date`` tree found is "not listed" because its date is elsewhere, not
because it is gone: the second look's shortcut (one listing of everything at or after the cut)
proves absence only for candidates a pk range's listing found.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omnisync.lake import LakeStorage
from omnisync.orchestration import Local
from omnisync.sync.run import run_sync
from omnisync.verify import verify
from omnisync.verify.repair import repair
from omnisync.verify.run import run_verify
from tests.client.fake_omnitron import FakeOmnitron
from tests.sync.sandbox_runs import settings_for
from tests.sync.test_deletions import deletion_rows

BASE = dt.datetime(2024, 3, 9, 20, 0, tzinfo=dt.UTC)


def _write_lake(root: Path, rows: dict[int, dt.datetime]) -> None:
    folder = root / "customers" / "bucket=0"
    folder.mkdir(parents=True, exist_ok=True)
    pks = sorted(rows)
    pq.write_table(
        pa.table(
            {
                "pk": pa.array(pks, pa.int64()),
                "modified_date": pa.array([rows[p] for p in pks], pa.timestamp("us", tz="UTC")),
            }
        ),
        folder / "part.parquet",
    )


def _damaged(seed: int, customers: int, kinds: int) -> tuple[dict[int, Any], dict[int, Any]]:
    """Omnitron's customers and a lake of them with ``kinds`` each stale, deleted, missing."""
    rng = random.Random(seed)
    server = {
        pk: BASE + dt.timedelta(minutes=rng.randrange(0, 5000)) for pk in range(1, customers + 1)
    }
    lake = dict(server)
    for i, pk in enumerate(rng.sample(list(server), 3 * kinds)):
        if i % 3 == 0:
            lake[pk] = BASE + dt.timedelta(minutes=rng.randrange(0, 5000), seconds=1)
        elif i % 3 == 1:
            del server[pk]
        else:
            del lake[pk]
    return server, lake


def _reported_deleted(root: Path, server: dict[int, Any], lake: dict[int, Any]) -> list[int]:
    _write_lake(root, lake)
    fake = FakeOmnitron(dict(server), order="pk", cap=10)
    with fake.client(page_size=10) as client:
        out = verify(client, LakeStorage(str(root)), max(server.values()), 10)
    return list(out.found["deleted"])


def test_a_stale_customer_found_by_its_date_is_not_reported_deleted(tmp_path: Path) -> None:
    """The reviewer's lake: 200 customers, a page of 10, two of each damage."""
    server, lake = _damaged(380, 200, 2)
    reported = _reported_deleted(tmp_path, server, lake)
    assert reported and not [pk for pk in reported if pk in server], reported


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(seed=st.integers(0, 10**6), customers=st.integers(40, 240), kinds=st.integers(1, 6))
def test_no_live_customer_is_ever_reported_deleted(
    tmp_path_factory: Any, seed: int, customers: int, kinds: int
) -> None:
    root = tmp_path_factory.mktemp("lake")
    server, lake = _damaged(seed, customers, kinds)
    live = [pk for pk in _reported_deleted(root, server, lake) if pk in server]
    assert not live, f"live customers reported deleted: {live}"


def test_repair_removes_no_customer_omnitron_still_has(make_sandbox: Any, tmp_path: Path) -> None:
    """Whatever a report says, a repair asks Omnitron twice (its URL's 404 and an empty
    listing of its pk) before a customer leaves the lake."""
    server = make_sandbox(customers=300)
    current = settings_for(server, tmp_path, lag_seconds=0)
    assert isinstance(run_sync(current, False, Local()), dict)
    pks = pq.read_table(f"{current.lake}/customers")["pk"].to_pylist()
    live = sorted(pks)[7]
    gone = sorted(pks)[11]
    assert server.admin.post("delete", json={"pks": [gone]}).status_code < 300
    outcome = run_verify(current)
    report = dataclasses.replace(outcome, found={**outcome.found, "deleted": sorted({live, gone})})
    counts = repair(current, report)
    kept = pq.read_table(f"{current.lake}/customers")
    assert pc.any(pc.equal(kept["pk"], live)).as_py()
    assert not pc.any(pc.equal(kept["pk"], gone)).as_py()
    assert deletion_rows(current.lake) == [gone]
    assert counts["deleted"] == 1
