"""G9, deletions: a customer deleted in Omnitron leaves ``customers/`` within one run, and the
change log records it, through real ``omnisync sync`` runs against the sandbox over HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from omnisync.state import StateStore
from omnisync.state.deletions import carried_ranges, carry_ranges
from sandbox import SandboxServer
from tests.conftest import truth
from tests.sync.sandbox_runs import (
    assert_lake_matches_truth,
    assert_no_duplicate_versions,
    cli_env,
    sync_ok,
    wait_for_server_clock,
)

Make = Callable[..., SandboxServer]
SERVERS = {
    "datetime-filters": {},
    "date-only-utc+3-sort-ignored": {
        "date_only_filters": True,
        "utc_offset_hours": 3,
        "ignore_sort": True,
    },
}


def runs(root: Path) -> list[dict[str, Any]]:
    """The run log, newest first, with each run's counts."""
    store = StateStore(f"sqlite:///{root}/state.db")
    try:
        return [
            {**run, "counts": json.loads(run["counts"] or "{}")}
            for run in store.runs.recent(limit=50)
        ]
    finally:
        store.dispose()


def deletion_rows(lake: str) -> list[int]:
    """The pks the change log records as deleted (read with DuckDB; Polars must agree)."""
    pks = [
        row[0]
        for row in duckdb.connect()
        .execute(
            f"select pk from read_parquet('{lake}/customer_changes/**/*.parquet') "
            "where _op = 'delete' order by pk"
        )
        .fetchall()
    ]
    polars = (
        pl.scan_parquet(f"{lake}/customer_changes/**/*.parquet", hive_partitioning=True)
        .filter(pl.col("_op") == "delete")
        .select("pk")
        .collect()
    )
    assert sorted(polars["pk"].to_list()) == pks
    return pks


@pytest.mark.e2e  # slow: runs in make test-e2e (see docs/development.md)
@pytest.mark.parametrize("server_modes", SERVERS.values(), ids=SERVERS.keys())
def test_customers_deleted_while_syncs_run_leave_the_lake_and_are_logged_once(
    prefect_api: str, make_sandbox: Make, tmp_path: Path, server_modes: dict[str, Any]
) -> None:
    server = make_sandbox(
        customers=2000,
        seed=13,
        writers_per_second=40,
        writer_create_share=0.2,
        writer_delete_share=0.4,
        max_limit=300,
        **server_modes,
    )
    env = cli_env(server, tmp_path, prefect_api, OMNISYNC_PAGE_SIZE="300", OMNISYNC_LAG_SECONDS="1")
    lake = str(tmp_path / "lake")
    sync_ok(env)
    chosen = [7, 8, 1500]  # in the lake now: deleted by an admin as well as by the writers
    assert server.admin.post("delete", json={"pks": chosen}).json()["pks"] == chosen
    for _ in range(3):
        time.sleep(0.7)  # let the live writers change, create and delete between runs
        sync_ok(env)
    server.admin.post("quiesce")
    wait_for_server_clock(server, 1)
    sync_ok(env)
    assert_lake_matches_truth(server, lake)
    assert_no_duplicate_versions(lake)
    logged = deletion_rows(lake)
    assert len(logged) == len(set(logged)), "a deletion is logged once"
    live = {row["pk"] for row in truth(server)}
    assert set(chosen) <= set(logged) and not set(logged) & live
    # Nothing deleted since: the check costs the count and one listing of what changed after
    # the upper bound (on a date-only server, of the padded days around it: a page or more).
    sync_ok(env)
    log = runs(tmp_path)
    assert all(run["status"] == "succeeded" for run in log)
    assert log[0]["counts"]["deleted"] == 0
    if not server_modes.get("date_only_filters"):
        assert log[0]["counts"]["deletion_check_requests"] <= 2
    assert sum(run["counts"].get("deleted", 0) for run in log) == len(logged)


def test_narrowing_beyond_the_budget_carries_over_to_the_next_run(
    prefect_api: str, make_sandbox: Make, tmp_path: Path
) -> None:
    server = make_sandbox(customers=3000, seed=17, max_limit=200)
    env = cli_env(
        server,
        tmp_path,
        prefect_api,
        OMNISYNC_PAGE_SIZE="200",
        OMNISYNC_LAG_SECONDS="0",
        OMNISYNC_DELETION_CHECK_REQUESTS="6",
    )
    lake = str(tmp_path / "lake")
    sync_ok(env)
    gone = server.admin.post("delete", json={"pks": [11, 640, 1290, 1875, 2400, 2990]}).json()
    assert len(gone["pks"]) == 6
    sync_ok(env)
    first = runs(tmp_path)[0]["counts"]
    assert first["deletion_check_requests"] <= 2 + 6
    assert first["deletion_ranges_carried"] > 0 and first["deleted"] < 6
    store = StateStore(f"sqlite:///{tmp_path}/state.db")
    assert carried_ranges(store, "customers"), "the ranges left are in the state database"
    for _ in range(12):
        if not carried_ranges(store, "customers"):
            break
        sync_ok(env)
    store.dispose()
    assert_lake_matches_truth(server, lake)
    assert sorted(deletion_rows(lake)) == gone["pks"]
    assert all(run["status"] == "succeeded" for run in runs(tmp_path))


