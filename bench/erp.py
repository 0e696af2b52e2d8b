"""ERP reconciliation figures (issue 7): planning 1M ERP rows against 1M customers, and
write-back throughput against the sandbox compared with the configured request rate."""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
import resource
import tempfile
import time
from typing import Any

import numpy as np
import pyarrow as pa
from pydantic import SecretStr

from bench.sandbox_process import sandbox_process

RATE = 100.0


def _plan(out: Any) -> None:
    from transforms.erp import plan_changes

    size = 1_000_000
    rng = np.random.default_rng(7)
    pks = np.arange(1, size + 1)
    codes = np.array([f"C{n:08d}" for n in pks], dtype=object)
    current = codes.copy()
    current[rng.choice(size, size // 10, replace=False)] = None
    customers = pa.table(
        {
            "pk": pks,
            "channel": np.ones(size, dtype=np.int64),
            "channel_code": pa.array(pks.astype(str)),
            "email": pa.array([f"u{n}@x.com" for n in pks]),
            "phone_number": pa.nulls(size, pa.string()),
            "erp_code": pa.array(current, pa.string()),
            "modified_date": pa.array(
                np.full(size, 1_700_000_000_000_000), pa.timestamp("us", tz="UTC")
            ),
        }
    )
    erp = pa.table({"pk": pa.array(pks.astype(str)), "erp_code": pa.array(codes, pa.string())})
    started = time.perf_counter()
    result = plan_changes(erp, customers, "pk")
    seconds = time.perf_counter() - started
    out.put(
        (seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, result.plan.num_rows)
    )


def plan_benchmark() -> None:
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_plan, args=(queue,))
    process.start()
    seconds, peak, planned = queue.get(timeout=900)
    process.join()
    print(
        f"erp: planning 1M ERP rows against 1M customers: {seconds:.1f} s, peak RSS {peak:,.0f} MB "
        f"({planned:,} changes planned)",
        flush=True,
    )


def writeback_benchmark() -> None:
    from omnisync.client import OmnitronClient, Throttle
    from omnisync.erp.writeback import write_back
    from omnisync.state import StateStore

    changes = 1000
    with sandbox_process(5000) as url, tempfile.TemporaryDirectory() as tmp:
        client = OmnitronClient(
            url, username="sandbox", password=SecretStr("sandbox"), throttle=Throttle(RATE, 8)
        )
        customers = [client.get_customer(pk) for pk in range(1, changes + 1)]
        plan = pa.Table.from_pylist(
            [
                {
                    "pk": c["pk"],
                    "erp_code": f"BENCH-{c['pk']}",
                    "previous_erp_code": c["erp_code"],
                    "action": "correct",
                    "match_key": "pk",
                    "match_value": str(c["pk"]),
                    "based_on_modified": dt.datetime.fromisoformat(c["modified_date"]),
                }
                for c in customers
            ]
        )
        store = StateStore(f"sqlite:///{tmp}/state.db")
        store.migrate()
        time.sleep(1.0)  # let the throttle's bucket settle after the reads above
        started = time.perf_counter()
        attempts = write_back(client, store, plan, "bench", concurrency=8)
        seconds = time.perf_counter() - started
        client.close()
    ok = sum(a.outcome == "ok" for a in attempts)
    requests = 2 * len(attempts)  # a GET to re-check, then the PATCH
    achieved = requests / seconds
    print(
        f"erp: write-back of {changes:,} changes ({ok:,} ok) in {seconds:.1f} s: {achieved:.1f} "
        f"requests/s against a configured {RATE:.0f}/s -> {achieved / RATE:.0%} (target >= 90%) "
        f"{'ok' if achieved >= 0.9 * RATE else 'BELOW'}; {ok / seconds:.1f} customers patched/s"
    )


def main() -> None:
    plan_benchmark()
    writeback_benchmark()


if __name__ == "__main__":
    main()
