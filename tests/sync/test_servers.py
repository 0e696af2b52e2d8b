"""G1 on servers that differ from the sandbox's defaults only where Omnitron's API promises nothing
(docs/omnitron-api.md), end to end through ``omnisync sync``: a date-only server east or west of
UTC, a server that ignores ``sort`` and caps ``limit``, and a run that finds an interrupted plan.

Every run that exits 0 must have read every customer below its own upper bound (the server's
clock minus the lag), not only eventually.
"""

from __future__ import annotations

import datetime as dt
import email.utils
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from omnisync.sync import open_run, sync_window
from sandbox import SandboxServer
from tests.flows import sync_customers
from tests.sync.sandbox_runs import (
    assert_lake_matches_truth,
    assert_no_duplicate_versions,
    cli_env,
    current_versions,
    lake_versions,
    set_modified,
    settings_for,
    sync_ok,
    wait_for_server_clock,
)
from tests.sync.steps import plan_for

Make = Callable[..., SandboxServer]


def server_now(server: SandboxServer) -> dt.datetime:
    header = httpx.get(f"{server.url}/_sandbox/stats").headers["date"]
    return email.utils.parsedate_to_datetime(header)


@pytest.mark.e2e  # slow: runs in make test-e2e (see docs/development.md)
@pytest.mark.parametrize("offset", [3.0, -5.0], ids=["UTC+3", "UTC-5"])
def test_a_date_only_server_in_any_time_zone_loses_nothing_at_midnight_boundaries(
    prefect_api: str, make_sandbox: Make, tmp_path: Path, offset: float
) -> None:
    """Customers every few minutes over one day; runs whose upper bound falls at 02:30Z (the
    next run's lower bound is then inside the first hours of the day, which a UTC-5 server
    starts at 05:00Z) and at 21:45Z (after an UTC+3 server's midnight, 21:00Z)."""
    server = make_sandbox(customers=3000, seed=5, date_only_filters=True, utc_offset_hours=offset)
    now = server_now(server)
    day = dt.datetime(now.year, now.month, now.day, tzinfo=dt.UTC) - dt.timedelta(days=2)
    for i, pk in enumerate(range(1, 3000, 7)):
        set_modified(server, pk, day + dt.timedelta(minutes=3.3 * i, seconds=i % 60))
    for cut in (day + dt.timedelta(hours=2, minutes=30), day + dt.timedelta(hours=21, minutes=45)):
        lag = (server_now(server) - cut).total_seconds()
        env = cli_env(
            server, tmp_path, prefect_api, OMNISYNC_LAG_SECONDS=str(lag), OMNISYNC_WINDOW_ROWS="300"
        )
        sync_ok(env)
        below = current_versions(server, below=cut)
        missing = below - lake_versions(str(tmp_path / "lake"))
        assert not missing, f"{len(missing)} customers below the run's upper bound are missing"
    wait_for_server_clock(server, 0)
    sync_ok(cli_env(server, tmp_path, prefect_api, OMNISYNC_LAG_SECONDS="0"))
    assert_lake_matches_truth(server, str(tmp_path / "lake"))
    assert_no_duplicate_versions(str(tmp_path / "lake"))


def test_a_server_that_ignores_sort_and_caps_limit_loses_nothing(
    prefect_api: str, make_sandbox: Make, tmp_path: Path
) -> None:
    server = make_sandbox(customers=3001, seed=9, ignore_sort=True, max_limit=70, shuffle_ties=True)
    server.admin.post("modify", json={"count": 400, "same_timestamp": True})
    env = cli_env(server, tmp_path, prefect_api, OMNISYNC_LAG_SECONDS="0")
    wait_for_server_clock(server, 0)
    sync_ok(env)
    assert_lake_matches_truth(server, str(tmp_path / "lake"))
    server.admin.post("modify", json={"count": 150, "same_timestamp": True})
    server.admin.post("create", json={"count": 20})
    wait_for_server_clock(server, 0)
    sync_ok(env)
    assert_lake_matches_truth(server, str(tmp_path / "lake"))
    assert_no_duplicate_versions(str(tmp_path / "lake"))


def test_a_run_that_finishes_an_interrupted_plan_then_reads_up_to_its_own_start(
    prefect_api: str, make_sandbox: Make, tmp_path: Path
) -> None:
    server = make_sandbox(customers=2000, seed=4)
    settings = settings_for(server, tmp_path, lag_seconds=0, window_rows=400)
    with open_run(settings, "interrupted") as parts:
        parts.snapshot.ensure_current()  # as a run does before it plans
        plan = plan_for(parts)
        assert len(plan.windows) > 2
        sync_window(parts, plan.plan_id, *plan.windows[0])  # then the process died
    server.admin.post("modify", json={"count": 80})
    server.admin.post("create", json={"count": 10})
    wait_for_server_clock(server, 0)
    sync_ok(cli_env(server, tmp_path, prefect_api, OMNISYNC_LAG_SECONDS="0"))
    assert_lake_matches_truth(server, settings.lake)
    assert_no_duplicate_versions(settings.lake)


@pytest.mark.e2e  # slow: runs in make test-e2e (see docs/development.md)
@pytest.mark.parametrize("skew", [20.0, None], ids=["date-header-20s-ahead", "no-date-header"])
def test_a_skewed_or_missing_date_header_loses_nothing(
    prefect_api: str, make_sandbox: Make, tmp_path: Path, skew: float | None
) -> None:
    """A run's upper bound comes from the server's Date header, which Omnitron's API does not
    promise (docs/omnitron-api.md). A web server whose clock runs ahead of the database's is covered by the lookback;
    no header at all falls back to the local clock."""
    server = make_sandbox(customers=1500, seed=6, writers_per_second=30, date_skew_seconds=skew)
    settings = settings_for(server, tmp_path, lag_seconds=2, lookback_seconds=30)
    for _ in range(3):
        sync_customers(settings=settings)
        server.admin.post("modify", json={"count": 40})
    server.admin.post("quiesce")
    wait_for_server_clock(server, settings.lag_seconds)
    sync_customers(settings=settings)
    assert_lake_matches_truth(server, settings.lake)
    assert_no_duplicate_versions(settings.lake)
