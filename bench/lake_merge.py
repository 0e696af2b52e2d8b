"""Lake writer figures: merging 1,000 changes into snapshots of 100k and 1M customers,
and writing 1M customers in full, each against a bare pyarrow floor.

Each measured step runs in a fresh process, so its peak RSS is its own (interpreter and imports
included, the same for the floor).
"""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

BUCKETS = 64


def customers_table(count: int) -> pa.Table:
    """``count`` typed customers: 50k real seed rows, tiled with fresh pks."""
    from sandbox.seed import seed_customers
    from transforms.customers import Lineage, to_table

    lineage = Lineage("bench", dt.datetime.now(dt.UTC), "bench")
    base = to_table([c.data for c in seed_customers(min(count, 50_000), 7)], lineage).table
    parts, offset = [], 0
    while offset < count:
        part = base.slice(0, min(base.num_rows, count - offset))
        part = part.set_column(0, "pk", pa.array(np.arange(offset + 1, offset + part.num_rows + 1)))
        parts.append(part)
        offset += part.num_rows
    return pa.concat_tables(parts).cast(base.schema)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _merge(root: str, changes_path: str, out: Any) -> None:
    from omnisync.lake import LakeStorage, Snapshot

    changes = pq.read_table(changes_path)
    started = time.perf_counter()
    rewritten = Snapshot(LakeStorage(root), buckets=BUCKETS).merge(changes)
    out.put((time.perf_counter() - started, _peak_mb(), rewritten))


def _floor_merge(root: str, changes_path: str, out: Any) -> None:
    """Bare pyarrow: per touched bucket, read it, drop the changed pks, append the changes,
    write it (the same files, the same compression)."""
    changes = pq.read_table(changes_path)
    started = time.perf_counter()
    targets = changes.column("pk").to_numpy() % BUCKETS
    buckets = np.unique(targets)
    for bucket in buckets.tolist():
        path = Path(root) / "customers" / f"bucket={bucket}" / "part.parquet"
        table = pq.read_table(path)
        mine = changes.filter(pa.array(targets == bucket))
        kept = table.filter(pc.invert(pc.is_in(table.column("pk"), value_set=mine.column("pk"))))
        merged = pa.concat_tables([kept, mine.cast(kept.schema)])
        pq.write_table(merged, str(path) + ".floor", compression="zstd")
    out.put((time.perf_counter() - started, _peak_mb(), len(buckets)))


def _full_write(path: str, root: str, out: Any) -> None:
    from omnisync.lake import LakeStorage, Snapshot

    table = pq.read_table(path)
    started = time.perf_counter()
    Snapshot(LakeStorage(root), buckets=BUCKETS).merge(table)
    out.put((time.perf_counter() - started, _peak_mb(), BUCKETS))


def _floor_write(path: str, root: str, out: Any) -> None:
    table = pq.read_table(path)
    started = time.perf_counter()
    pq.write_table(table, f"{root}/all.parquet", compression="zstd")
    out.put((time.perf_counter() - started, _peak_mb(), 1))


def in_child(target: Any, *args: str) -> tuple[float, float, int]:
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=target, args=(*args, queue))
    process.start()
    result: tuple[float, float, int] = queue.get(timeout=600)
    process.join()
    return result


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for size in (100_000, 1_000_000):
            table = customers_table(size)
            source = f"{tmp}/source-{size}.parquet"
            pq.write_table(table, source)
            root = f"{tmp}/lake-{size}"
            seconds, peak, _ = in_child(_full_write, source, root)
            if size == 1_000_000:
                floor_s, floor_peak, _ = in_child(_floor_write, source, tmp)
                print(
                    f"lake: full write of 1M customers into {BUCKETS} buckets: {seconds:.2f} s, "
                    f"peak {peak:.0f} MB; bare pq.write_table: {floor_s:.2f} s, peak "
                    f"{floor_peak:.0f} MB -> {seconds / floor_s:.2f}x time"
                )
            rng = np.random.default_rng(1)
            picked = table.take(pa.array(rng.choice(size, 1000, replace=False)))
            bumped = pc.add(picked.column("modified_date"), pa.scalar(dt.timedelta(days=1)))
            changes = picked.set_column(
                picked.schema.get_field_index("modified_date"),
                picked.schema.field("modified_date"),
                bumped,
            )
            changes_path = f"{tmp}/changes-{size}.parquet"
            pq.write_table(changes, changes_path)
            seconds, peak, touched = in_child(_merge, root, changes_path)
            floor_s, floor_peak, _ = in_child(_floor_merge, root, changes_path)
            print(
                f"lake: merge 1,000 changes into {size:,} customers ({touched} buckets): "
                f"{seconds:.2f} s, peak {peak:.0f} MB; bare pyarrow read, merge and write of those "
                f"files: {floor_s:.2f} s, peak {floor_peak:.0f} MB -> {seconds / floor_s:.2f}x "
                f"time (goal at 1M <= 1.3x)"
            )
            del table


if __name__ == "__main__":
    main()
