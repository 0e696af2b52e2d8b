"""``_staging/customers/plan=<id>/``: what the windows of a plan staged, until its merge (G5, G9).

Each window of a plan writes its rows here, beside the datasets and never inside one (readers
never see it): a file for each group of :data:`GROUP_BUCKETS` snapshot buckets, with one row group
per bucket and the buckets listed in the file's metadata. The plan's finish (``finish.py``, or
``rebuild.py`` for a full refresh) reads each bucket's groups from every window's files
(:func:`staged_by_bucket`), so a backfill rewrites each bucket once. A retried window replaces its
files.

Staging is per plan. Files of a plan the state store records as merged or abandoned belong to
no run and are removed; those of a plan that is still open, or that the store does not know,
are never removed, so no run deletes the staged rows of a plan another run may resume.

A deleted customer's staged rows are taken out of every plan's files, open ones included, when
its deletion is erased (:func:`remove_staged`): a plan finished later must not merge the
customer back into ``customers/``, and no byte of its values may stay in the lake.
"""

from __future__ import annotations

import contextlib
import logging
import posixpath
from collections.abc import Collection, Iterator
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from omnisync.lake import LakeStorage, Snapshot
from omnisync.state import StateStore
from omnisync.sync.context import STREAM

log = logging.getLogger("omnisync.sync")

STAGING = "_staging/customers"  # beside the datasets, never inside one: readers never see it
BUCKETS_KEY = b"omnisync.buckets"
#: buckets per staged file. The merge holds open the files of one group of buckets at a time: a
#: window's one file of all 64 buckets kept about 1.65 MiB of parsed Parquet metadata in memory
#: while every window's file was open, 38 MiB through a 1M sync's merge (docs/performance.md).
GROUP_BUCKETS = 8


def staging_dir(plan_id: str) -> str:
    return f"{STAGING}/plan={plan_id}"


def stage_window(
    storage: LakeStorage, snapshot: Snapshot, plan_id: str, name: str, rows: pa.Table
) -> None:
    """Stage a window's rows for the merge: a file per group of :data:`GROUP_BUCKETS` buckets
    (``<window>.g<group>.parquet``), one row group per bucket, the buckets listed in the file's
    metadata. Each group's rows are copied in bucket order on their own, not the whole window at
    once. A group the window has no row in loses the file an earlier attempt may have left."""
    folder = staging_dir(plan_id)
    # one file for every bucket, as an earlier omnisync staged a window: a retry replaces it
    storage.delete(f"{folder}/{name}.parquet")
    pks = rows.column("pk").to_numpy() if rows.num_rows else np.zeros(0, np.int64)
    order, runs = snapshot.bucket_runs(pks)
    touched = 0
    for first in range(0, snapshot.buckets, GROUP_BUCKETS):
        path = f"{folder}/{name}.g{first // GROUP_BUCKETS:02d}.parquet"
        group = [run for run in runs if first <= run[0] < first + GROUP_BUCKETS]
        if not group:
            storage.delete(path)
            continue
        lo, hi = group[0][1], group[-1][2]
        part = rows.take(pa.array(order[lo:hi]))
        buckets = [bucket for bucket, _, _ in group]
        metadata = {**(rows.schema.metadata or {}), BUCKETS_KEY: orjson.dumps(buckets)}
        storage.write_row_groups(
            path,
            [
                part.slice(start - lo, end - start).replace_schema_metadata(metadata)
                for _, start, end in group
            ],
            scratch=True,
        )
        touched += len(buckets)
        del part
    log.debug("staged window %s: %d rows in %d bucket(s)", name, rows.num_rows, touched)


def staged_buckets(file: Any) -> list[int]:
    """The bucket of each row group of a staged window file (``stage_window``)."""
    buckets: list[int] = orjson.loads(file.schema_arrow.metadata[BUCKETS_KEY])
    return buckets


