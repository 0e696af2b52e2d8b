"""Running a sync against the sandbox, and checking the lake against the sandbox's ground truth."""

from __future__ import annotations

import datetime as dt
import email.utils
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from omnisync.settings import Settings, load_settings
from sandbox import SandboxServer
from sandbox.records import to_us
from tests.cli_runner import run_cli
from tests.conftest import truth
from transforms.customers import Lineage, to_table
from transforms.schema import API_FIELDS

#: the test lakes hold hundreds of customers, not millions: 8 buckets of customers/ rather than
#: the default 64 keep the test suite from writing and reading 64 tiny files a sync (the suite
#: took a fifth less CPU: docs/development.md). tests/lake and the scenarios that pass no helper keep the default.
TEST_BUCKETS = 8


def settings_for(server: SandboxServer, root: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "omnitron_url": server.url,
        "omnitron_username": "sandbox",
        "omnitron_password": "sandbox",
        "lake": str(root / "lake"),
        "state_url": f"sqlite:///{root}/state.db",
        "max_rps": 2000,
        "concurrency": 4,
        # two windows at once (the default is one): what window threads share is exercised here
        "window_concurrency": 2,
        "lag_seconds": 2,
        "lookback_seconds": 30,
        "window_rows": 1500,
        "chunk_rows": 700,
        "page_size": 1000,
        "retry_attempts": 12,
        "lock_lease_seconds": 10,
        "snapshot_buckets": TEST_BUCKETS,
    }
    values.update(overrides)
    return load_settings(**values)


def subprocess_env(
    server: SandboxServer, prefect_api: str | None, **variables: str
) -> dict[str, str]:
    """The environment of an ``omnisync``/flow subprocess pointed at ``server``, and at the test
    Prefect API when ``prefect_api`` is given (without one, ``omnisync`` runs in its process)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OMNITRON_", "OMNISYNC_")) and k != "PREFECT_API_URL"
    }
    if prefect_api:
        env["PREFECT_API_URL"] = prefect_api
    env.update(
        {
            "OMNITRON_URL": server.url,
            "OMNITRON_USERNAME": "sandbox",
            "OMNITRON_PASSWORD": "sandbox",
            "PREFECT_LOGGING_LEVEL": "WARNING",
            **variables,
        }
    )
    return env


def lake_customers(lake: str) -> pa.Table:
    return pq.read_table(f"{lake}/customers").select(list(API_FIELDS)).sort_by("pk")


def expected_customers(server: SandboxServer) -> pa.Table:
    rows = truth(server)
    table = to_table(rows, Lineage("truth", dt.datetime.now(dt.UTC), "truth")).table
    return table.select(list(API_FIELDS)).sort_by("pk")


def assert_lake_matches_truth(
    server: SandboxServer, lake: str, except_pks: frozenset[int] = frozenset()
) -> None:
    """``customers/`` holds Omnitron's customers at their current versions (``except_pks``:
    customers whose current version cannot be typed, which the lake holds at an older one or
    not at all)."""
    got, want = lake_customers(lake), expected_customers(server)
    if except_pks:
        left_out = pa.array(sorted(except_pks), pa.int64())
        got, want = (
            table.filter(pc.invert(pc.is_in(table["pk"].cast(pa.int64()), left_out)))
            for table in (got, want)
        )
    missing = set(want.column("pk").to_pylist()) - set(got.column("pk").to_pylist())
    extra = set(got.column("pk").to_pylist()) - set(want.column("pk").to_pylist())
    detail = [
        (r["pk"], r["modified_date"], r["created_date"])
        for r in want.to_pylist()
        if r["pk"] in missing
    ][:5]
    assert got.num_rows == want.num_rows, (
        f"{got.num_rows} customers in the lake, {want.num_rows} in Omnitron; missing {detail}, "
        f"unexpected {sorted(extra)[:5]}"
    )
    assert got.column("pk").to_pylist() == want.column("pk").to_pylist()
    for name in API_FIELDS:
        if not got.column(name).equals(want.column(name)):
            diff = [
                (pk, a, b)
                for pk, a, b in zip(
                    want.column("pk").to_pylist(),
                    got.column(name).to_pylist(),
                    want.column(name).to_pylist(),
                    strict=True,
                )
                if a != b
            ]
            raise AssertionError(
                f"column {name} differs for {len(diff)} customers, e.g. {diff[:3]}"
            )


def assert_no_duplicate_versions(lake: str) -> None:
    duplicates = (
        duckdb.connect()
        .execute(
            f"select pk, modified_date, count(*) from read_parquet('{lake}/customer_changes/**/*.parquet') "
            "group by all having count(*) > 1 limit 5"
        )
        .fetchall()
    )
    assert duplicates == []


def wait_for_server_clock(server: SandboxServer, lag: float) -> None:
    """Wait until a run's upper bound (the server's Date header, 1 s resolution, minus the lag)
    is past the newest change, so that the next run must read every change: the program's own
    clock, not a sleep."""
    stamps = (dt.datetime.fromisoformat(r["modified_date"]) for r in truth(server))
    newest = max(s for s in stamps if s.tzinfo is not None)  # a date with no zone: unreadable
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        header = httpx.get(f"{server.url}/_sandbox/stats").headers.get("date")
        # A server that sends no Date header leaves the run on the local clock.
        clock = (
            dt.datetime.now(dt.UTC) if header is None else email.utils.parsedate_to_datetime(header)
        )
        if clock - dt.timedelta(seconds=lag) > newest:
            return
        time.sleep(0.2)
    raise AssertionError("the sandbox's clock did not pass the newest change")


ROOT = Path(__file__).resolve().parents[2]


def cli_env(
    server: SandboxServer,
    root: Path,
    prefect_api: str,
    via_prefect: bool = False,
    **variables: str,
) -> dict[str, str]:
    """The environment of ``omnisync`` run against ``server`` with its lake and state in ``root``:
    as a user runs it from a terminal (no Prefect API), or ``via_prefect`` the test API."""
    defaults = {
        "OMNISYNC_LAKE": str(root / "lake"),
        "OMNISYNC_STATE_URL": f"sqlite:///{root}/state.db",
        "OMNISYNC_MAX_RPS": "1000",
        "OMNISYNC_LOOKBACK_SECONDS": "30",
        "OMNISYNC_RETRY_ATTEMPTS": "12",
        "OMNISYNC_SNAPSHOT_BUCKETS": str(TEST_BUCKETS),
    }
    return subprocess_env(server, prefect_api if via_prefect else None, **{**defaults, **variables})


def omnisync(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run the ``omnisync`` command line as a user would, and return what it did: in this
    process (``tests/cli_runner.py``), with exactly ``env`` as its environment."""
    return run_cli(env, *args)


