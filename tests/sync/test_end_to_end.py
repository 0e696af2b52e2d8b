"""G1-G3 end to end: real Prefect flow runs against the sandbox's hardest modes, over real HTTP."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from omnisync.state import StateStore
from sandbox import SandboxServer
from tests.conftest import truth
from tests.flows import sync_customers
from tests.sync.sandbox_runs import (
    assert_lake_matches_truth,
    assert_no_duplicate_versions,
    settings_for,
    wait_for_server_clock,
)

Make = Callable[..., SandboxServer]
HARD_MODES = {
    "writers_per_second": 40,
    "writer_create_share": 0.3,
    "shuffle_ties": True,
    "late_commit_seconds": 0.8,
    "max_limit": 300,
    "token_max_requests": 40,
    "faults": {"rate": 0.08, "retry_after_seconds": 0, "slow_seconds": 0.05, "seed": 5},
}


# Date-only filters at UTC are the same code path as at UTC+3 (tests/sync/test_servers.py runs
# date-only servers east and west of UTC): the date-only server here is also the hardest one.
SERVERS = {
    "datetime-filters": {},
    "date-only-utc+3-sort-ignored": {
        "date_only_filters": True,
        "utc_offset_hours": 3,
        "ignore_sort": True,
    },
}


@pytest.mark.e2e  # slow: runs in make test-e2e (see docs/development.md)
@pytest.mark.parametrize("server_modes", SERVERS.values(), ids=SERVERS.keys())
def test_incremental_syncs_under_every_hard_mode_converge_to_the_ground_truth(
    prefect_api: str, make_sandbox: Make, tmp_path: Path, server_modes: dict[str, object]
) -> None:
    server = make_sandbox(customers=3000, seed=11, **server_modes, **HARD_MODES)
    # More customers share one modified_date than fit on a (capped) page.
    server.admin.post("modify", json={"count": 900, "same_timestamp": True})
    settings = settings_for(server, tmp_path)
    first = sync_customers(settings=settings)
    assert first["read"] > 1000, "the seed customers, older than the lag, are read at once"
    for _ in range(2):
        time.sleep(0.7)  # let the live writers change things between runs
        sync_customers(settings=settings)
    server.admin.post("quiesce")
    wait_for_server_clock(server, settings.lag_seconds)
    sync_customers(settings=settings)
    assert_lake_matches_truth(server, settings.lake)
    assert_no_duplicate_versions(settings.lake)
    stats = server.admin.get("stats").json()
    assert stats["faults_injected"], "the faults were really injected"
    store = StateStore(settings.state_url.get_secret_value())
    newest = max(row["modified_date"] for row in truth(server))
    watermark = store.watermarks.get("customers")
    assert watermark is not None and watermark.isoformat().replace("+00:00", "Z") == newest
    assert [run["status"] for run in store.runs.recent()] == ["succeeded"] * 4