def test_a_full_refresh_keeps_no_deleted_customer(
    prefect_api: str, make_sandbox: Make, tmp_path: Path
) -> None:
    server = make_sandbox(customers=1500, seed=19)
    env = cli_env(
        server,
        tmp_path,
        prefect_api,
        OMNISYNC_LAG_SECONDS="0",
        OMNISYNC_DELETION_CHECK_REQUESTS="4",
    )
    lake = str(tmp_path / "lake")
    sync_ok(env)
    gone = server.admin.post("delete", json={"count": 12}).json()["pks"]
    sync_ok(env)  # a budget of 4 requests: some ranges are left for later
    store = StateStore(f"sqlite:///{tmp_path}/state.db")
    assert carried_ranges(store, "customers")
    refreshed = sync_ok(env, "--full-refresh")
    assert carried_ranges(store, "customers") == [], "a full refresh leaves nothing to narrow"
    # every version was in the change log already: the line says the rebuild beside "0 new"
    assert " 0 new or changed, " in refreshed.stdout, refreshed.stdout
    assert "; customers/ rebuilt from what they read;" in refreshed.stdout, refreshed.stdout
    store.dispose()
    assert_lake_matches_truth(server, lake)
    assert sorted(deletion_rows(lake)) == sorted(gone)


def test_a_deletion_outside_the_carried_ranges_is_found_by_the_same_run(
    make_sandbox: Make, tmp_path: Path
) -> None:
    """The ranges a run carried over are narrowed first; a budget not used up then looks at
    the whole range while the estimate is not explained, so a new deletion elsewhere does not
    wait for another run."""
    server = make_sandbox(customers=1000, seed=19, max_limit=100)
    env = cli_env(
        server,
        tmp_path,
        "",
        OMNISYNC_PAGE_SIZE="100",
        OMNISYNC_LAG_SECONDS="0",
        OMNISYNC_DELETION_CHECK_REQUESTS="40",
    )
    lake = str(tmp_path / "lake")
    sync_ok(env)
    store = StateStore(f"sqlite:///{tmp_path}/state.db")
    try:
        # what a run whose budget ran out leaves: a range to narrow, with nothing deleted in it
        with store.lease.locked("customers", wait_seconds=0, run_id="earlier") as fence:
            carry_ranges(store, "customers", [(600, 700)], "earlier", fence)
        assert server.admin.post("delete", json={"pks": [11]}).json()["pks"] == [11]
        sync_ok(env)
        assert runs(tmp_path)[0]["counts"]["deleted"] == 1
        assert deletion_rows(lake) == [11]
        assert carried_ranges(store, "customers") == []
    finally:
        store.dispose()
    assert_lake_matches_truth(server, lake)


def _snapshot_pks(lake: str) -> set[int]:
    rows = duckdb.connect().execute(f"select pk from read_parquet('{lake}/customers/**/*.parquet')")
    return {row[0] for row in rows.fetchall()}


def test_a_single_404_on_a_live_customers_url_does_not_delete_it(
    make_sandbox: Make, tmp_path: Path
) -> None:
    """A proxy answering 404 for a live customer's URL (mid-deploy) is one answer, not proof:
    the customer stays in ``customers/`` and is asked again by the next run, while a customer
    really deleted next to it leaves within the run. The lake's last two pks share a pk range
    with many customers created after the run's upper bound, so that range cannot be listed
    whole and each of its two lake pks is asked on its own."""
    server = make_sandbox(customers=30, seed=23)
    env = cli_env(server, tmp_path, "", OMNISYNC_PAGE_SIZE="20", OMNISYNC_LAG_SECONDS="60")
    lake = str(tmp_path / "lake")
    sync_ok(env)
    assert {29, 30} <= _snapshot_pks(lake)
    assert server.admin.post("delete", json={"pks": [30]}).json()["pks"] == [30]
    server.admin.post("create", json={"count": 25}).raise_for_status()
    server.admin.post(
        "faults/next", json={"kinds": ["404"], "methods": ["GET"], "path": "/api/v1/customers/29/"}
    ).raise_for_status()
    sync_ok(env)
    assert server.admin.get("stats").json()["faults_injected"].get("404") == 1, (
        "the check asked customer 29's own URL (and met the 404)"
    )
    held = _snapshot_pks(lake)
    assert 29 in held, "one 404 removed a live customer"
    assert 30 not in held, "a deleted customer leaves within one run"
    assert deletion_rows(lake) == [30]
    store = StateStore(f"sqlite:///{tmp_path}/state.db")
    try:
        assert (29, 30) in carried_ranges(store, "customers"), "asked again by the next run"
        sync_ok(env)
        assert carried_ranges(store, "customers") == []
    finally:
        store.dispose()
    assert 29 in _snapshot_pks(lake) and deletion_rows(lake) == [30]
