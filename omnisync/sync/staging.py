"""``_staging/customers/plan=<id>/``: what the windows of a plan staged, until its merge (G5, G9).

Each window of a plan writes its rows to one file here, beside the datasets and never inside one
(readers never see it), with one row group per snapshot bucket and the buckets listed in the
file's metadata; the plan's finish (``finish.py``, or ``rebuild.py`` for a full refresh) reads
each bucket's groups from every window's file, so a backfill rewrites each bucket once. A retried
window replaces its file.

Staging is per plan. Files of a plan the state store records as merged or abandoned belong to
no run and are removed; those of a plan that is still open, or that the store does not know,
are never removed, so no run deletes the staged rows of a plan another run may resume.

A deleted customer's staged rows are taken out of every plan's files, open ones included, when
its deletion is erased (:func:`remove_staged`): a plan finished later must not merge the
customer back into ``customers/``, and no byte of its values may stay in the lake.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Collection
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from omnisync.lake import LakeStorage, Snapshot
from omnisync.state import StateStore
from omnisync.sync.context import STREAM

log = logging.getLogger("omnisync.sync")

STAGING = "_staging/customers"  # beside the datasets, never inside one: readers never see it
BUCKETS_KEY = b"omnisync.buckets"


def staging_dir(plan_id: str) -> str:
    return f"{STAGING}/plan={plan_id}"


def stage_window(
    storage: LakeStorage, snapshot: Snapshot, plan_id: str, name: str, rows: pa.Table
) -> None:
    """Stage a window's rows for the merge: one file, one row group per snapshot bucket, the
    buckets listed in the file's metadata (64 files per chunk before: 640 per 100k rows)."""
    groups = list(snapshot.split(rows))
    if not groups:
        storage.delete(f"{staging_dir(plan_id)}/{name}.parquet")
        return
    metadata = {**(rows.schema.metadata or {}), BUCKETS_KEY: orjson.dumps([b for b, _ in groups])}
    storage.write_row_groups(
        f"{staging_dir(plan_id)}/{name}.parquet",
        [part.replace_schema_metadata(metadata) for _, part in groups],
        scratch=True,
    )
    log.debug("staged window %s: %d rows in %d bucket(s)", name, rows.num_rows, len(groups))


def staged_buckets(file: Any) -> list[int]:
    """The bucket of each row group of a staged window file (``stage_window``)."""
    buckets: list[int] = orjson.loads(file.schema_arrow.metadata[BUCKETS_KEY])
    return buckets


def without_staging_metadata(rows: pa.Table) -> pa.Table:
    metadata = {k: v for k, v in (rows.schema.metadata or {}).items() if k != BUCKETS_KEY}
    return rows.replace_schema_metadata(metadata or None)


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
