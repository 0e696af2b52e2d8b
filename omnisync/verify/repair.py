"""``omnisync verify --repair``: re-read exactly what differs and commit it as a normal run.

A repair is a sync run whose plan is not a span of time since the watermark but the
``modified_date`` of each missing or stale customer, as Omnitron has it now: each window is
``[m, m + 1 µs)`` (neighbours joined while the lake holds at most a page of rows between them),
so the sync's own extraction reads exactly those versions, by the same rules that make it lose
nothing (G1, date-only servers included), and the sync's own window and finish steps type,
validate, stage, log (``customer_changes/`` skips versions it already holds) and merge them. The
run holds the stream's lock, every change is fenced (G5), and it is recorded in the run log as
kind ``repair``. The watermark does not move backwards: every version repaired is not newer
than it.

Two differences the sync cannot mend by reading are mended here, under the same fence, one
bucket file at a time, each replaced atomically: a file no reader can open (opened again
first: the report may be older than the file) is removed (it
holds nothing anyone can read; its customers are then missing, and re-read), and customers
Omnitron no longer has leave ``customers/`` the way every deletion does (G9): recorded in the
state database, logged in ``customer_changes/`` with ``_op = 'delete'``, then removed and,
with ``OMNISYNC_ERASE_DELETED``, erased (``omnisync/sync/applying.py``); a
row of theirs that a tool put in another bucket's file is removed from there too.

A plan an interrupted sync left open is finished first (:func:`_finish_open_plan`): its staged
rows are then in the lake before deletions are applied, not merged back over them later.

A customer whose version in Omnitron is quarantined, and whose row was removed or rolled back
behind the product's back, gets its newest version logged in ``customer_changes/`` back (the
newest that could be typed); reading its quarantined version again then marks that row.

Then the lake is verified again; the command exits 0 only if it is now equal.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import uuid
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from omnisync.client import NotFound, OmnitronClient, OmnitronError
from omnisync.lake import ChangeLog, LakeStorage, Snapshot
from omnisync.lake.quarantine import quarantined_versions
from omnisync.orchestration import Local
from omnisync.settings import Settings
from omnisync.state import Fence, RunRecord, StateStore
from omnisync.state.deletions import record_deletions
from omnisync.state.times import from_us, to_us
from omnisync.sync.applying import apply_pending
from omnisync.sync.context import STREAM, RunContext, open_run
from omnisync.sync.finish import PlanTotals, finish_plan
from omnisync.sync.mass_deletion import refuse_mass_deletion
from omnisync.sync.planning import Plan, Window, open_plan
from omnisync.verify.counts import DATASET, LakeSide
from omnisync.verify.quarantined import previous_rows
from omnisync.verify.report import Outcome

log = logging.getLogger("omnisync.verify")
KIND = "repair"
ONE = dt.timedelta(microseconds=1)


def repair_windows(versions: list[int], lake_modified: np.ndarray, page_size: int) -> list[Window]:
    """Windows holding exactly the versions to read again (µs), in order, each joined with the
    next while the lake holds at most ``page_size`` rows between them (fewer windows, each about
    a page)."""
    stamps = sorted(set(versions))
    ordered = np.sort(lake_modified)
    windows: list[Window] = []
    start = end = None
    for stamp in stamps:
        if start is not None and end is not None:
            between = int(
                np.searchsorted(ordered, stamp, "right") - np.searchsorted(ordered, start)
            )
            if between <= page_size:
                end = stamp
                continue
            windows.append((from_us(start), from_us(end) + ONE))
        start = end = stamp
    if start is not None and end is not None:
        windows.append((from_us(start), from_us(end) + ONE))
    return windows


def remove_from_snapshot(storage: LakeStorage, pks: set[int]) -> int:
    """Take the rows of ``pks`` out of ``customers/``; returns the rows removed. Every file is
    looked at (its pk column only), not just the bucket a pk belongs in: a row put in the wrong
    file behind omnisync's back is seen by readers all the same."""
    if not pks:
        return 0
    removed = 0
    wanted = pa.array(sorted(pks), type=pa.int64())
    for path in storage.files(DATASET):
        if not pc.any(pc.is_in(storage.read_table(path, ["pk"])["pk"], wanted)).as_py():
            continue
        table = storage.read_table(path)
        kept = table.filter(pc.invert(pc.is_in(table["pk"], wanted)))
        storage.write_table(path, kept)
        removed += table.num_rows - kept.num_rows
    return removed


