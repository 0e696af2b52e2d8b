"""G2 and G3 under SIGKILL: killing ``omnisync sync`` (its whole process group) at any step, in
incremental runs and full refreshes, never leaves a reader a duplicate, never moves the watermark
ahead of the data, and one final run converges to the ground truth.

Kill points come from the run's own progress (its DEBUG log lines: planned, typed chunk,
staged window, window done, merged bucket, compacted month), never from a sleep, so the test means the same on a slow
machine. What happens between two steps (a rename, a swap, a commit) is covered step by step in
``tests/lake/test_switches.py``.

Eleven ``omnisync sync`` processes, each paying its own imports: the scenario runs in
``make test-e2e`` (which ``.ci/run`` runs after ``make test``), not in ``make test``.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import re
import signal
from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from omnisync.state import StateStore
from sandbox import SandboxServer
from tests.conftest import truth
from tests.sync.sandbox_runs import (
    assert_lake_matches_truth,
    assert_no_duplicate_versions,
    cli_env,
    settings_for,
    start_omnisync,
    wait_for_server_clock,
)

Make = Callable[..., SandboxServer]
EVENT = re.compile(
    r"omnisync\.\w+ - (planned|typed chunk|staged window|window \[.*\) done|merged bucket"
    r"|compacted month)"
)
CATEGORIES = (
    "planned",
    "typed chunk",
    "staged window",
    "window",
    "merged bucket",
    "compacted month",
)


def environment(server: SandboxServer, root: Path) -> dict[str, str]:
    return cli_env(
        server,
        root,
        "",  # runs in its own process, with no Prefect API
        OMNISYNC_MAX_RPS="400",
        OMNISYNC_LAG_SECONDS="0",
        OMNISYNC_WINDOW_ROWS="400",
        OMNISYNC_CHUNK_ROWS="150",
        OMNISYNC_PAGE_SIZE="100",
        OMNISYNC_LOCK_LEASE_SECONDS="5",
        OMNISYNC_LOG_LEVEL="DEBUG",
    )


def run_until(
    env: dict[str, str], args: list[str], category: str, occurrence: int, command: str = "sync"
) -> bool:
    """Run ``omnisync COMMAND ARGS``; SIGKILL its process group right after the
    ``occurrence``-th progress line of ``category``. True if it was killed, False if it
    finished first."""
    process = start_omnisync(env, command, *args)
    assert process.stderr is not None
    seen = 0
    killed = False
    tail: list[str] = []
    for line in process.stderr:
        tail = [*tail[-40:], line]
        match = EVENT.search(line)
        if match and match.group(1).startswith(category):
            seen += 1
            if seen == occurrence:
                os.killpg(process.pid, signal.SIGKILL)
                killed = True
                break
    process.wait(timeout=300)
    if not killed:
        assert process.returncode == 0, "".join(tail)
    return killed


def assert_readers_see_one_row_per_key(lake: Path) -> None:
    """What DuckDB and pyarrow see right now: one row per pk in customers/, one row per version
    in customer_changes/."""
    if (lake / "customers").exists():
        pks = pq.read_table(lake / "customers", columns=["pk"]).column("pk").to_pylist()
        assert len(pks) == len(set(pks)), "pyarrow sees a customer twice"
        twice = (
            duckdb.connect()
            .execute(
                f"select pk from read_parquet('{lake}/customers/**/*.parquet') group by pk "
                "having count(*) > 1"
            )
            .fetchall()
        )
        assert twice == [], f"DuckDB sees customers twice: {twice[:5]}"
    if (lake / "customer_changes").exists():
        versions = pq.read_table(lake / "customer_changes", columns=["pk", "modified_date"])
        keys = list(
            zip(*(versions.column(n).to_pylist() for n in ("pk", "modified_date")), strict=True)
        )
        assert len(keys) == len(set(keys)), "pyarrow sees a version twice"
        assert_no_duplicate_versions(str(lake))


@pytest.mark.e2e
def test_sigkill_at_every_kind_of_step_then_rerun_converges(
    make_sandbox: Make, tmp_path: Path
) -> None:
    server = make_sandbox(customers=2500, seed=3, max_limit=100)
    env = environment(server, tmp_path)
    store = StateStore(f"sqlite:///{tmp_path}/state.db")
    rng = random.Random(20261129)
    schedule: list[tuple[list[str], str, int]] = [
        ([], "compacted month", 1),  # the first full read, killed while compacting
        ([], "typed chunk", 1),  # an incremental, killed in its window
        ([], "staged window", 1),  # killed after staging, before the window is done
        (["--full-refresh"], "window", 3),  # a full refresh, killed between windows
        # resumes the full refresh, killed in the merge: after 4 of the test lake's 8 buckets
        ([], "merged bucket", 5),
        ([], "planned", 1),  # finishes it, then killed right after planning anew
        (["--full-refresh"], "typed chunk", 5),
    ]
    fixed = len(schedule)  # each of these kill points must be reached
    schedule += [([], rng.choice(CATEGORIES), rng.randint(1, 12)) for _ in range(3)]
    kills = 0
    for step, (args, category, occurrence) in enumerate(schedule):
        server.admin.post("modify", json={"count": 60})
        server.admin.post("create", json={"count": 5})
        killed = run_until(env, args, category, occurrence)
        assert killed or step >= fixed, f"never reached {category!r} #{occurrence}"
        kills += killed
        assert_readers_see_one_row_per_key(tmp_path / "lake")
        store.migrate()
        watermark = store.watermarks.get("customers")
        if watermark is not None:
            # The watermark never runs ahead of what the lake holds (G3).
            in_lake = set(
                pq.read_table(tmp_path / "lake" / "customers", columns=["pk"])
                .column("pk")
                .to_pylist()
            )
            covered = {
                row["pk"]
                for row in truth(server)
                if dt.datetime.fromisoformat(row["modified_date"]) <= watermark
            }
            assert covered <= in_lake, (
                f"{len(covered - in_lake)} customers below the watermark are missing"
            )
    assert kills >= 6, "the schedule's kill points were reached"
    wait_for_server_clock(server, 0)
    assert not run_until(env, [], "never", 1)
    settings = settings_for(server, tmp_path)
    assert_lake_matches_truth(server, settings.lake)
    assert_no_duplicate_versions(settings.lake)
    assert not list((tmp_path / "lake").rglob("*.tmp-*")), "no temporary file is left visible"
    assert not list((tmp_path / "lake" / "_staging").rglob("*.parquet")), "staging is cleared"