def omnisync_process(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``omnisync ARGS`` in a process of its own: for what one process's imports, globals and
    Prefect settings would hide."""
    return subprocess.run(
        [sys.executable, "-m", "omnisync.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def sync_ok(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``omnisync sync ARGS``, which must exit 0 (its stderr tail is the failure message)."""
    done = omnisync(env, "sync", *args)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def start_omnisync(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """``omnisync ARGS`` in a process group of its own (to signal all of it), its log lines
    readable from ``stderr`` as they come: tests act on the run's own progress."""
    return subprocess.Popen(
        [sys.executable, "-m", "omnisync.cli", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def forget_stream(url: str, stream: str = "customers") -> None:
    """Clear a shared database's state of ``stream``, so a test starts from nothing."""
    import sqlalchemy

    from omnisync.state import StateStore

    store = StateStore(url)
    store.migrate()
    with store.engine.begin() as connection:
        for table in ("omnisync_watermarks", "omnisync_locks", "omnisync_windows"):
            connection.execute(
                sqlalchemy.text(f"delete from {table} where stream = :s"), {"s": stream}
            )
    store.dispose()


def set_modified(server: SandboxServer, pk: int, at: dt.datetime, **changes: Any) -> None:
    """Give customer ``pk`` a new version at ``at`` (in the past: as if committed then)."""
    store = server.state.store
    store.put(store.by_pk[pk].replaced(changes, to_us(at)))


def current_versions(
    server: SandboxServer, below: dt.datetime | None = None
) -> set[tuple[int, str]]:
    """(pk, modified_date) of every customer in Omnitron (whose version is below ``below``)."""
    return {
        (r["pk"], r["modified_date"])
        for r in truth(server)
        if below is None or dt.datetime.fromisoformat(r["modified_date"]) < below
    }


def lake_versions(lake: str) -> set[tuple[int, str]]:
    """(pk, modified_date) of every customer in the lake's customers/, as the API renders it."""
    table = pq.read_table(f"{lake}/customers", columns=["pk", "modified_date"])
    return {
        (pk, stamp.isoformat().replace("+00:00", "Z"))
        for pk, stamp in zip(
            table.column("pk").to_pylist(), table.column("modified_date").to_pylist(), strict=True
        )
    }
