"""``make bench``: every benchmark, each printing its figures and ratios.

Each benchmark runs in a fresh interpreter: one benchmark's memory never counts in another's
peak RSS figures (Linux counts a process's size before ``exec`` in its children's peaks).
"""

from __future__ import annotations

import subprocess
import sys

BENCHMARKS = [
    "bench.sandbox_throughput",
    "bench.sandbox_sync",
    "bench.client_cpu",
    "bench.lake_merge",
    "bench.validation",
    "bench.sync",
    "bench.latency",
    "bench.erp",
    "bench.verify",
    "bench.cli_latency",
]


def main() -> None:
    chosen = sys.argv[1:] or BENCHMARKS
    for name in chosen:
        module = name if name.startswith("bench.") else f"bench.{name}"
        print(f"== {module} ==", flush=True)
        subprocess.run([sys.executable, "-m", module], check=True)


if __name__ == "__main__":
    main()