def remove_deleted(
    reported: list[int],
    *,
    settings: Settings,
    client: OmnitronClient,
    store: StateStore,
    fence: Fence | None,
    run_id: str,
    storage: LakeStorage,
    changes: ChangeLog,
    snapshot: Snapshot,
) -> tuple[int, int]:
    """Take customers Omnitron no longer has out of ``customers/`` the one way every deletion
    leaves the lake: recorded, logged with ``_op = 'delete'``, then removed
    (:func:`~omnisync.sync.applying.apply_pending`). Rows of theirs that a tool put outside
    their own bucket's file are seen by readers all the same: they are removed too. Returns the
    deletions recorded and the rows removed.

    A report's word is not enough: each customer it calls deleted leaves only when Omnitron
    says so twice, as the sync's own deletion check asks (``absence.py``). The verification
    gave the first answer: a whole listing of a pk range without the customer (its "deleted"
    rests on nothing else). Its own URL answering 404 now is the second (a request that is not
    a listing); a customer that answers, or any other failure, is kept."""
    assert fence is not None
    # A pk the lake no longer holds was removed since the report (a sync's own check): recording
    # it again would log a second deletion and erase it again.
    held = np.isin(np.array(reported, dtype=np.int64), LakeSide.read(storage).pks)
    reported = [pk for pk, there in zip(reported, held.tolist(), strict=True) if there]
    deleted = [pk for pk in reported if _url_is_gone(client, pk)]
    if len(deleted) < len(reported):
        log.warning(
            "repair: %d customer(s) the report calls deleted are not confirmed absent by "
            "Omnitron; kept",
            len(reported) - len(deleted),
        )
    refuse_mass_deletion(settings, len(snapshot.pks()), len(deleted))
    if deleted:
        # After the re-read, if there was one: the server's clock is then known without asking.
        detected = client.server_time()
        record_deletions(store, STREAM, deleted, detected, run_id, fence)
    apply_pending(
        settings=settings,
        client=client,
        store=store,
        fence=fence,
        storage=storage,
        changes=changes,
        snapshot=snapshot,
    )
    return len(deleted), remove_from_snapshot(storage, set(deleted))


def _url_is_gone(client: OmnitronClient, pk: int) -> bool:
    """Whether the customer's own URL answers 404; any other answer or failure keeps it."""
    try:
        client.get_customer(pk)
    except NotFound:
        return True
    except OmnitronError as exc:  # no answer is not an answer: kept, found again next time
        log.warning("repair: customer %d could not be asked about (%s); kept", pk, exc)
    return False


def _finish_open_plan(run: RunContext) -> bool:
    """Finish the plan an interrupted sync left open, before anything is mended; returns
    whether there was one. Its staged rows would otherwise be merged by the next sync after
    this repair applied deletions: a deleted customer's staged version would come back.
    Finishing it (not refusing to repair while it is open) keeps repair usable exactly when a
    sync keeps failing; should its finish fail again, the repair fails with it, having
    changed nothing else."""
    plan = open_plan(run.store, run.storage)
    if plan is None:
        return False
    if plan.windows:
        run.open_validator()
        Local().run_windows(run, plan)
    _finish(run, plan)
    return True


def _finish(run: RunContext, plan: Plan) -> PlanTotals:
    return finish_plan(plan, **_lake_steps(run))


def _lake_steps(run: RunContext) -> dict[str, Any]:
    """What finishing a plan and removing deleted customers each use of the run: the same
    collaborators, named once."""
    return {
        "settings": run.settings,
        "client": run.client,
        "store": run.store,
        "fence": run.fence,
        "run_id": run.run_id,
        "storage": run.storage,
        "changes": run.changes,
        "snapshot": run.snapshot,
    }


def _restore_quarantined(storage: LakeStorage, snapshot: Snapshot, found: Outcome) -> int:
    """Put back the newest logged version of each missing or stale customer whose version in
    Omnitron is quarantined (its row was removed or rolled back behind the product's back);
    reading that version again then marks it (``omnisync/verify/quarantined.py``). Returns the
    rows put back."""
    held = quarantined_versions(storage)
    before = {pk: v for pk, v in found.versions.items() if v in held.get(pk, ())}
    rows = previous_rows(storage, before) if before else None
    if rows is None:
        return 0
    snapshot.merge(rows)
    return int(rows.num_rows)


def repair(settings: Settings, found: Outcome) -> dict[str, Any]:
    """Mend what ``found`` reported, as one run under the stream's lock; returns its counts.
    Raises LockHeld when another run holds the stream (nothing was changed)."""
    # The verification has just seen which date filters the server takes: not asked again.
    with contextlib.ExitStack() as stack:
        opened = stack.enter_context(
            open_run(settings, uuid.uuid4().hex, validate=False, datetimes=found.datetimes)
        )
        run = opened.holding(
            stack.enter_context(
                opened.store.lease.locked(
                    STREAM, wait_seconds=settings.lock_wait_seconds, run_id=opened.run_id
                )
            )
        )
        record = stack.enter_context(RunRecord(run.store, run.run_id, STREAM, KIND))
        run.snapshot.ensure_current()  # an older lake is refused: nothing to repair
        run.changes.recover()
        # Opened again first: a file the report names may have been replaced since.
        broken = LakeSide.still_unreadable(run.storage, list(found.unreadable))
        for path in broken:
            run.storage.delete(path)
        counts: dict[str, Any] = {"resumed_plan": _finish_open_plan(run)}
        counts["restored"] = _restore_quarantined(run.storage, run.snapshot, found)
        lake = LakeSide.read(run.storage)
        versions = [found.versions[pk] for pk in found.versions]
        windows = repair_windows(versions, lake.modified, settings.page_size)
        counts.update({"files_removed": len(broken), "windows": len(windows)})
        if windows:
            plan = Plan(uuid.uuid4().hex, windows[-1][1], record.watermark_before, windows)
            run.store.plans.save(
                STREAM,
                plan.plan_id,
                [(to_us(lo) if lo else 0, to_us(hi)) for lo, hi in windows],
                fence=run.fence,
            )
            run.open_validator()
            Local().run_windows(run, plan)
            totals = _finish(run, plan)
            counts.update(totals.counts())
        deleted = sorted(set(found.found.get("deleted", [])))
        counts["deleted"], counts["rows_removed"] = remove_deleted(deleted, **_lake_steps(run))
        record.counts = counts
        return counts
