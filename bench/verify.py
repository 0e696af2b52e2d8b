"""``omnisync verify`` at scale: its list requests on an equal lake, on a lake with 15
differences, and for ``verify --repair`` after it, as a share of a full read's list requests (the
full sync that wrote the lake).

The lake is written by ``omnisync sync`` from a sandbox in its own process, then damaged behind
omnisync's back: 5 customers' rows removed, 5 rolled back to the version before their latest
change, and 5 rows of customers Omnitron does not have (as if deleted there). Requests are the
sandbox's own count. It runs at 1,000,000 customers and at 50,000 (the size issue 25 states its
bound at: verify and repair together at most 60% of a full read); ``BENCH_VERIFY_SIZES`` (say
``50000``) chooses others.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bench.sandbox_process import sandbox_process
from bench.sync import ROOT, environment

SIZES = tuple(int(n) for n in os.environ.get("BENCH_VERIFY_SIZES", "1000000,50000").split(","))
LIST = "GET /api/v1/customers/"


def list_requests(url: str) -> int:
    return int(httpx.get(f"{url}/_sandbox/stats", timeout=60).json()["requests"].get(LIST, 0))


def omnisync(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "omnisync.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def buckets(lake: str) -> list[Path]:
    return sorted(Path(lake, "customers").glob("bucket=*/part.parquet"))


def damage(lake: str, removed: list[int], old_rows: pa.Table, strangers: list[int]) -> None:
    """Remove ``removed``, put ``old_rows`` back in place of the current rows of their pks, and
    add rows for ``strangers``: each bucket file rewritten as a tool outside omnisync would."""
    rolled = old_rows["pk"]
    for number, path in enumerate(buckets(lake)):
        table = pq.read_table(path)
        drop = pa.array(removed + rolled.to_pylist(), type=table.schema.field("pk").type)
        kept = table.filter(pc.invert(pc.is_in(table["pk"], drop)))
        mine = old_rows.filter(pc.is_in(old_rows["pk"], table["pk"]))
        parts = [kept, mine.select(kept.schema.names).cast(kept.schema)]
        if number == 0:
            extra = table.slice(0, len(strangers))
            pks = pa.array(strangers, type=table.schema.field("pk").type)
            pk_index = table.schema.get_field_index("pk")
            parts.append(extra.set_column(pk_index, "pk", pks).cast(kept.schema))
        pq.write_table(pa.concat_tables(parts), path)


def main() -> None:
    shares = [measure(size) for size in SIZES]
    print(
        "verify + repair as a share of a full read: "
        + ", ".join(
            f"{size:,} customers {share:.0%}" for size, share in zip(SIZES, shares, strict=True)
        ),
        flush=True,
    )


def measure(size: int) -> float:
    """One size's figures, printed; returns verify + repair's share of the full read."""
    with tempfile.TemporaryDirectory() as tmp, sandbox_process(size) as url:
        env = environment(url, tmp)
        lake = f"{tmp}/lake"
        before = list_requests(url)
        done = omnisync(env, "sync")
        assert done.returncode == 0, done.stderr[-2000:]
        full_read = list_requests(url) - before

        before = list_requests(url)
        equal = omnisync(env, "verify")
        equal_cost = list_requests(url) - before
        assert equal.returncode == 0, equal.stderr[-2000:]

        table = pq.read_table(f"{lake}/customers", columns=["pk"])
        pks = table["pk"].to_pylist()
        step = len(pks) // 11
        removed = [pks[step * i] for i in range(1, 6)]
        rolled = [pks[step * i + 1] for i in range(6, 11)]
        old_rows = pq.read_table(
            f"{lake}/customers", filters=[("pk", "in", rolled)]
        )  # the versions before their latest change
        httpx.post(f"{url}/_sandbox/modify", json={"pks": rolled}, timeout=60)
        time.sleep(1.2)  # the server's clock has 1 s resolution: let the changes age
        done = omnisync(env, "sync")
        assert done.returncode == 0, done.stderr[-2000:]
        strangers = [max(pks) + 1000 + i for i in range(5)]
        damage(lake, removed, old_rows, strangers)

        before = list_requests(url)
        different = omnisync(env, "verify")
        different_cost = list_requests(url) - before
        line = " ".join(different.stdout.split())
        assert different.returncode == 1, line
        before = list_requests(url)
        repaired = omnisync(env, "verify", "--repair")
        repair_cost = list_requests(url) - before
        assert repaired.returncode == 0, repaired.stderr[-2000:]
        before = list_requests(url)
        again = omnisync(env, "verify")
        again_cost = list_requests(url) - before
        assert again.returncode == 0, again.stderr[-2000:]
        together = different_cost + repair_cost
        print(
            f"verify: {size:,} customers; a full read took {full_read:,} list requests; "
            f"equal lake: {equal_cost} list requests ({equal_cost / full_read:.2%} of it); "
            f"15 differences: verify {different_cost} list requests "
            f"({different_cost / full_read:.2%}), then verify --repair {repair_cost} (re-read "
            f"and verify again): together {together} ({together / full_read:.2%}); a verify "
            f"after the repair: {again_cost}\n  {line}",
            flush=True,
        )
        return together / full_read


if __name__ == "__main__":
    main()
