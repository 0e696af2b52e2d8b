"""``customer_changes/``: every customer version seen, once, partitioned by day of modified_date.

Files are named after the extraction window that produced them
(``modified_day=2024-05-01/part-<window>.parquet``), so writing a window again replaces its files
instead of adding to them. Versions already logged by another window (lookback overlaps) are left
out, so each (pk, modified_date) is logged once.

Closed days are compacted into one file, and a reader never sees a version twice, nor misses
one, while that happens (G2 at every moment). The compacted file is built under
``_staging/compaction/`` (outside the dataset), then swapped with the day's directory in one
atomic step (``LakeStorage.swap_directories``). Where the storage has no atomic swap (object
stores), a marker is written first, then the day's parts are removed and the compacted file put in
its place: a reader may briefly miss that day's versions but never sees one twice, and a run
interrupted in between completes the switch (``recover``) before it writes anything else.
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

from omnisync.lake.storage import LakeStorage
from transforms.versions import unique_versions

log = logging.getLogger("omnisync.lake")
DATASET = "customer_changes"
COMPACTED = "part-compacted.parquet"
COMPACTING = "_staging/compaction/customer_changes"
APPLY = "_apply.json"
_WINDOW_SAFE = re.compile(r"[^0-9A-Za-z_.-]")


def window_key(lower: dt.datetime | None, upper: dt.datetime) -> str:
    """A file-name-safe, deterministic name of an extraction window."""
    lo = "start" if lower is None else lower.strftime("%Y%m%dT%H%M%S%fZ")
    return _WINDOW_SAFE.sub("_", f"{lo}--{upper.strftime('%Y%m%dT%H%M%S%fZ')}")


def _day_dir(day: str) -> str:
    return f"{DATASET}/modified_day={day}"


def _days_of(table: pa.Table) -> np.ndarray:
    days: np.ndarray = pc.strftime(table.column("modified_date"), format="%Y-%m-%d").to_numpy(
        zero_copy_only=False
    )
    return days


def _not_in(rows: pa.Table, logged: pa.Table) -> pa.Table:
    """Rows whose (pk, modified_date) is not in ``logged`` (joins on the keys alone, since
    Arrow joins cannot carry list columns)."""
    keys = rows.select(["pk", "modified_date"]).append_column(
        "__row", pa.array(np.arange(rows.num_rows), pa.int64())
    )
    fresh = keys.join(logged, keys=["pk", "modified_date"], join_type="left anti")
    return rows.take(fresh.column("__row").combine_chunks())


class ChangeLog:
    def __init__(self, storage: LakeStorage) -> None:
        self.storage = storage
        # Parallel windows may log into the same day: its check-then-write must not interleave.
        self._day_locks: dict[str, threading.Lock] = defaultdict(threading.Lock)
        self._guard = threading.Lock()

    def _day_lock(self, day: str) -> threading.Lock:
        with self._guard:
            return self._day_locks[day]

    def days(self) -> list[str]:
        names = {posixpath.dirname(p) for p in self.storage.files(DATASET)}
        return sorted(n.split("modified_day=", 1)[1] for n in names if "modified_day=" in n)

    def _logged_keys(self, day: str, except_file: str) -> pa.Table | None:
        tables = [
            self.storage.read_table(path, columns=["pk", "modified_date"])
            for path in self.storage.files(_day_dir(day))
            if posixpath.basename(path) != except_file
        ]
        return pa.concat_tables(tables) if tables else None

    def write_window(
        self, table: pa.Table, window: str, stale_days: list[str] | None = None
    ) -> int:
        """Log the versions of one window; returns how many rows were new to the log.

        ``stale_days`` names days this window wrote before (a retry of the window) that the new
        data no longer covers: their files of this window are removed.
        """
        name = f"part-{window}.parquet"
        versions = unique_versions(table) if table.num_rows else table
        written = 0
        days = _days_of(versions) if versions.num_rows else np.array([], dtype=object)
        # Group by day once (sort, then slice): filtering per day was O(days x rows).
        order = np.argsort(days, kind="stable")
        versions, days = versions.take(pa.array(order)), days[order]
        day_values: list[str] = []
        starts: list[int] = []
        if len(days):
            unique_days, first = np.unique(days, return_index=True)
            day_values, starts = [str(d) for d in unique_days], [int(i) for i in first]
        ends = [*starts[1:], len(days)]
        written_days: set[str] = set()
        for day, start, end in zip(day_values, starts, ends, strict=True):
            written_days.add(day)
            rows = versions.slice(start, end - start)
            with self._day_lock(day):
                logged = self._logged_keys(day, except_file=name)
                if logged is not None and logged.num_rows:
                    rows = _not_in(rows, logged)
                target = f"{_day_dir(day)}/{name}"
                if rows.num_rows:
                    self.storage.write_table(target, rows.sort_by([("pk", "ascending")]))
                    written += rows.num_rows
                else:
                    self.storage.delete(target)
        for day in stale_days or []:
            if day not in written_days:
                self.storage.delete(f"{_day_dir(day)}/{name}")
        return written

    def compact(self, before: dt.date) -> int:
        """Merge the files of each day earlier than ``before`` into one; returns days compacted.

        Each day is switched from its parts to the compacted file in one step (see the module's
        docstring); a crash at any point leaves readers a correct day, and the next call (or
        ``recover``) tidies up.
        """
        self.recover()
        compacted = 0
        for day in self.days():
            if dt.date.fromisoformat(day) >= before:
                continue
            files = self.storage.files(_day_dir(day))
            if len(files) <= 1:
                continue  # one file is as compact as a day gets
            merged = unique_versions(
                pa.concat_tables(
                    [self.storage.read_table(f) for f in files], promote_options="permissive"
                )
            )
            staged = f"{COMPACTING}/modified_day={day}"
            self.storage.delete_tree(staged)
            self.storage.write_table(f"{staged}/{COMPACTED}", merged.sort_by([("pk", "ascending")]))
            if self.storage.swap_directories(staged, _day_dir(day)):
                self.storage.delete_tree(staged)  # the old generation, now out of sight
            else:
                self.storage.write_json(f"{staged}/{APPLY}", {"day": day})
                self._apply(day)
            compacted += 1
            log.debug("compacted day %s (%d files)", day, len(files))
        return compacted

    def _apply(self, day: str) -> None:
        """Replace the day's parts by the staged compacted file (no atomic swap available):
        remove the parts first, so that no version is ever visible twice. Idempotent."""
        staged = f"{COMPACTING}/modified_day={day}"
        for path in self.storage.files(_day_dir(day)):
            if posixpath.basename(path) != COMPACTED:
                self.storage.delete(path)
        self.storage.copy(f"{staged}/{COMPACTED}", f"{_day_dir(day)}/{COMPACTED}")
        self.storage.delete_tree(staged)

    def recover(self) -> int:
        """Finish or discard compactions a crash interrupted; returns how many were found.

        A staged day with the marker was being switched without an atomic swap: the switch is
        completed. Any other staged day is either a compaction never switched or an old
        generation swapped out: both are discarded (the day's directory is complete either way).
        Call it while holding the stream's lock, before any window writes to the change log.
        """
        found = 0
        for name in self.storage.files(COMPACTING, suffix=APPLY):
            found += 1
            self._apply(posixpath.basename(posixpath.dirname(name)).split("=", 1)[1])
        for path in self.storage.files(COMPACTING):
            found += 1
            self.storage.delete_tree(posixpath.dirname(path))
        return found
