"""G3: killing the sync with SIGKILL at any moment and running again converges to the same lake,
without duplicate versions in the change log and without moving the watermark ahead of data."""

from __future__ import annotations

import datetime as dt
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq

from omnisync.state import StateStore
from sandbox import SandboxServer
from tests.conftest import truth
from tests.sync.sandbox_runs import (
    assert_lake_matches_truth,
    assert_no_duplicate_versions,
    settings_for,
    subprocess_env,
)

Make = Callable[..., SandboxServer]
ROOT = Path(__file__).resolve().parents[2]


def environment(server: SandboxServer, root: Path, prefect_api: str) -> dict[str, str]:
    return subprocess_env(
        server,
        prefect_api,
        OMNISYNC_LAKE=str(root / "lake"),
        OMNISYNC_STATE_URL=f"sqlite:///{root}/state.db",
        OMNISYNC_MAX_RPS="400",
        OMNISYNC_LAG_SECONDS="0",
        OMNISYNC_WINDOW_ROWS="400",
        OMNISYNC_CHUNK_ROWS="150",
        OMNISYNC_PAGE_SIZE="100",
        OMNISYNC_LOCK_LEASE_SECONDS="5",
    )


def test_sigkill_at_random_moments_then_rerun_converges(
    prefect_api: str, make_sandbox: Make, tmp_path: Path
) -> None:
    server = make_sandbox(customers=2500, seed=3, max_limit=100)
    env = environment(server, tmp_path, prefect_api)
    command = [sys.executable, "-m", "flows.sync_customers"]
    rng = random.Random(20261128)
    store = StateStore(f"sqlite:///{tmp_path}/state.db")
    kills = 0
    for _ in range(5):
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(rng.uniform(3.5, 10.0))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait()
        store.migrate()
        watermark = store.watermark("customers")
        if watermark is not None:
            # The watermark never runs ahead of what the lake holds (G3).
            lake_dir = tmp_path / "lake" / "customers"
            assert lake_dir.exists()
            in_lake = set(pq.read_table(lake_dir, columns=["pk"]).column("pk").to_pylist())
            covered = {
                row["pk"]
                for row in truth(server)
                if dt.datetime.fromisoformat(row["modified_date"]) <= watermark
            }
            assert covered <= in_lake, (
                f"{len(covered - in_lake)} customers below the watermark are not in the lake"
            )
    assert kills >= 2, "the test killed too few runs to mean anything"
    finished = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    settings = settings_for(server, tmp_path)
    assert_lake_matches_truth(server, settings.lake)
    assert_no_duplicate_versions(settings.lake)
    assert not list((tmp_path / "lake").rglob("*.tmp-*")), "no temporary file is left visible"
