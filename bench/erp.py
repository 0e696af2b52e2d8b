"""ERP reconciliation figures: planning 1M ERP rows against 1M customers, and
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
import pyarrow.compute as pc
from pydantic import SecretStr

from bench.sandbox_process import sandbox_process

RATE = 100.0


PLAN_SIZE = 1_000_000


def _inputs(size: int) -> tuple[pa.Table, pa.Table]:
    """1M customers (a tenth without a code) and an ERP export naming every one (Arrow-built:
    the inputs cost what Arrow columns cost, not Python objects)."""
    rng = np.random.default_rng(7)
    pks = pa.array(np.arange(1, size + 1))
    codes = pc.binary_join_element_wise("C", pc.utf8_lpad(pc.cast(pks, pa.string()), 8, "0"), "")
    blank = np.zeros(size, dtype=bool)
    blank[rng.choice(size, size // 10, replace=False)] = True
    customers = pa.table(
        {
            "pk": pks,
            "channel": pa.array(np.ones(size, dtype=np.int64)),
            "channel_code": pc.cast(pks, pa.string()),
            "email": pc.binary_join_element_wise("u", pc.cast(pks, pa.string()), "@x.com", ""),
            "phone_number": pa.nulls(size, pa.string()),
            "erp_code": pc.if_else(pa.array(blank), pa.scalar(None, pa.string()), codes),
            "modified_date": pa.array(
                np.full(size, 1_700_000_000_000_000), pa.timestamp("us", tz="UTC")
            ),
        }
    )
    erp = pa.table({"pk": pc.cast(pks, pa.string()), "erp_code": codes})
    return erp, customers


def _floor(erp: pa.Table, customers: pa.Table) -> int:
    """The bare floor: one DuckDB join of the same tables on pk, differing codes out as Arrow."""
    import duckdb

    with duckdb.connect() as db:
        db.register("e", erp)
        db.register("c", customers)
        found = db.sql(
            "select c.pk, e.erp_code, c.erp_code as previous, c.modified_date from e "
            "join c on cast(e.pk as bigint) = c.pk where c.erp_code is distinct from e.erp_code"
        ).to_arrow_table()
    return found.num_rows


def _plan(out: Any, bare: bool) -> None:
    from transforms.erp.planning import plan_changes

    erp, customers = _inputs(PLAN_SIZE)
    inputs = _rss_now()
    started = time.perf_counter()
    planned = _floor(erp, customers) if bare else plan_changes(erp, customers, "pk").plan.num_rows
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out.put((seconds, inputs, peak, planned))


def _rss_now() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def _in_fresh_process(bare: bool) -> tuple[float, float, float, int]:
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_plan, args=(queue, bare))
    process.start()
    result: tuple[float, float, float, int] = queue.get(timeout=900)
    process.join()
    return result


def plan_benchmark() -> None:
    floor_s, _, floor_peak, floor_rows = _in_fresh_process(bare=True)
    seconds, inputs, peak, planned = _in_fresh_process(bare=False)
    assert planned == floor_rows, (planned, floor_rows)
    print(
        f"erp: planning 1M ERP rows against 1M customers: {seconds:.1f} s (goal <= 10 s) "
        f"{'ok' if seconds <= 10 else 'OVER'}; bare DuckDB join of the same tables "
        f"{floor_s:.1f} s -> {seconds / floor_s:.1f}x the floor; peak RSS {peak:,.0f} MB "
        f"(goal <= 1,024 MB) {'ok' if peak <= 1024 else 'OVER'}, inputs {inputs:,.0f} MB, "
        f"floor's peak {floor_peak:,.0f} MB -> {peak / floor_peak:.2f}x "
        f"({planned:,} changes planned)",
        flush=True,
    )


def writeback_benchmark() -> None:
    """1,000 changes at a configured 100 requests/s: requests per patched customer (the change
    guard's listings included) and the rate achieved against the configured one."""
    import httpx

    from omnisync.client import OmnitronClient, Throttle
    from omnisync.erp.change_guard import ChangeGuard
    from omnisync.erp.writeback import write_back
    from omnisync.state import StateStore

    changes = 1000
    with sandbox_process(5000) as url, tempfile.TemporaryDirectory() as tmp:
        truth = httpx.get(f"{url}/_sandbox/truth", timeout=60).json()["results"]
        since = min(dt.datetime.fromisoformat(c["modified_date"]) for c in truth)
        customers = truth[:changes]
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
        client = OmnitronClient(
            url, username="sandbox", password=SecretStr("sandbox"), throttle=Throttle(RATE, 8)
        )
        # The first listing reads every customer changed since the snapshot's watermark; here
        # the watermark is the oldest customer's, so it lists all 5,000 (a worst case).
        guard = ChangeGuard(client, since, dt.timedelta(seconds=60), page_size=1000)
        before = httpx.get(f"{url}/_sandbox/stats", timeout=60).json()["requests"]
        started = time.perf_counter()
        attempts = write_back(client, store, plan, "bench", concurrency=8, guard=guard)
        seconds = time.perf_counter() - started
        after = httpx.get(f"{url}/_sandbox/stats", timeout=60).json()["requests"]
        client.close()
    ok = sum(a.outcome == "ok" for a in attempts)
    requests = sum(after.values()) - sum(before.values())
    per = requests / max(ok, 1)
    achieved = requests / seconds
    print(
        f"erp: write-back of {changes:,} changes ({ok:,} ok) in {seconds:.1f} s: {requests:,} "
        f"requests = {per:.3f} per patched customer (goal <= 1.1; a re-read per change made it "
        f"2.0) {'ok' if per <= 1.1 else 'OVER'}; {achieved:.1f} requests/s against a configured "
        f"{RATE:.0f}/s -> {achieved / RATE:.0%}; {ok / seconds:.1f} customers patched/s"
    )


def main() -> None:
    plan_benchmark()
    writeback_benchmark()


if __name__ == "__main__":
    main()
