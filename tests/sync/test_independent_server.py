"""The sync, the ERP write-back and a killed run, against a server that is not the sandbox.

``tests/independent_omnitron.py`` shares no code with ``sandbox/``: SQLite behind the standard
library's HTTP server, date-only filters read in UTC+3, datetimes rendered ``+03:00``, ``sort``
ignored (an updated customer moves to the end), ``limit`` capped at 100, fields in another order.
Whatever the product relies on beyond the documented API would break here.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import math
import os
import random
import signal
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from tests.independent_omnitron import ISTANBUL, PASSWORD, USERNAME, IndependentOmnitron
from tests.sync.sandbox_runs import omnisync, start_omnisync
from tests.sync.test_crash_recovery import EVENT, assert_readers_see_one_row_per_key

COMPARED = ("email", "last_name", "erp_code", "is_active", "channel_code", "phone_number")


@pytest.fixture
def server() -> Iterator[IndependentOmnitron]:
    running = IndependentOmnitron(customers=1500)
    yield running
    running.close()


def environment(server: IndependentOmnitron, root: Path, **variables: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OMNITRON_", "OMNISYNC_")) and k != "PREFECT_API_URL"
    }
    env.update(
        {
            "OMNITRON_URL": server.url,
            "OMNITRON_USERNAME": USERNAME,
            "OMNITRON_PASSWORD": PASSWORD,
            "OMNISYNC_LAKE": str(root / "lake"),
            "OMNISYNC_STATE_URL": f"sqlite:///{root}/state.db",
            "OMNISYNC_MAX_RPS": "1000",
            "OMNISYNC_LAG_SECONDS": "0",
            "OMNISYNC_LOOKBACK_SECONDS": "30",
            "OMNISYNC_RETRY_ATTEMPTS": "6",
            "PREFECT_LOGGING_LEVEL": "WARNING",
            **variables,
        }
    )
    return env


def wait_past_newest(server: IndependentOmnitron) -> None:
    """Until the server's clock (its Date header, whole seconds) is past its newest change, so
    the next run's upper bound covers every change: the server's own clock, not a sleep."""
    newest = server.newest()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        header = httpx.get(f"{server.url}/api/v1/customers/").headers["date"]
        if email.utils.parsedate_to_datetime(header) > newest:
            return
        time.sleep(0.2)
    raise AssertionError("the server's clock did not pass its newest change")


def sync(env: dict[str, str], *args: str) -> None:
    done = omnisync(env, "sync", *args)
    assert done.returncode == 0, done.stderr[-3000:]


def lake_rows(lake: Path) -> dict[int, dict[str, Any]]:
    rows = (
        duckdb.connect()
        .execute(
            "select pk, modified_date, extra_field, attributes, "
            f"{', '.join(COMPARED)} from read_parquet('{lake}/customers/**/*.parquet')"
        )
        .fetchall()
    )
    names = ("pk", "modified_date", "extra_field", "attributes", *COMPARED)
    return {row[0]: dict(zip(names, row, strict=True)) for row in rows}


def assert_lake_is_the_server(server: IndependentOmnitron, lake: Path) -> None:
    got, want = lake_rows(lake), {r["pk"]: r for r in server.live()}
    assert sorted(got) == sorted(want), (
        f"missing {sorted(set(want) - set(got))[:5]}, deleted but kept {sorted(set(got) - set(want))[:5]}"
    )
    for pk, row in want.items():
        mine = got[pk]
        stamp = mine["modified_date"].astimezone(dt.UTC)
        assert stamp == dt.datetime.fromisoformat(row["modified_date"]), (pk, stamp)
        assert {name: mine[name] for name in COMPARED} == {name: row[name] for name in COMPARED}
        for name in ("extra_field", "attributes"):
            assert json.loads(mine[name]) == row[name], (pk, name)


def churn(rng: random.Random, server: IndependentOmnitron, edits: int, deletes: int) -> None:
    pks = server.pks()
    server.edit(rng.sample(pks, edits))
    server.delete(rng.sample(pks, deletes))
    server.add(edits // 5)


def equal_verification_bound(server: IndependentOmnitron, lake: Path) -> int:
    """What docs/guarantees.md (G9) lets a verification of an equal lake cost on a date-only
    server that ignores ``sort``: two counts compare everything before the cut's day, and the
    customers modified since that day began (midnight in the server's zone) are listed whole: a
    first answer, then pk ranges sized from its sample, at most twice the pages they fill. That
    the server takes only dates is known from the syncs: no request asks it again. The report
    must say the same number."""
    report = max(
        (lake / "_reports" / "verify").glob("*.json"), key=lambda path: path.stat().st_mtime
    )
    found = json.loads(report.read_text())
    day = dt.date.fromisoformat(found["cut"])
    midnight = dt.datetime(day.year, day.month, day.day, tzinfo=ISTANBUL)
    newer = sum(dt.datetime.fromisoformat(r["modified_date"]) >= midnight for r in server.live())
    assert found["requests"] <= 2 + 1 + 2 * math.ceil(newer / 100), found
    return int(found["requests"])


def churn_between_pages(rng: random.Random, answers: int) -> Callable[[IndependentOmnitron], None]:
    """A tenant that edits two customers, deletes one and creates none after each of the first
    ``answers`` list answers of a run."""
    left = iter(range(answers))

    def after_answer(server: IndependentOmnitron) -> None:
        if next(left, None) is not None:
            churn(rng, server, edits=2, deletes=1)

    return after_answer


@pytest.mark.e2e  # slow: runs in make test-e2e (see docs/development.md)
def test_syncs_with_churn_keep_exactly_the_servers_customers(
    server: IndependentOmnitron, tmp_path: Path
) -> None:
    """A full read, then incremental runs while customers are edited, deleted and created,
    also between the pages of a run: once the tenant is quiet, ``customers/`` holds exactly the
    server's live customers, field for field, and every run exited 0."""
    env = environment(server, tmp_path, OMNISYNC_WINDOW_ROWS="400", OMNISYNC_PAGE_SIZE="100")
    rng = random.Random(7)
    wait_past_newest(server)
    sync(env)
    assert_lake_is_the_server(server, tmp_path / "lake")
    for _ in range(3):
        churn(rng, server, edits=120, deletes=9)
        server.between_answers = churn_between_pages(rng, answers=12)
        sync(env)
        server.between_answers = None
    wait_past_newest(server)
    sync(env)
    assert_lake_is_the_server(server, tmp_path / "lake")
    assert_readers_see_one_row_per_key(tmp_path / "lake")
    before = server.list_requests
    proved = omnisync(env, "verify")
    assert proved.returncode == 0, proved.stdout + proved.stderr[-2000:]
    assert server.list_requests - before <= equal_verification_bound(server, tmp_path / "lake")
    server.delete(server.pks()[100:103])
    found = omnisync(env, "verify")
    assert found.returncode == 1, found.stdout + found.stderr[-2000:]
    assert "deleted" in found.stdout + found.stderr
    repaired = omnisync(env, "verify", "--repair")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr[-2000:]
    assert_lake_is_the_server(server, tmp_path / "lake")


def test_the_erp_write_back_patches_what_differs_and_keeps_a_persons_edit(
    server: IndependentOmnitron, tmp_path: Path
) -> None:
    env = environment(server, tmp_path)
    wait_past_newest(server)
    sync(env)
    pks = server.pks()[:80]
    erp = tmp_path / "erp.db"
    with sqlite3.connect(erp) as connection:
        connection.execute("create table erp (customer_id integer, account_no text)")
        connection.executemany("insert into erp values (?, ?)", [(pk, f"ACC-{pk}") for pk in pks])
    edited = pks[5]
    server.edit([edited], erp_code="SET-BY-A-PERSON")
    args = (
        "reconcile",
        "--erp-url",
        f"sqlite:///{erp}",
        "--erp-query",
        "select customer_id as pk, account_no as erp_code from erp",
        "--max-changes",
        "none",
    )
    done = omnisync(env, *args)
    assert done.returncode == 0, done.stderr[-3000:]
    codes = {r["pk"]: r["erp_code"] for r in server.live()}
    assert codes[edited] == "SET-BY-A-PERSON", "a person's edit was overwritten"
    assert all(codes[pk] == f"ACC-{pk}" for pk in pks if pk != edited)
    assert set(server.patches) == set(pks) - {edited}
    assert all(count == 1 for count in server.patches.values())
    again = omnisync(env, *args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert all(count == 1 for count in server.patches.values()), "a customer was patched twice"
    assert codes[edited] == "SET-BY-A-PERSON"


@pytest.mark.e2e
def test_a_killed_sync_converges_on_the_independent_server(
    server: IndependentOmnitron, tmp_path: Path
) -> None:
    """SIGKILL a full read while it stages, and an incremental while it merges: the next run
    converges, and readers never see a customer twice."""
    env = environment(
        server,
        tmp_path,
        OMNISYNC_WINDOW_ROWS="300",
        OMNISYNC_CHUNK_ROWS="120",
        OMNISYNC_PAGE_SIZE="100",
        OMNISYNC_LOCK_LEASE_SECONDS="5",
        OMNISYNC_LOG_LEVEL="DEBUG",
    )
    wait_past_newest(server)
    for category in ("staged window", "merged bucket"):
        process = start_omnisync(env, "sync")
        assert process.stderr is not None
        killed = False
        for line in process.stderr:
            match = EVENT.search(line)
            if match and match.group(1).startswith(category):
                os.killpg(process.pid, signal.SIGKILL)
                killed = True
                break
        process.wait(timeout=300)
        assert killed, f"the run ended before its first {category!r}"
        assert_readers_see_one_row_per_key(tmp_path / "lake")
        churn(random.Random(category), server, edits=200, deletes=10)
        wait_past_newest(server)
    sync(env)
    assert_lake_is_the_server(server, tmp_path / "lake")
    assert_readers_see_one_row_per_key(tmp_path / "lake")
