"""``make bench``: every benchmark, each printing its figures and ratios."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = [
    "bench.sandbox_throughput",
    "bench.client_cpu",
    "bench.lake_merge",
    "bench.validation",
    "bench.sync",
    "bench.erp",
]


def main() -> None:
    chosen = sys.argv[1:] or BENCHMARKS
    for name in chosen:
        module = importlib.import_module(name if name.startswith("bench.") else f"bench.{name}")
        print(f"== {module.__name__} ==", flush=True)
        module.main()


if __name__ == "__main__":
    main()
