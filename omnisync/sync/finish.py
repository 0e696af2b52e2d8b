"""Finishing a plan: judge the run's quality, merge, move the watermark, compact (G3, G6).

The steps run in this order, each safe to repeat after a crash:

1. **Judge** the plan over all of its windows (those of an earlier, interrupted run included),
   and over the stream's ``OMNISYNC_QUARANTINE_MIN_ROWS`` latest records (this plan's, then
   those of the latest succeeded runs, each record counted by the run that first read it, so a
   lookback's re-reads count once): a share of quarantined records above
   ``OMNISYNC_MAX_QUARANTINE_SHARE`` is a systemic problem once there is enough evidence, that
   is once the records judged number ``OMNISYNC_QUARANTINE_MIN_ROWS``, or the quarantined ones
   alone are more than that share of ``OMNISYNC_QUARANTINE_MIN_ROWS`` (more than 50 by default).
   One bad customer among a dozen changes does not stop the stream; 400 broken customers in a
   run of 400 do, at once, and a break of 20 a run does by the third run. A rejected plan is
   abandoned (the next run plans again from the unchanged watermark, so a fixed source is read
   afresh), the run fails, and its error says that the watermark is held back.
2. **Merge** the staged rows into ``customers/``, bucket by bucket (idempotent); a full
   refresh instead rebuilds every bucket from what it read (``rebuild.py``). Either way, the
   rows of customers whose newer version was quarantined are then marked
   (``transforms/quarantine_marks.py``).
3. **Move the watermark** to the greatest ``modified_date`` read, only forward (G3: after the
   data of its window is durably written). A quarantined version whose date can be read counts:
   it is recorded, and its customer's row marked, so reading it again would only quarantine it
   again; an accepted run's watermark is never held back by quarantined records.
4. **Close** the plan and remove its staging; **compact** closed months of the change log (and
   an open month with too many files), each behind one atomic switch (``omnisync/lake/changes.py``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from omnisync.client import OmnitronClient
from omnisync.lake import ChangeLog, LakeStorage, Snapshot
from omnisync.memory import TRIM_AFTER_BYTES, give_back
from omnisync.settings import Settings
from omnisync.state import Fence, StateStore, Window
from omnisync.state.quarantine_history import recent_records
from omnisync.state.times import from_us
from omnisync.sync.context import STREAM
from omnisync.sync.planning import Plan
from omnisync.sync.quarantined import mark_bucket, staged_marks
from omnisync.sync.rebuild import rebuild_snapshot
from omnisync.sync.staging import staged_by_bucket, staging_dir
from omnisync.sync.window import BatchRejected

log = logging.getLogger("omnisync.sync")


@dataclass
class PlanTotals:
    """What a plan's windows read, summed from the state store."""

    windows: int = 0
    rows: int = 0
    written: int = 0
    changes_logged: int = 0
    quarantined: int = 0
    flagged: int = 0
    marked: int = 0
    fresh: int = 0
    fresh_quarantined: int = 0
    unknown_fields: Counter[str] = field(default_factory=Counter)
    max_modified: dt.datetime | None = None
    #: customers a full refresh's rebuild found deleted in Omnitron (the deletion check's own
    #: are counted by the check)
    rebuild_deleted: int = 0

    @classmethod
    def of(cls, windows: list[Window]) -> PlanTotals:
        totals = cls(windows=len(windows))
        for window in windows:
            counts = window.counts or {}
            totals.rows += window.rows or 0
            totals.quarantined += window.quarantined or 0
            totals.written += int(counts.get("written", 0))
            totals.changes_logged += int(counts.get("changes_logged", 0))
            totals.flagged += int(counts.get("flagged", 0))
            totals.marked += int(counts.get("marked", 0))
            totals.fresh += int(counts.get("fresh", window.rows or 0))
            totals.fresh_quarantined += int(
                counts.get("fresh_quarantined", window.quarantined or 0)
            )
            totals.unknown_fields.update(counts.get("unknown_fields") or {})
            if window.max_modified_us is not None:
                stamp = from_us(window.max_modified_us)
                totals.max_modified = (
                    stamp if totals.max_modified is None else max(totals.max_modified, stamp)
                )
        return totals

    def add(self, other: PlanTotals) -> None:
        self.windows += other.windows
        self.rows += other.rows
        self.written += other.written
        self.changes_logged += other.changes_logged
        self.quarantined += other.quarantined
        self.flagged += other.flagged
        self.marked += other.marked
        self.fresh += other.fresh
        self.fresh_quarantined += other.fresh_quarantined
        self.unknown_fields.update(other.unknown_fields)
        self.rebuild_deleted += other.rebuild_deleted

    def counts(self) -> dict[str, Any]:
        return {
            "windows": self.windows,
            "read": self.rows,
            "written": self.written,
            "changes_logged": self.changes_logged,
            "quarantined": self.quarantined,
            "flagged": self.flagged,
            "quarantined_marked": self.marked,
            "read_after_watermark": self.fresh,
            "quarantined_after_watermark": self.fresh_quarantined,
            "unknown_fields": dict(sorted(self.unknown_fields.items())),
        }


