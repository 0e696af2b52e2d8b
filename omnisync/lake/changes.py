"""``customer_changes/``: every customer version seen, once, partitioned by the month (UTC) of
its modified_date.

Files are named after the extraction window that produced them
(``modified_month=2024-05/part-<window>.parquet``), so writing a window again replaces its files
instead of adding to them. Versions already logged by another window (lookback overlaps) are left
out, so each (pk, modified_date) is logged once. ``_op`` says what a row records: ``upsert``, a
version read from Omnitron, or ``delete``, a customer found deleted there (its ``modified_date``
and ``_extracted_at`` are then the moment the deletion was detected, its other fields null).

A month is compacted into one file (``part-compacted.parquet``) once it is closed, and the open
month whenever it holds more than ``OPEN_MONTH_PARTS`` files: closed history costs one file a
month, and the current month stays small however often the sync runs. A reader never sees a
version twice, nor misses one, while that happens (G2 at every moment). The compacted file is
built under ``_staging/compaction/`` (outside the dataset), then swapped with the month's directory
in one atomic step (``LakeStorage.swap_directories``). Where the storage has no atomic swap
(object stores), a marker is written first, then the month's parts are removed and the compacted
file put in their place: a reader may briefly miss that month's versions but never sees one twice,
and a run interrupted in between completes the switch (``recover``) before it writes anything else.
"""

from __future__ import annotations

import datetime as dt
import logging
import posixpath
import re
import threading
from collections import defaultdict

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from omnisync.lake.file_options import TakenRows, one_chunk
from omnisync.lake.storage import LakeStorage
from omnisync.memory import give_back
from transforms.versions import unique_version_rows

log = logging.getLogger("omnisync.lake")
DATASET = "customer_changes"
PARTITION = "modified_month"
COMPACTED = "part-compacted.parquet"
COMPACTING = "_staging/compaction/customer_changes"
APPLY = "_apply.json"
#: the open month is compacted once it holds more files than this (one per run's window)
OPEN_MONTH_PARTS = 16
_MONTH = "__month"
#: what a row records: ``upsert`` (a version read) or ``delete`` (the customer was found deleted)
OP = "_op"
_WINDOW_SAFE = re.compile(r"[^0-9A-Za-z_.-]")


def window_key(lower: dt.datetime | None, upper: dt.datetime) -> str:
    """A file-name-safe, deterministic name of an extraction window."""
    lo = "start" if lower is None else lower.strftime("%Y%m%dT%H%M%S%fZ")
    return _WINDOW_SAFE.sub("_", f"{lo}--{upper.strftime('%Y%m%dT%H%M%S%fZ')}")


def _month_dir(month: str) -> str:
    return f"{DATASET}/{PARTITION}={month}"


def _by_month(table: pa.Table) -> tuple[pa.Array, np.ndarray]:
    """The row numbers of the table's unique versions sorted by month, then as a month's file
    holds them (pk, newest first); and each one's month as ``year * 100 + month`` (UTC).
    Integers, not ``YYYY-MM`` text made for every row: sorting and grouping by text was a third
    of a window's change-log time (docs/performance.md)."""
    stamps = table.column("modified_date")
    months = pc.add(pc.multiply(pc.year(stamps), 100), pc.month(stamps))
    rows = unique_version_rows(table.append_column(_MONTH, months), _MONTH)
    month_of: np.ndarray = months.take(rows).to_numpy()
    return rows, month_of


def _month_name(month: int) -> str:
    """``year * 100 + month`` as its partition value, ``YYYY-MM``."""
    return f"{month // 100:04d}-{month % 100:02d}"


def _month_end(month: str) -> dt.date:
    """The first day after ``month`` (``YYYY-MM``). A month before year 1 or after 9999 (in
    UTC), which the sync refuses now but an older one may have logged, ends before or after
    every date."""
    year, number = (int(part) for part in month.rsplit("-", 1))  # an older lake's "-001-12"
    year, number = year + number // 12, number % 12 + 1
    if year < dt.MINYEAR:
        return dt.date.min
    return dt.date(year, number, 1) if year <= dt.MAXYEAR else dt.date.max


