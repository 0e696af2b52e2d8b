"""Lake writer figures: merging 1,000 changes into snapshots of 100k and 1M customers,
and writing 1M customers in full, each against a bare pyarrow floor; and a window's staging as
Arrow IPC (a local lake's) against Parquet (a remote lake's).

Each measured step runs in a fresh process, so its peak RSS is its own (interpreter and imports
included, the same for the floor).
"""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
import os
import resource
import statistics
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


def _staging(table: pa.Table, root: str) -> None:
    """A 40,000-row window staged and read back, as Arrow IPC (a local lake's) and as Parquet
    (a remote lake's), alternating: CPU medians of five each, and the bytes on disk."""
    from omnisync.lake import LakeStorage, Snapshot
    from omnisync.sync.staging import GROUP_BUCKETS, IPC, PARQUET, open_staged, write_staged

    window = table.slice(0, 40_000)
    storage = LakeStorage(root)
    snapshot = Snapshot(storage, buckets=BUCKETS)
    order, runs = snapshot.bucket_runs(window.column("pk").to_numpy())
    groups = [
        [run for run in runs if first <= run[0] < first + GROUP_BUCKETS]
        for first in range(0, BUCKETS, GROUP_BUCKETS)
    ]
    figures: dict[str, list[tuple[float, float]]] = {IPC: [], PARQUET: []}
    for run in range(10):
        suffix = IPC if run % 2 == 0 else PARQUET
        names = [f"staged/{run}/g{number}{suffix}" for number in range(len(groups))]
        started = time.process_time()
        for name, group in zip(names, groups, strict=True):
            lo, hi = group[0][1], group[-1][2]
            part = window.take(pa.array(order[lo:hi]))
            parts = [part.slice(start - lo, end - start) for _, start, end in group]
            write_staged(storage, name, [bucket for bucket, _, _ in group], parts)
        wrote = time.process_time() - started
        started = time.process_time()
        for name in names:
            with open_staged(storage, name) as file:
                for index in range(len(file.buckets)):
                    file.read(index)
        figures[suffix].append((wrote, time.process_time() - started))
    sizes = {
        suffix: sum(
            os.path.getsize(f"{root}/staged/{run}/{n}") for n in os.listdir(f"{root}/staged/{run}")
        )
        for suffix, run in ((IPC, 0), (PARQUET, 1))
    }
    (aw, ar), (pw, pr) = (
        (statistics.median(w for w, _ in figures[k]), statistics.median(r for _, r in figures[k]))
        for k in (IPC, PARQUET)
    )
    print(
        f"lake: a 40,000-row window staged and read back: Arrow IPC {aw * 1000:.0f} + "
        f"{ar * 1000:.0f} ms CPU, {sizes[IPC] / 2**20:.1f} MiB; Parquet {pw * 1000:.0f} + "
        f"{pr * 1000:.0f} ms CPU, {sizes[PARQUET] / 2**20:.1f} MiB -> Arrow IPC "
        f"{(aw + ar) / (pw + pr):.2f}x the CPU, {sizes[IPC] / sizes[PARQUET]:.1f}x the bytes"
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        _staging(customers_table(40_000), f"{tmp}/staging")
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