def _too_many(rows: int, quarantined: int, settings: Settings) -> bool:
    """Whether ``quarantined`` of ``rows`` is above the limit, with enough evidence to say so:
    ``OMNISYNC_QUARANTINE_MIN_ROWS`` records, or more quarantined ones than the limit allows in
    that many (a small run that is mostly broken is judged by its own share)."""
    if rows == 0 or quarantined / rows <= settings.max_quarantine_share:
        return False
    enough = settings.max_quarantine_share * settings.quarantine_min_rows
    return rows >= settings.quarantine_min_rows or quarantined > enough


def quality_problem(
    totals: PlanTotals, settings: Settings, earlier_read: int = 0, earlier_quarantined: int = 0
) -> str | None:
    """Why the quarantined share is a systemic problem, or None when it is not: the plan's own,
    or that of the plan with the records the latest succeeded runs read (``earlier_*``)."""
    limit = f"the limit of {settings.max_quarantine_share:.1%} (OMNISYNC_MAX_QUARANTINE_SHARE)"
    if _too_many(totals.rows, totals.quarantined, settings):
        share = totals.quarantined / totals.rows
        return (
            f"{totals.quarantined:,} of {totals.rows:,} records quarantined ({share:.1%}), above "
            f"{limit}; see quarantine/customers/ for the reasons"
        )
    # The lookback's re-reads are left out: a record is counted in the run that first read it.
    rows, bad = totals.fresh + earlier_read, totals.fresh_quarantined + earlier_quarantined
    if totals.fresh_quarantined and earlier_read and _too_many(rows, bad, settings):
        return (
            f"{bad:,} of the {rows:,} records read by this run and the latest ones quarantined "
            f"({bad / rows:.1%}), above {limit}: a break that quarantines a few records in every "
            "run; see quarantine/customers/ for the reasons"
        )
    return None


#: buckets merged at once: one, on the run's own thread. Two on threads overlapped (reading,
#: sorting and writing a bucket run in Arrow without the GIL: an incremental's merge of 64
#: buckets took 0.34 s wall instead of 0.47), but each holds a bucket, which grows with the
#: lake: at 1M customers the second one raised a full sync's peak by 9-13 MiB, above what its
#: windows held, for 1.3-1.5 s of wall time saved (docs/performance.md, 2026-12-07)
MERGE_THREADS = 1