def without_staging_metadata(rows: pa.Table) -> pa.Table:
    metadata = {k: v for k, v in (rows.schema.metadata or {}).items() if k != BUCKETS_KEY}
    return rows.replace_schema_metadata(metadata or None)


def staged_by_bucket(
    storage: LakeStorage, plan_id: str, buckets: int
) -> Iterator[tuple[int, list[pa.Table]]]:
    """Each bucket's staged row groups, bucket by bucket (every bucket, with an empty list where
    the plan staged none). The files of one group of buckets are open at a time, so the parsed
    metadata held is a group's, not every window's; a file of any layout is read by the buckets
    its metadata lists (a window staged by an earlier omnisync in one file is opened for each
    group)."""
    listed: dict[str, list[int]] = {}
    for name in storage.files(staging_dir(plan_id)):
        with storage.parquet_file(name) as file:
            listed[name] = staged_buckets(file)
    for first in range(0, buckets, GROUP_BUCKETS):
        group = range(first, min(first + GROUP_BUCKETS, buckets))
        names = [name for name, held in listed.items() if set(held) & set(group)]
        with contextlib.ExitStack() as stack:
            opened = [(name, stack.enter_context(storage.parquet_file(name))) for name in names]
            # each file's own list: one replaced since it was listed is read as it is now
            held_now = [(name, file, staged_buckets(file)) for name, file in opened]
            for bucket in group:
                rows = []
                for name, file, held in held_now:
                    if bucket in held:
                        with storage.reading(name):  # on one thread, as read_table
                            rows.append(file.read_row_group(held.index(bucket), use_threads=False))
                yield bucket, [without_staging_metadata(part) for part in rows]


def remove_finished_staging(storage: LakeStorage, store: StateStore) -> None:
    """Remove the staged files of plans the state store records as merged or abandoned (a run
    that stopped before removing its own, or the plan a full refresh just abandoned). A plan
    that is over belongs to no run: one that lost its lock and still works on it is refused at
    its next change to the lake, whatever is left of its staging."""
    plans = {
        posixpath.basename(posixpath.dirname(path)).removeprefix("plan=")
        for path in storage.files(STAGING, suffix="")
        if posixpath.basename(posixpath.dirname(path)).startswith("plan=")
    }
    for plan_id in sorted(store.plans.finished(STREAM, sorted(plans))):
        storage.delete_tree(staging_dir(plan_id))


def remove_staged(storage: LakeStorage, pks: Collection[int]) -> int:
    """Take the rows of ``pks`` out of every staged window file, keeping its layout (a row
    group per bucket, the buckets in its metadata); a file left with no row goes. Each file is
    replaced atomically; one without such a row is not rewritten. Returns the files changed."""
    wanted = pa.array(sorted({int(pk) for pk in pks}), pa.int64())
    changed = 0
    for path in storage.files(STAGING):
        with storage.parquet_file(path) as file:
            if "pk" not in file.schema_arrow.names:
                continue
            with storage.reading(path):
                held = file.read(columns=["pk"]).column("pk")
            if not pc.any(pc.is_in(held, value_set=wanted)).as_py():
                continue
            buckets = staged_buckets(file)
            with storage.reading(path):
                groups = [file.read_row_group(index) for index in range(file.num_row_groups)]
        kept = [
            (bucket, group.filter(pc.invert(pc.is_in(group.column("pk"), value_set=wanted))))
            for bucket, group in zip(buckets, groups, strict=True)
        ]
        kept = [(bucket, group) for bucket, group in kept if group.num_rows]
        changed += 1
        if not kept:
            storage.delete(path)
            continue
        metadata = {
            **(groups[0].schema.metadata or {}),
            BUCKETS_KEY: orjson.dumps([bucket for bucket, _ in kept]),
        }
        storage.write_row_groups(
            path, [group.replace_schema_metadata(metadata) for _, group in kept], scratch=True
        )
    return changed
