"""G9, full refresh: ``customers/`` is rebuilt from what the refresh read, so it keeps no customer
Omnitron deleted and no row put there behind omnisync's back; a customer the read could not see
(modified during it) is kept, never called deleted; a refresh killed in its rebuild is finished
by the next run, each deletion logged once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from omnisync.client import CustomerQuery, OmnitronClient, Page
from omnisync.lake import Snapshot
from omnisync.orchestration import Local
from omnisync.settings import Settings
from omnisync.state.deletions import pending_deletions
from omnisync.sync.context import STREAM, open_run
from omnisync.sync.rebuild import confirmed_absent
from omnisync.sync.run import run_sync
from sandbox import SandboxServer
from tests.client.test_against_sandbox import client_for
from tests.conftest import truth
from tests.sync.sandbox_runs import (
    assert_lake_matches_truth,
    assert_no_duplicate_versions,
    settings_for,
    wait_for_server_clock,
)
from tests.sync.test_deletions import deletion_rows

Make = Callable[..., SandboxServer]


class Killed(Exception):
    """Stands for the process dying at this point."""


def sync(settings: Settings, full_refresh: bool = False) -> dict[str, object]:
    outcome = run_sync(settings, full_refresh, Local())
    assert isinstance(outcome, dict), outcome
    return outcome


def add_strangers(lake: str, pks: list[int]) -> None:
    """Rows of customers Omnitron never had, written into a bucket file by a tool outside
    omnisync (one of them into a file of its own, which no bucket of the layout names)."""
    path = sorted(Path(lake, "customers").glob("bucket=*/part.parquet"))[0]
    table = pq.read_table(path)
    index = table.schema.get_field_index("pk")
    pk_type = table.schema.field("pk").type
    extra = table.slice(0, len(pks)).set_column(index, "pk", pa.array(pks, pk_type))
    extra = extra.cast(table.schema)
    pq.write_table(pa.concat_tables([table, extra.slice(1)]), path)
    pq.write_table(extra.slice(0, 1), path.parent / "stray.parquet")


def lake_pks(lake: str) -> set[int]:
    return set(pq.read_table(f"{lake}/customers", columns=["pk"])["pk"].to_pylist())


def test_a_full_refresh_rebuilds_the_snapshot_and_logs_what_omnitron_confirms_deleted(
    make_sandbox: Make, tmp_path: Path
) -> None:
    server = make_sandbox(customers=1500, seed=29, max_limit=200)
    settings = settings_for(server, tmp_path, lag_seconds=0, page_size=200)
    lake = settings.lake
    sync(settings)
    # Deleted in Omnitron while no check could run (a budget of 0 would be refused: the full
    # refresh is what runs next), and rows of customers Omnitron never had.
    gone = server.admin.post("delete", json={"pks": [3, 400, 401, 1200]}).json()["pks"]
    strangers = [900_001, 900_002, 900_003]
    add_strangers(lake, strangers)
    # Modified now, so past a refresh whose upper bound is an hour back: it cannot be read, it
    # still exists, and it must stay (the next incremental reads its new version).
    moved = [10, 700]
    server.admin.post("modify", json={"pks": moved})
    late = settings.model_copy(update={"lag_seconds": 3600})
    counts = sync(late, full_refresh=True)
    assert set(moved) <= lake_pks(lake), "a customer the read could not see is kept"
    assert not lake_pks(lake) & {*gone, *strangers}
    assert sorted(deletion_rows(lake)) == sorted([*gone, *strangers])
    assert not list(Path(lake, "customers").rglob("stray.parquet"))
    assert counts["read"] == 1500 - len(gone) - len(moved)
    assert counts["deleted"] == len(gone) + len(strangers), "the rebuild's deletions are counted"
    wait_for_server_clock(server, 0)
    sync(settings)
    assert_lake_matches_truth(server, lake)
    assert_no_duplicate_versions(lake)
    assert sorted(deletion_rows(lake)) == sorted([*gone, *strangers]), "each logged once"


@pytest.mark.parametrize("after_buckets", [0, 5])
def test_a_full_refresh_killed_in_its_rebuild_is_finished_by_the_next_run(
    make_sandbox: Make, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, after_buckets: int
) -> None:
    server = make_sandbox(customers=800, seed=31)
    settings = settings_for(server, tmp_path, lag_seconds=0)
    lake = settings.lake
    sync(settings)
    gone = server.admin.post("delete", json={"pks": [5, 77, 150, 640]}).json()["pks"]
    strangers = [700_001, 700_002]
    add_strangers(lake, strangers)
    replace = Snapshot.replace_bucket
    written: list[int] = []

    def dies(self: Snapshot, bucket: int, rows: pa.Table | None) -> None:
        if len(written) == after_buckets:
            raise Killed
        written.append(bucket)
        replace(self, bucket, rows)

    monkeypatch.setattr(Snapshot, "replace_bucket", dies)
    with pytest.raises(Killed):
        sync(settings, full_refresh=True)
    monkeypatch.undo()
    # Readers meanwhile see every customer once: no bucket is ever empty or half written.
    pks = pq.read_table(f"{lake}/customers", columns=["pk"])["pk"]
    assert len(pks) == len(pc.unique(pks))
    live = {row["pk"] for row in truth(server)}
    assert live <= set(pks.to_pylist()), "no customer Omnitron has is missing meanwhile"
    with open_run(settings, "look", validate=False) as parts:
        recorded = sorted(d.pk for d in pending_deletions(parts.store, STREAM))
    assert recorded == sorted([*gone, *strangers]), "recorded before any bucket changed"
    counts = sync(settings)
    assert counts["resumed_plan"] is True
    assert_lake_matches_truth(server, lake)
    assert sorted(deletion_rows(lake)) == sorted([*gone, *strangers]), "each logged once"


class _OddFirstAnswers:
    """The client over HTTP, but the first listing of each one-pk range says it holds more than
    its page shows (as a server whose count is off by a record created in between): the
    rebuild's listings cannot settle that pk, so it falls back to asking the pk itself."""

    def __init__(self, client: OmnitronClient) -> None:
        self._client = client
        self._asked: set[int] = set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def list_customers(
        self, query: CustomerQuery, page_size: int | None = None, before_send: Any = None
    ) -> Any:
        lo, hi = query.pk_gte, query.pk_lt
        if lo is not None and hi == lo + 1 and lo not in self._asked:
            self._asked.add(lo)
            return iter([Page(1, 1, [], False)])
        return self._client.list_customers(query, page_size, before_send)


def test_a_rebuild_needs_two_answers_before_it_calls_a_customer_deleted(
    make_sandbox: Make,
) -> None:
    """A 404 on a live customer's own URL (a proxy mid-deploy) is not enough to drop it from a
    rebuilt ``customers/``; a customer really gone is still confirmed the same run."""
    server = make_sandbox(customers=40, seed=29)
    assert server.admin.post("delete", json={"pks": [30]}).json()["pks"] == [30]
    server.admin.post(
        "faults/next", json={"kinds": ["404"], "methods": ["GET"], "path": "/api/v1/customers/29/"}
    ).raise_for_status()
    lake = np.arange(1, 41, dtype=np.int64)
    with client_for(server) as client:
        odd: Any = _OddFirstAnswers(client)
        gone = confirmed_absent(odd, [10, 29, 30], lake, page_size=2)
    assert server.admin.get("stats").json()["faults_injected"].get("404") == 1
    assert gone == [30], "one 404 is no proof: 29 is live"
