"""``customers/``: the current customers, exactly one row per pk (G2).

Customers live in ``bucket=N/part.parquet`` files by ``pk % buckets``. A batch of changes is
merged only into the buckets it touches; each bucket is read, merged (latest ``modified_date``
wins), and replaced atomically. A pk lives in exactly one bucket, so a reader in the middle of a
merge sees every pk once, in its old or its new version. A crash between buckets leaves some
buckets merged and some not; merging the same batch again completes it (merging is idempotent).
Memory holds one bucket plus the batch (G4).

Bucket numbers are written plain (``bucket=7``), so that DuckDB, Polars, pyarrow, pandas and
Spark all read ``bucket`` as the same integer (zero-padded names read as the string ``'007'`` in
DuckDB and as 7 elsewhere). ``recover`` moves a lake an earlier omnisync wrote with padded names,
once, by building the renamed dataset under ``_staging/`` and switching it into place whole.
"""

from __future__ import annotations

import logging
import posixpath
import re
import threading
from collections.abc import Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from omnisync.lake.storage import LakeError, LakeStorage
from transforms.schema import with_json_types
from transforms.versions import latest_per_pk

log = logging.getLogger("omnisync.lake")
DATASET = "customers"
DEFAULT_BUCKETS = 64
# Outside the dataset's folder: a non-Parquet file inside it breaks pl.scan_parquet("customers/").
LAYOUT = f"_meta/{DATASET}-layout.json"
OLD_LAYOUT = f"{DATASET}/_layout.json"  # where lakes written before kept it
RELAYOUT = "_staging/relayout/customers"
_BUCKET_DIR = re.compile(r"/bucket=(\d+)/")


def bucket_path(bucket: int) -> str:
    return f"{DATASET}/bucket={bucket}/part.parquet"


