"""``_staging/customers/plan=<id>/``: what the windows of a plan staged, until its merge (G5, G9).

Staging is per plan. Files of a plan the state store records as merged or abandoned belong to
no run and are removed; those of a plan that is still open, or that the store does not know,
are never removed, so no run deletes the staged rows of a plan another run may resume.

A deleted customer's staged rows are taken out of every plan's files, open ones included, when
its deletion is erased (:func:`remove_staged`): a plan finished later must not merge the
customer back into ``customers/``, and no byte of its values may stay in the lake.
"""

from __future__ import annotations

import posixpath
from collections.abc import Collection

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from omnisync.lake import LakeStorage
from omnisync.state import StateStore
from omnisync.sync.parts import STAGING, STREAM
from omnisync.sync.window import BUCKETS_KEY, staged_buckets, staging_dir


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
            held = file.read(columns=["pk"]).column("pk")
            if not pc.any(pc.is_in(held, value_set=wanted)).as_py():
                continue
            buckets = staged_buckets(file)
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