#: said in every file's schema metadata, for readers who find a file without docs/lake.md
PARTITION_NOTE = {b"omnisync.modified_month": b"YYYY-MM of modified_date in UTC"}


def _noted(table: pa.Table) -> pa.Table:
    return table.replace_schema_metadata({**(table.schema.metadata or {}), **PARTITION_NOTE})


def _version_keys(table: pa.Table) -> tuple[pa.Array, pa.Array]:
    """Each row's (pk, modified_date) as one 16-byte value, and whether both are present."""
    pk = table.column("pk").combine_chunks().cast(pa.int64())
    stamp = table.column("modified_date").combine_chunks().cast(pa.timestamp("us", tz="UTC"))
    micros = stamp.cast(pa.int64())
    pairs = np.empty((len(pk), 2), dtype="<i8")
    pairs[:, 0] = pk.fill_null(0).to_numpy()
    pairs[:, 1] = micros.fill_null(0).to_numpy()
    keys = pa.FixedSizeBinaryArray.from_buffers(pa.binary(16), len(pk), [None, pa.py_buffer(pairs)])
    return keys, pc.and_(pk.is_valid(), micros.is_valid())


def _new(rows: pa.Table, logged: pa.Table) -> pa.Array:
    """Whether each row's (pk, modified_date) is missing from ``logged`` (a row missing either
    never matches, so it is new). A hash lookup of both keys as one value: not ``Table.join``,
    which loads Acero and ``pyarrow.dataset`` (more memory in every run that logs a version
    again) and returns rows in no defined order."""
    if not logged.num_rows or not rows.num_rows:
        return pa.array(np.ones(rows.num_rows, dtype=np.bool_))
    keys, present = _version_keys(rows)
    known, known_present = _version_keys(logged)
    return pc.invert(pc.and_(pc.is_in(keys, value_set=known.filter(known_present)), present))


def with_op(table: pa.Table) -> pa.Table:
    """``table`` with ``_op``: ``upsert`` for rows that have none (versions read)."""
    if OP in table.column_names:
        return table
    return table.append_column(OP, pa.array(["upsert"] * table.num_rows, pa.string()))