class Snapshot:
    def __init__(self, storage: LakeStorage, buckets: int = DEFAULT_BUCKETS) -> None:
        self.storage = storage
        self.buckets = buckets
        # Windows merge from parallel threads: a bucket's read-merge-replace must not interleave,
        # or the later writer drops the earlier one's rows (a lost update). One process per
        # stream is guaranteed by the state store's lock (G5), so thread locks suffice.
        self._bucket_locks = [threading.Lock() for _ in range(buckets)]
        # Parallel windows merge at once: the layout is recorded by one of them, once.
        self._layout_lock = threading.Lock()
        self._layout_recorded = False
        self._check_layout()

    def _check_layout(self) -> None:
        """The bucket count is part of the layout: a lake written with another count would put
        a pk in two buckets. It is recorded in ``_meta/customers-layout.json`` (beside the
        datasets, never inside one) and checked on open. Opening only reads (a run refused for a
        busy stream changes nothing): the record is written by :meth:`recover` and :meth:`merge`,
        under the stream's lock, like every other lake change."""
        recorded = self.storage.read_json(LAYOUT) or self.storage.read_json(OLD_LAYOUT)
        if recorded is not None and recorded.get("buckets") != self.buckets:
            raise LakeError(
                f"the lake's customers/ has {recorded.get('buckets')} buckets but "
                f"OMNISYNC_SNAPSHOT_BUCKETS is {self.buckets}: set it back to "
                f"{recorded.get('buckets')}, or re-sync into a new lake"
            )

    def _record_layout(self) -> None:
        with self._layout_lock:
            if self._layout_recorded:
                return
            if self.storage.read_json(LAYOUT) is None:
                old = self.storage.read_json(OLD_LAYOUT)
                if old is not None:
                    self.storage.write_json(LAYOUT, old)  # out of the dataset's folder
                    self.storage.delete(OLD_LAYOUT)
                elif not self.storage.files(DATASET):
                    # A lake from before the layout file keeps trusting the configured count.
                    self.storage.write_json(LAYOUT, {"buckets": self.buckets})
            self._layout_recorded = True

    def recover(self) -> int:
        """Give zero-padded bucket folders (``bucket=007``) their plain names, in one switch;
        returns 1 if it did (or finished an interrupted switch), else 0. Call it while holding
        the stream's lock, before anything is merged; it also records the layout."""
        self._record_layout()
        if self.storage.finish_replace(RELAYOUT, DATASET):
            return 1
        files = self.storage.files(DATASET)
        padded = [f for f in files if (m := _BUCKET_DIR.search(f)) and m[1] != str(int(m[1]))]
        self.storage.delete_tree(RELAYOUT)  # a build never switched, or the old generation
        if not padded:
            return 0
        for path in files:
            match = _BUCKET_DIR.search(path)
            if match is None:
                continue
            name = posixpath.basename(path)
            self.storage.copy(path, f"{RELAYOUT}/bucket={int(match[1])}/{name}")
        self.storage.replace_directory(RELAYOUT, DATASET)
        log.info("renamed %d bucket folders of customers/ to plain numbers", len(padded))
        return 1

    def split(self, changes: pa.Table) -> Iterator[tuple[int, pa.Table]]:
        """``changes`` grouped by bucket (rows keep their order within a bucket)."""
        if changes.num_rows == 0:
            return
        targets = changes.column("pk").to_numpy() % self.buckets
        order = np.argsort(targets, kind="stable")
        grouped, targets = changes.take(pa.array(order)), targets[order]
        buckets, starts = np.unique(targets, return_index=True)
        ends = [*starts[1:].tolist(), len(targets)]
        for bucket, start, end in zip(buckets.tolist(), starts.tolist(), ends, strict=True):
            yield bucket, grouped.slice(start, end - start)

    def merge_bucket(self, bucket: int, changes: pa.Table) -> None:
        """Merge ``changes`` (all of this bucket) into the bucket file, replacing it atomically."""
        path = bucket_path(bucket)
        with self._bucket_locks[bucket]:
            # rows staged by an earlier omnisync hold JSON as plain strings: type them as now
            incoming = latest_per_pk(with_json_types(changes))
            if self.storage.exists(path):
                current = self.storage.read_table(path)
                incoming = latest_per_pk(
                    pa.concat_tables([current, incoming], promote_options="permissive")
                )
            self.storage.write_table(path, incoming)

    def replace_bucket(self, bucket: int, rows: pa.Table | None) -> None:
        """Replace the bucket file with ``rows`` (one row per pk, all of this bucket) atomically,
        or remove it when ``rows`` is None (a full refresh that found no customer there)."""
        self._record_layout()
        path = bucket_path(bucket)
        with self._bucket_locks[bucket]:
            if rows is not None:
                self.storage.write_table(path, rows)
            elif self.storage.exists(path):
                self.storage.delete(path)

    def merge(self, changes: pa.Table, after_bucket: Callable[[int], None] | None = None) -> int:
        """Merge ``changes`` (any versions, any order); returns the number of buckets rewritten."""
        self._record_layout()  # before the first bucket a count could be wrong for
        rewritten = 0
        for bucket, part in self.split(latest_per_pk(changes) if changes.num_rows else changes):
            self.merge_bucket(bucket, part)
            rewritten += 1
            if after_bucket is not None:
                after_bucket(bucket)
        return rewritten

    def pks(self) -> np.ndarray:
        """Every pk in ``customers/``, sorted, as a reader of the files sees them."""
        arrays = [
            self.storage.read_table(f, ["pk"]).column("pk").to_numpy()
            for f in self.storage.files(DATASET)
        ]
        return np.sort(np.concatenate(arrays)) if arrays else np.array([], dtype=np.int64)

    def remove(self, pks: list[int]) -> int:
        """Remove ``pks`` from their buckets, each bucket replaced atomically (idempotent: a pk
        already gone is no change); returns the rows removed."""
        removed = 0
        by_bucket: dict[int, list[int]] = {}
        for pk in pks:
            by_bucket.setdefault(pk % self.buckets, []).append(pk)
        for bucket, gone in sorted(by_bucket.items()):
            path = bucket_path(bucket)
            with self._bucket_locks[bucket]:
                if not self.storage.exists(path):
                    continue
                current = self.storage.read_table(path)
                keep = pc.invert(pc.is_in(current.column("pk"), value_set=pa.array(gone)))
                kept = current.filter(keep)
                if kept.num_rows != current.num_rows:
                    self.storage.write_table(path, kept)
                    removed += current.num_rows - kept.num_rows
        return removed

    def read(self, columns: list[str] | None = None) -> pa.Table:
        """The whole snapshot (for tests and small lakes; analysts read the files directly)."""
        files = self.storage.files(DATASET)
        if not files:
            raise FileNotFoundError("the snapshot is empty")
        return pa.concat_tables(
            [self.storage.read_table(f, columns) for f in files], promote_options="permissive"
        )
