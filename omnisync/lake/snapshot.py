"""``customers/``: the current customers, exactly one row per pk (G2).

Customers live in ``bucket=N/part.parquet`` files by ``pk % buckets``. A batch of changes is
merged only into the buckets it touches; each bucket is read, merged (latest ``modified_date``
wins), and replaced atomically. A pk lives in exactly one bucket, so a reader in the middle of a
merge sees every pk once, in its old or its new version. A crash between buckets leaves some
buckets merged and some not; merging the same batch again completes it (merging is idempotent).
Memory holds one bucket plus the batch (G4).

Bucket numbers are written plain (``bucket=7``), so that DuckDB, Polars, pyarrow, pandas and
Spark all read ``bucket`` as the same integer (zero-padded names read as the string ``'007'`` in
DuckDB and as 7 elsewhere).

The lake's record of itself (format, buckets, PII policy) is ``omnisync/lake/record.py``;
:meth:`Snapshot.ensure_current` writes it, and moves an older lake aside on a full refresh.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from omnisync.lake.errors import LakeError
from omnisync.lake.file_options import TakenRows
from omnisync.lake.record import (
    ASIDE,
    FORMAT,
    MOVED,
    REBUILD,
    RECORD,
    PolicyChanged,
    check_format,
    lake_format,
    recorded_policy,
)
from omnisync.lake.record import DATASET as DATASET  # the dataset this module keeps
from omnisync.lake.storage import LakeStorage
from transforms.pk_sets import sorted_unique
from transforms.versions import latest_per_pk, latest_rows

log = logging.getLogger("omnisync.lake")
DEFAULT_BUCKETS = 64


def visible(path: str) -> bool:
    """Whether readers see the file: they skip names (and folders) starting with ``.`` or
    ``_`` below the dataset's folder."""
    return not any(part.startswith((".", "_")) for part in path.split("/")[1:])


def bucket_path(bucket: int) -> str:
    return f"{DATASET}/bucket={bucket}/part.parquet"