def merge_staged(storage: LakeStorage, snapshot: Snapshot, plan_id: str) -> int:
    """Merge every staged row of the plan into ``customers/``, bucket by bucket (memory: a
    bucket and its staged rows, and the metadata of one group of buckets'
    staged files). Idempotent: a crash here is finished by the next run, whichever buckets it
    had merged."""
    merged = untrimmed = 0
    marks = staged_marks(storage, snapshot, staging_dir(plan_id))
    for bucket, groups in staged_by_bucket(storage, plan_id, snapshot.buckets):
        rows = pa.concat_tables(groups, promote_options="permissive") if groups else None
        del groups
        written = _merge_bucket(storage, snapshot, bucket, rows, marks.get(bucket))
        del rows
        if written is not None:
            merged += 1
            untrimmed += written
        if untrimmed >= TRIM_AFTER_BYTES:  # see omnisync/memory.py: as after a window
            give_back()
            untrimmed = 0
    give_back()
    return merged


def _merge_bucket(
    storage: LakeStorage,
    snapshot: Snapshot,
    bucket: int,
    rows: pa.Table | None,
    marks: pa.Table | None,
) -> int | None:
    """Merge one bucket's staged ``rows`` (None: the plan staged none there), then mark its rows
    whose newer version was quarantined; the bytes of rows written, None when not merged."""
    written = None
    if rows is not None:
        written = snapshot.merge_bucket(bucket, rows)
        log.debug("merged bucket %d", bucket)
    if marks is not None:
        mark_bucket(storage, bucket, marks)
    return written


def mark_rebuilt(storage: LakeStorage, snapshot: Snapshot, plan_id: str) -> None:
    """Mark the rows of customers whose newer version was quarantined, in the buckets a full
    refresh just rebuilt (they hold the staged rows, unmarked). Idempotent like the rebuild."""
    for bucket, marks in staged_marks(storage, snapshot, staging_dir(plan_id)).items():
        mark_bucket(storage, bucket, marks)


def finish_plan(
    plan: Plan,
    *,
    settings: Settings,
    client: OmnitronClient,
    store: StateStore,
    fence: Fence | None,
    run_id: str,
    storage: LakeStorage,
    changes: ChangeLog,
    snapshot: Snapshot,
) -> PlanTotals:
    """Judge, merge, move the watermark, close and compact; returns the plan's totals.
    Raises BatchRejected (plan abandoned, watermark unchanged) for a systemic problem."""
    windows = store.plans.windows(STREAM, plan.plan_id)
    unfinished = [w for w in windows if w.status != "done"]
    if unfinished:
        raise RuntimeError(f"plan {plan.plan_id} has {len(unfinished)} window(s) not done")
    totals = PlanTotals.of(windows)
    recent = recent_records(store, STREAM, max(0, settings.quarantine_min_rows - totals.fresh))
    problem = quality_problem(totals, settings, recent.read, recent.quarantined)
    if problem is not None:
        store.plans.abandon(STREAM, plan.plan_id, fence=fence)
        storage.delete_tree(staging_dir(plan.plan_id))
        held = store.watermarks.get(STREAM)
        raise BatchRejected(
            f"{problem}. The watermark is held back at "
            f"{'the start' if held is None else held.isoformat()} by the quarantined records: "
            "the next run reads them again"
        )
    if plan.rebuild:
        totals.rebuild_deleted = rebuild_snapshot(
            plan.plan_id,
            plan.upper,
            settings=settings,
            client=client,
            store=store,
            fence=fence,
            run_id=run_id,
            storage=storage,
            changes=changes,
            snapshot=snapshot,
        )
        mark_rebuilt(storage, snapshot, plan.plan_id)
    else:
        merge_staged(storage, snapshot, plan.plan_id)
    if totals.max_modified is not None:
        store.watermarks.set(STREAM, totals.max_modified, run_id, fence=fence)
    store.plans.close(STREAM, plan.plan_id, fence=fence)
    storage.delete_tree(staging_dir(plan.plan_id))
    watermark = store.watermarks.get(STREAM)
    if watermark is not None:
        closed = (watermark - dt.timedelta(seconds=settings.lookback_seconds)).date()
        changes.compact(before=closed - dt.timedelta(days=1))
    return totals
