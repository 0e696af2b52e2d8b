"""Staged files beyond a plan's own reading of them: those of plans that are over are removed,
and a resumed plan's file that cannot be read is not a dead end: its window is read again.

A window's staged rows are a copy of what Omnitron answered for ``[lo, hi)``; its versions are
in ``customer_changes/`` already (a window written again replaces its own files there). Reading
the window again when its staged file is damaged is what a window left pending gets: the
customers now in ``[lo, hi)`` at their current versions, and those modified since (now after
the plan's upper bound) from the next run. Before, the only way on was a full refresh, every
customer read again for one file.
"""

from __future__ import annotations

import logging
import posixpath
import re

import pyarrow as pa

from omnisync.lake import LakeStorage
from omnisync.lake.changes import window_key
from omnisync.lake.errors import NO_WINDOW, LakeDamaged
from omnisync.state import Fence, StateStore
from omnisync.state.times import from_us
from omnisync.sync.context import STREAM
from omnisync.sync.quarantined import MARKS_SUFFIX
from omnisync.sync.staging import STAGING, checked_buckets, staged_files, staging_dir
from transforms.quarantine_marks import MARK_SCHEMA

log = logging.getLogger("omnisync.sync")
_GROUP = re.compile(r"\.g\d+$")


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


def window_of(name: str) -> str:
    """The window a staged file is of (``window_key``): its name without group and suffix."""
    return _GROUP.sub("", posixpath.basename(name).rsplit(".", 1)[0])


def read_damaged_again(
    storage: LakeStorage,
    store: StateStore,
    plan_id: str,
    buckets: int,
    fence: Fence | None,
    schema: pa.Schema,
) -> int:
    """Read every file plan ``plan_id`` staged, its quarantine marks too (a Parquet file's
    every page, whose CRCs only a read checks; the rows of ``schema``, the lake's); the windows
    of those that cannot be read are pending again, to be read by this run, and lose all their
    staged files. Returns how many.
    Raises :class:`LakeDamaged` for a file of no window of the plan (nothing reads it again).
    Stopped anywhere, it leaves each such window pending or its files as they were: the window
    is reopened before its files go (a review: the other order, stopped in between, left a
    window done with no rows to merge, and the next run finished the plan without them)."""
    folder = staging_dir(plan_id)
    damaged: dict[str, LakeDamaged] = {}
    marks = storage.files(folder, suffix=MARKS_SUFFIX)
    for name in [*staged_files(storage, folder), *marks]:
        try:
            if name.endswith(MARKS_SUFFIX):
                _checked_marks(storage, name)
            else:
                checked_buckets(storage, name, buckets, schema)
        except LakeDamaged as exc:
            damaged.setdefault(window_of(name), exc)
    if not damaged:
        return 0
    planned = {
        window_key(None if w.lo_us == 0 else from_us(w.lo_us), from_us(w.hi_us)): w
        for w in store.plans.windows(STREAM, plan_id)
    }
    for key, error in damaged.items():
        window = planned.get(key)
        if window is None or window.status not in ("pending", "done"):
            raise LakeDamaged(error.relative, error.shown, error.reason, NO_WINDOW)
    for key, error in sorted(damaged.items()):
        store.plans.reopen_window(STREAM, plan_id, planned[key].lo_us, fence=fence)
        for name in [*staged_files(storage, folder), *storage.files(folder, suffix=MARKS_SUFFIX)]:
            if window_of(name) == key:
                storage.delete(name)
        log.warning(
            "the lake's file %s cannot be read (%s): this run reads its window %s from Omnitron "
            "again",
            error.shown,
            error.reason,
            key,
        )
    return len(damaged)


def _checked_marks(storage: LakeStorage, name: str) -> None:
    """A window's staged quarantine marks, read as the merge reads them (a review's fuzz: a
    footer that still decodes gave columns the merge's cast refused, at every sync)."""
    marks = storage.read_table(name)
    with storage.reading(name):
        try:
            marks.cast(MARK_SCHEMA)
        except (ValueError, pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise OSError(f"its columns are not a window's marks: {exc}") from None