class Snapshot:
    def __init__(
        self,
        storage: LakeStorage,
        buckets: int = DEFAULT_BUCKETS,
        pii_policy: Mapping[str, str] | None = None,
    ) -> None:
        self.storage = storage
        self.buckets = buckets
        #: the columns the settings hash or drop (None: a caller that does not write the lake)
        self.pii = None if pii_policy is None else recorded_policy(pii_policy)
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
        a pk in two buckets. It is recorded with the format and checked on open. Opening only
        reads (a run refused for a busy stream changes nothing, and a full refresh may still
        rebuild an older lake): the record is written by :meth:`ensure_current`, under the
        stream's lock, like every other lake change."""
        recorded = self.storage.read_json(RECORD)
        if recorded is None or recorded.get("format") != FORMAT:
            return  # a new lake, or one to refuse or rebuild: its count no longer matters
        if recorded.get("buckets") != self.buckets:
            raise LakeError(
                f"the lake's customers/ has {recorded.get('buckets')} buckets but "
                f"OMNISYNC_SNAPSHOT_BUCKETS is {self.buckets}: set it back to "
                f"{recorded.get('buckets')}, or re-sync into a new lake"
            )

    def ensure_current(self, rebuild: bool = False) -> None:
        """Make sure the lake is of :data:`FORMAT`, and written with the settings' PII policy,
        before anything is written to it. A brand-new lake gets its record. A lake of another
        format raises :class:`OldLake`, one of another policy :class:`PolicyChanged`, unless
        ``rebuild`` (a full refresh): then what omnisync wrote is moved under :data:`ASIDE`
        and the record written, so the refresh starts on an empty lake. Call it while holding
        the stream's lock. The record is written last: a rebuild interrupted half way leaves
        the lake refused, and the next full refresh moves the rest."""
        with self._layout_lock:
            if self._layout_recorded:
                return
            found = lake_format(self.storage)
            if found != FORMAT:
                if not rebuild or (found is not None and found > FORMAT):
                    check_format(self.storage)
                self._move_aside()
            record = self.storage.read_json(RECORD)
            changed = None if record is None else self._policy_change(record)
            if changed is not None:
                if not rebuild:
                    raise PolicyChanged(
                        f"the lake {self.storage.shown!r} was written with another PII policy "
                        f"than OMNISYNC_PII_POLICY for {changed}: {REBUILD}"
                    )
                self._move_aside()
                record = None
            if record is None:
                written = {"format": FORMAT, "buckets": self.buckets}
                self.storage.write_json(
                    RECORD, written if self.pii is None else {**written, "pii": self.pii}
                )
            self._layout_recorded = True

    def _policy_change(self, record: dict[str, object]) -> str | None:
        """The columns whose treatment differs between ``record`` and the settings, as
        ``email (written keep, now hash)``; None when none does (or nothing is to compare)."""
        written = record.get("pii")
        if self.pii is None:
            return None
        if not isinstance(written, dict):
            # Every lake this omnisync writes records its policy: which one wrote these files
            # cannot be told.
            return "every column (the lake records no PII policy)"
        differ = [
            f"{name} (written {written.get(name, 'keep')}, now {self.pii.get(name, 'keep')})"
            for name in sorted({*written, *self.pii})
            if written.get(name, "keep") != self.pii.get(name, "keep")
        ]
        return ", ".join(differ) or None

    def _move_aside(self) -> None:
        for folder in MOVED:
            aside = f"{ASIDE}/{folder}"
            self.storage.finish_replace(folder, aside)  # a move a crash interrupted
            if self.storage.files(folder, suffix=""):
                self.storage.replace_directory(folder, aside)
                log.warning("moved %s/ of an older lake aside to %s/", folder, aside)

    def bucket_runs(self, pks: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
        """The order that puts rows of these ``pks`` in bucket order (stable: rows keep their
        order within a bucket), and each bucket's ``(bucket, start, end)`` in that order."""
        targets = pks % self.buckets
        order = np.argsort(targets, kind="stable")
        buckets, starts = np.unique(targets[order], return_index=True)
        ends = [*starts[1:].tolist(), len(targets)] if len(starts) else []
        return order, list(zip(buckets.tolist(), starts.tolist(), ends, strict=True))

    def split(self, changes: pa.Table) -> Iterator[tuple[int, pa.Table]]:
        """``changes`` grouped by bucket (rows keep their order within a bucket)."""
        if changes.num_rows == 0:
            return
        order, runs = self.bucket_runs(changes.column("pk").to_numpy())
        grouped = changes.take(pa.array(order))
        for bucket, start, end in runs:
            yield bucket, grouped.slice(start, end - start)

    def merge_bucket(self, bucket: int, changes: pa.Table) -> int:
        """Merge ``changes`` (all of this bucket) into the bucket file, replacing it atomically;
        returns the bytes of the rows written."""
        path = bucket_path(bucket)
        with self._bucket_locks[bucket]:
            if self.storage.exists(path):
                # one choice over both: the latest of the changes is the latest among them
                # there too (the sort is stable: a tie keeps the file's row, as before)
                current = self.storage.read_table(path)
                both = pa.concat_tables([current, changes], promote_options="permissive")
            else:
                both = changes
            rows = latest_rows(both)
            self.storage.write_row_groups(path, TakenRows(both, rows).all())
            return int(both.nbytes * len(rows) / max(both.num_rows, 1))

    def replace_bucket(self, bucket: int, rows: pa.Table | None) -> None:
        """Replace the bucket file with ``rows`` (one row per pk, all of this bucket) atomically,
        or remove it when ``rows`` is None (a full refresh that found no customer there). A run
        calls :meth:`ensure_current` first, under the stream's lock."""
        path = bucket_path(bucket)
        with self._bucket_locks[bucket]:
            if rows is not None:
                self.storage.write_table(path, rows)
            elif self.storage.exists(path):
                self.storage.delete(path)

    def merge(self, changes: pa.Table, after_bucket: Callable[[int], None] | None = None) -> int:
        """Merge ``changes`` (any versions, any order); returns the number of buckets rewritten.
        A run calls :meth:`ensure_current` first, under the stream's lock."""
        rewritten = 0
        for bucket, part in self.split(latest_per_pk(changes) if changes.num_rows else changes):
            self.merge_bucket(bucket, part)
            rewritten += 1
            if after_bucket is not None:
                after_bucket(bucket)
        return rewritten

    def pks(self) -> np.ndarray:
        """Every pk in ``customers/`` as a reader of the files sees them (the files it opens:
        :func:`visible`), sorted and unique: a pk a tool wrote twice is one customer."""
        return sorted_unique(
            self.storage.read_table(f, ["pk"]).column("pk").to_numpy()
            for f in self.storage.files(DATASET)
            if visible(f)
        )

    def remove(self, pks: list[int]) -> int:
        """Remove ``pks`` from every file a reader sees, each file replaced atomically
        (idempotent: a pk already gone is no change); returns the rows removed. Not only the
        bucket a pk belongs in: a row a tool put in another file is read all the same, and a
        deletion is marked applied only once no reader sees the pk."""
        if not pks:
            return 0
        removed = 0
        gone = pa.array(sorted(set(pks)), type=pa.int64())
        by_path = {bucket_path(b): b for b in range(self.buckets)}
        for path in self.storage.files(DATASET):
            if not visible(path):
                continue
            bucket = by_path.get(path)
            with self._bucket_locks[bucket] if bucket is not None else contextlib.nullcontext():
                held = self.storage.read_table(path, ["pk"]).column("pk")
                if not pc.any(pc.is_in(held, value_set=gone)).as_py():
                    continue
                current = self.storage.read_table(path)
                kept = current.filter(pc.invert(pc.is_in(current.column("pk"), value_set=gone)))
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