class ChangeLog:
    def __init__(self, storage: LakeStorage) -> None:
        self.storage = storage
        # Parallel windows may log into the same month: its check-then-write must not interleave.
        self._month_locks: dict[str, threading.Lock] = defaultdict(threading.Lock)
        self._guard = threading.Lock()

    def _month_lock(self, month: str) -> threading.Lock:
        with self._guard:
            return self._month_locks[month]

    def months(self) -> list[str]:
        names = {posixpath.dirname(p) for p in self.storage.files(DATASET)}
        marker = f"{PARTITION}="
        return sorted(n.split(marker, 1)[1] for n in names if marker in n)

    def _logged_keys(self, month: str, except_file: str) -> pa.Table | None:
        tables = [
            self.storage.read_table(path, columns=["pk", "modified_date"])
            for path in self.storage.files(_month_dir(month))
            if posixpath.basename(path) != except_file
        ]
        return pa.concat_tables(tables) if tables else None

    def write_window(
        self, table: pa.Table, window: str, stale_months: list[str] | None = None
    ) -> int:
        """Log the versions of one window; returns how many rows were new to the log.

        ``stale_months`` names months this window wrote before (a retry of the window) that the
        new data no longer covers: their files of this window are removed.
        """
        name = f"part-{window}.parquet"
        written = 0
        table = _noted(with_op(table))  # a window's versions; deletions come with their own
        # Each month is a slice of the sorted versions (filtering per month was O(months x rows)).
        rows_at, months = (
            _by_month(table)
            if table.num_rows
            else (pa.array([], pa.uint64()), np.array([], dtype=np.int64))
        )
        versions = TakenRows(table, rows_at)
        month_values: list[str] = []
        starts: list[int] = []
        if len(months):
            unique_months, first = np.unique(months, return_index=True)
            month_values = [_month_name(int(m)) for m in unique_months]
            starts = [int(i) for i in first]
        ends = [*starts[1:], len(months)] if starts else []  # a window with no row left
        written_months: set[str] = set()
        for month, start, end in zip(month_values, starts, ends, strict=True):
            written_months.add(month)
            rows = rows_at.slice(start, end - start)
            groups = versions.between(start, end)
            with self._month_lock(month):
                logged = self._logged_keys(month, except_file=name)
                if logged is not None and logged.num_rows:
                    keys = table.select(["pk", "modified_date"]).take(rows)
                    new = _new(keys, logged)
                    if not pc.all(new).as_py():  # some logged already: the others only
                        rows = rows.filter(new)
                        groups = TakenRows(table, rows).all()
                target = f"{_month_dir(month)}/{name}"
                if len(rows):
                    self.storage.write_row_groups(target, groups)
                    written += len(rows)
                else:
                    self.storage.delete(target)
        for month in stale_months or []:
            if month not in written_months:
                self.storage.delete(f"{_month_dir(month)}/{name}")
        return written

    def compact(self, before: dt.date) -> int:
        """Merge each month closed before ``before``, and the open month once it holds more than
        ``OPEN_MONTH_PARTS`` files, into one file; returns the months compacted.

        Call it only while no window of an open plan can write (a retried window would add its
        versions again beside the compacted file). Each month is switched from its parts to the
        compacted file in one step (see the module's docstring); a crash at any point leaves
        readers a correct month, and the next call (or ``recover``) tidies up.
        """
        self.recover()
        compacted = 0
        for month in self.months():
            files = self.storage.files(_month_dir(month))
            closed = _month_end(month) <= before
            if len(files) <= (1 if closed else OPEN_MONTH_PARTS):
                continue  # one file is as compact as a month gets
            merged = one_chunk(  # the parts' chunks go as each column is joined
                pa.concat_tables(
                    [self.storage.read_table(f) for f in files], promote_options="permissive"
                )
            )
            staged = f"{COMPACTING}/{PARTITION}={month}"
            self.storage.delete_tree(staged)
            self.storage.write_row_groups(  # in pk order
                f"{staged}/{COMPACTED}",
                TakenRows(_noted(merged), unique_version_rows(merged)).all(),
            )
            del merged
            if self.storage.swap_directories(staged, _month_dir(month)):
                self.storage.delete_tree(staged)  # the old generation, now out of sight
            else:
                self.storage.write_json(f"{staged}/{APPLY}", {"month": month})
                self._apply(month)
            compacted += 1
            log.debug("compacted month %s (%d files)", month, len(files))
            give_back()  # see omnisync/memory.py
        return compacted

    def _apply(self, month: str) -> None:
        """Replace the month's parts by the staged compacted file (no atomic swap available):
        remove the parts first, so that no version is ever visible twice. Idempotent."""
        staged = f"{COMPACTING}/{PARTITION}={month}"
        for path in self.storage.files(_month_dir(month)):
            if posixpath.basename(path) != COMPACTED:
                self.storage.delete(path)
        self.storage.copy(f"{staged}/{COMPACTED}", f"{_month_dir(month)}/{COMPACTED}")
        self.storage.delete_tree(staged)

    def recover(self) -> int:
        """Finish or discard compactions a crash interrupted; returns how many were found.

        A staged month with the marker was being switched without an atomic swap: the switch is
        completed. Any other staged month is either a compaction never switched or an old
        generation swapped out: both are discarded (the month's directory is complete either
        way). Call it while holding the stream's lock, before any window writes to the change log.
        """
        found = 0
        for name in self.storage.files(COMPACTING, suffix=APPLY):
            found += 1
            self._apply(posixpath.basename(posixpath.dirname(name)).split("=", 1)[1])
        for path in self.storage.files(COMPACTING):
            found += 1
            self.storage.delete_tree(posixpath.dirname(path))
        return found
