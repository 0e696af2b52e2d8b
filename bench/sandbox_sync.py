"""What the sandbox costs a full sync (issue 27): the sandbox's own CPU per 100k customers while
``omnisync sync`` reads everything (filtered, counted pk-range queries), its memory once seeded,
how long seeding takes, and the sync's wall time against its own CPU time.

The sandbox runs in its own process; its CPU and memory are read from ``/proc``, the sync is
measured as ``bench.sync`` measures it. ``BENCH_SANDBOX_SIZES=100000`` measures one size.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

from bench.sandbox_process import cpu_seconds, peak_rss_mib, rss_mib, sandbox_child
from bench.sync import environment, measured

SIZES = tuple(int(n) for n in os.environ.get("BENCH_SANDBOX_SIZES", "100000,1000000").split(","))
#: the sync's wall time may be at most this many times its own CPU time (2 cores, issue 27)
WALL_PER_CPU_GOAL = 1.5
RSS_GOAL_1M_MIB = 2048


def main() -> None:
    sync = [sys.executable, "-m", "omnisync.cli", "sync"]
    with tempfile.TemporaryDirectory() as tmp:
        for size in SIZES:
            started = time.perf_counter()
            with sandbox_child(size) as (url, pid):
                seeded = time.perf_counter() - started
                seed_cpu, resident = cpu_seconds(pid), rss_mib(pid)
                print(
                    f"sandbox_sync: {size:,} customers seeded in {seeded:.1f} s "
                    f"({seed_cpu:.1f} CPU-s with start-up), RSS {resident:,.0f} MiB"
                    + (
                        f" (goal <= {RSS_GOAL_1M_MIB:,}: "
                        f"{'ok' if resident <= RSS_GOAL_1M_MIB else 'OVER'})"
                        if size == 1_000_000
                        else ""
                    ),
                    flush=True,
                )
                env = environment(url, f"{tmp}/{size}")
                before = cpu_seconds(pid)
                wall, cpu, rss, _ = measured(sync, env)
                served = cpu_seconds(pid) - before
                ratio = wall / cpu
                print(
                    f"sandbox_sync: full sync of {size:,}: sandbox {served:.1f} CPU-s "
                    f"({served / size * 100_000:.2f} CPU-s per 100k customers), sandbox peak RSS "
                    f"{peak_rss_mib(pid):,.0f} MiB; sync {wall:.1f} s wall, {cpu:.1f} CPU-s, "
                    f"peak RSS {rss:,.0f} MiB -> wall {ratio:.2f}x the sync's CPU (goal <= "
                    f"{WALL_PER_CPU_GOAL}x: {'ok' if ratio <= WALL_PER_CPU_GOAL else 'OVER'})",
                    flush=True,
                )


if __name__ == "__main__":
    main()
