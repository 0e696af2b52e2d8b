"""A full sync against a distant server: the sandbox answers every API request 40 ms late.

One window at a time (the default) holds one window's rows; what it could lose is the overlap of
requests with the window's own work, which two windows side by side gave. The paginator keeps
two requests of a window in flight (``omnisync/client/in_flight.py``) to keep it. Printed: the
sync's wall time with the defaults, with two windows (``OMNISYNC_WINDOW_CONCURRENCY=2``), and the
bare floor's (one request at a time, by ``next`` links), each with its CPU and, for the sync, the
peak memory above the base. Then an incremental of 1,000 changes on the first lake: its wall time
against its CPU, the difference being the waits on the server that nothing overlapped (GX's
import overlaps planning's requests, ``RunContext.prepare_validator``). All in one invocation, on
one sandbox (``BENCH_LATENCY_CUSTOMERS``, 200,000 by default; ``BENCH_LATENCY_MS``, 40).
"""

from __future__ import annotations

import os
import sys
import tempfile

import httpx

from bench.machine import speed_line
from bench.sandbox_process import sandbox_process
from bench.sync import base_mib, environment, incremental_run, measured

CUSTOMERS = int(os.environ.get("BENCH_LATENCY_CUSTOMERS", "200000"))
LATENCY_MS = float(os.environ.get("BENCH_LATENCY_MS", "40"))


def main() -> None:
    print(speed_line("before"), flush=True)
    sync = [sys.executable, "-m", "omnisync.cli", "sync"]
    with sandbox_process(CUSTOMERS) as url, tempfile.TemporaryDirectory() as tmp:
        late = {"rate": 1.0, "kinds": ["slow"], "slow_seconds": LATENCY_MS / 1000}
        httpx.patch(f"{url}/_sandbox/modes", json={"faults": late}, timeout=60).raise_for_status()
        env = environment(url, f"{tmp}/floor")
        floor_wall, floor_cpu, _, _ = measured([sys.executable, "-m", "bench.floor", url], env)
        walls: list[float] = []
        for label, windows in (("one window (the default)", "1"), ("two windows", "2")):
            env = {
                **environment(url, f"{tmp}/{windows}"),
                "OMNISYNC_LOG_LEVEL": "DEBUG",
                "OMNISYNC_WINDOW_CONCURRENCY": windows,
            }
            wall, cpu, rss, said = measured(sync, env)
            above = rss - base_mib(said)
            walls.append(wall)
            print(
                f"latency: full sync of {CUSTOMERS:,}, every request {LATENCY_MS:g} ms late "
                f"(OMNISYNC_MAX_RPS {env['OMNISYNC_MAX_RPS']}), {label}: {wall:.1f} s wall, "
                f"{cpu:.1f} CPU-s, peak RSS {above:.0f} MiB above the base -> "
                f"{wall / floor_wall:.2f}x the floor's wall",
                flush=True,
            )
        wall, cpu, _, read, spent = incremental_run(url, sync, environment(url, f"{tmp}/1"))
        print(
            f"latency: incremental, 1,000 changes, every request {LATENCY_MS:g} ms late: "
            f"{wall:.2f} s wall, {cpu:.2f} CPU-s: {wall - cpu:.2f} s of wall above the process's "
            f"CPU, its threads' together: the waits nothing overlapped ({read:,} read in {spent} "
            "requests)",
            flush=True,
        )
        print(
            f"latency: the bare floor (one request at a time): {floor_wall:.1f} s wall, "
            f"{floor_cpu:.1f} CPU-s; one window took {walls[0] / walls[1]:.2f}x the wall of two",
            flush=True,
        )
    print(speed_line("after"), flush=True)


if __name__ == "__main__":
    main()
