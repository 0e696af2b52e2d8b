"""The sync end to end (issue 6): a full sync of 100k and 1M customers from the sandbox, and an
incremental run with 1,000 changes on the 1M-customer lake; throughput and peak memory.

The sandbox runs in its own process and each sync in a fresh child process (the real
``python -m flows.sync_customers`` against a Prefect test API), so a child's peak RSS is the
sync's own: interpreter, Prefect client, GX and the data.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.sandbox_process import sandbox_process

ROOT = Path(__file__).resolve().parents[1]


def run_sync(url: str, root: str, prefect_api: str) -> tuple[float, float]:
    """Seconds and peak RSS (MB) of one ``python -m flows.sync_customers`` run."""
    env = {
        **os.environ,
        "PREFECT_API_URL": prefect_api,
        "OMNITRON_URL": url,
        "OMNITRON_USERNAME": "sandbox",
        "OMNITRON_PASSWORD": "sandbox",
        "OMNISYNC_LAKE": f"{root}/lake",
        "OMNISYNC_STATE_URL": f"sqlite:///{root}/state.db",
        "OMNISYNC_MAX_RPS": "100000",
        "OMNISYNC_LAG_SECONDS": "0",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "flows.sync_customers"], cwd=ROOT, env=env)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    if status != 0:
        raise RuntimeError(f"the sync failed with status {status}")
    return elapsed, usage.ru_maxrss / 1024


def main() -> None:
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    peaks: dict[int, float] = {}
    with prefect_test_harness(), tempfile.TemporaryDirectory() as tmp:
        api = str(PREFECT_API_URL.value())
        for size in (100_000, 1_000_000):
            with sandbox_process(size) as url:
                root = f"{tmp}/{size}"
                seconds, peak = run_sync(url, root, api)
                peaks[size] = peak
                print(
                    f"sync: full sync of {size:,} customers: {seconds:.1f} s, "
                    f"{size / seconds:,.0f} customers/s, peak RSS {peak:,.0f} MB",
                    flush=True,
                )
                if size == 1_000_000:
                    httpx.post(f"{url}/_sandbox/modify", json={"count": 1000}, timeout=60)
                    time.sleep(1.2)  # the server clock has 1 s resolution: let the changes age
                    seconds, peak = run_sync(url, root, api)
                    print(
                        f"sync: incremental run with 1,000 changes on a 1M-customer lake: "
                        f"{seconds:.1f} s, peak RSS {peak:,.0f} MB",
                        flush=True,
                    )
    ratio = peaks[1_000_000] / peaks[100_000]
    print(
        f"sync: peak memory 1M / 100k = {ratio:.2f}x (target < 1.3x) "
        f"{'ok' if ratio < 1.3 else 'OVER'}"
    )


if __name__ == "__main__":
    main()
