"""Finishing a plan: judge the run's quality, merge, move the watermark, compact (G3, G6).

The steps run in this order, each safe to repeat after a crash:

1. **Judge** the plan over all of its windows (those of an earlier, interrupted run included):
   a share of quarantined records above ``OMNISYNC_MAX_QUARANTINE_SHARE`` is a systemic problem,
   but only once the plan has read ``OMNISYNC_QUARANTINE_MIN_ROWS`` records: one bad customer
   among a dozen changes must not stop the stream. A rejected plan is abandoned (the next run
   plans again from the unchanged watermark, so a fixed source is read afresh) and the run fails.
2. **Merge** the staged rows into ``customers/``, bucket by bucket (idempotent); a full
   refresh instead rebuilds every bucket from what it read (``rebuild.py``).
3. **Move the watermark** to the greatest ``modified_date`` read, only forward (G3: after the
   data of its window is durably written).
4. **Close** the plan and remove its staging; **compact** closed months of the change log (and
   an open month with too many files), each behind one atomic switch (``omnisync/lake/changes.py``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from omnisync.memory import give_back
from omnisync.settings import Settings
from omnisync.state import Window
from omnisync.state.times import from_us
from omnisync.sync.parts import STREAM, RunParts
from omnisync.sync.planning import Plan
from omnisync.sync.rebuild import rebuild_snapshot
from omnisync.sync.window import (
    BatchRejected,
    staged_buckets,
    staging_dir,
    without_staging_metadata,
)

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
    unknown_fields: Counter[str] = field(default_factory=Counter)
    max_modified: dt.datetime | None = None

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
        self.unknown_fields.update(other.unknown_fields)

    def counts(self) -> dict[str, Any]:
        return {
            "windows": self.windows,
            "read": self.rows,
            "written": self.written,
            "changes_logged": self.changes_logged,
            "quarantined": self.quarantined,
            "flagged": self.flagged,
            "unknown_fields": dict(sorted(self.unknown_fields.items())),
        }


def quality_problem(totals: PlanTotals, settings: Settings) -> str | None:
    """Why the plan's quarantined share is a systemic problem, or None when it is not."""
    if totals.rows < settings.quarantine_min_rows or totals.rows == 0:
        return None
    share = totals.quarantined / totals.rows
    if share <= settings.max_quarantine_share:
        return None
    return (
        f"{totals.quarantined:,} of {totals.rows:,} records quarantined ({share:.1%}), above the "
        f"limit of {settings.max_quarantine_share:.1%} (OMNISYNC_MAX_QUARANTINE_SHARE); see "
        "quarantine/customers/ for the reasons"
    )


def merge_staged(parts: RunParts, plan_id: str) -> int:
    """Merge every staged row of the plan into ``customers/``, bucket by bucket (memory: one
    bucket and its staged rows: one row group of each window's file). Idempotent: a crash here
    is finished by the next run."""
    merged = 0
    with contextlib.ExitStack() as stack:
        staged = []
        for name in parts.storage.files(staging_dir(plan_id)):
            file = stack.enter_context(parts.storage.parquet_file(name))
            staged.append((file, staged_buckets(file)))
        for bucket in range(parts.snapshot.buckets):
            groups = [
                file.read_row_group(buckets.index(bucket))
                for file, buckets in staged
                if bucket in buckets
            ]
            if groups:
                rows = pa.concat_tables(groups, promote_options="permissive")
                parts.snapshot.merge_bucket(bucket, without_staging_metadata(rows))
                del rows, groups
                give_back()  # see omnisync/memory.py: as after each window
                merged += 1
                log.debug("merged bucket %d", bucket)
    return merged


def finish_plan(parts: RunParts, plan: Plan) -> PlanTotals:
    """Judge, merge, move the watermark, close and compact; returns the plan's totals.
    Raises BatchRejected (plan abandoned, watermark unchanged) for a systemic problem."""
    store, settings = parts.store, parts.settings
    windows = store.plans.windows(STREAM, plan.plan_id)
    unfinished = [w for w in windows if w.status != "done"]
    if unfinished:
        raise RuntimeError(f"plan {plan.plan_id} has {len(unfinished)} window(s) not done")
    totals = PlanTotals.of(windows)
    problem = quality_problem(totals, settings)
    if problem is not None:
        store.plans.abandon(STREAM, plan.plan_id, fence=parts.fence)
        parts.storage.delete_tree(staging_dir(plan.plan_id))
        raise BatchRejected(problem)
    if plan.rebuild:
        rebuild_snapshot(parts, plan.plan_id, plan.upper)
    else:
        merge_staged(parts, plan.plan_id)
    if totals.max_modified is not None:
        store.watermarks.set(STREAM, totals.max_modified, parts.run_id, fence=parts.fence)
    store.plans.close(STREAM, plan.plan_id, fence=parts.fence)
    parts.storage.delete_tree(staging_dir(plan.plan_id))
    watermark = store.watermarks.get(STREAM)
    if watermark is not None:
        closed = (watermark - dt.timedelta(seconds=settings.lookback_seconds)).date()
        parts.changes.compact(before=closed - dt.timedelta(days=1))
    return totals
