"""One sync run, whole: the same steps whether Prefect or a terminal orchestrates it.

A run holds the stream's lock, records itself once (``RunRecord``), finishes the plan an
interrupted run left open, and then always plans again from the watermark: a run that succeeds
has read everything up to its own start (server clock) minus the lag.

A run that finds the stream busy waits up to ``OMNISYNC_LOCK_WAIT_SECONDS``, then ends
:class:`Refused` (not failed: nothing went wrong) naming the holder's run; it is recorded as
``refused``. Every state change is fenced by the lock (``omnisync/state/store.py``).

The windows of a plan run through the orchestration (``OMNISYNC_WINDOW_CONCURRENCY`` at once,
one by default); each is retried as a whole (``sync_window_retrying``). No DataFrame crosses from a
window to the run: windows write the lake themselves and return small summaries. Everything the
windows share is opened before the first of them starts.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from omnisync.client import DateFilterRejected
from omnisync.counts import counts_markdown
from omnisync.lake.presence import write_missing_datasets
from omnisync.lake.record import check_lake_for_state
from omnisync.memory import map_large_blocks, peak_mib
from omnisync.orchestration import Local, Orchestration
from omnisync.settings import Settings
from omnisync.state import LockHeld, RunRecord
from omnisync.sync.context import STREAM, RunContext, open_run, take_handed
from omnisync.sync.deletions import check_deletions
from omnisync.sync.finish import PlanTotals, finish_plan
from omnisync.sync.planning import Plan, new_plan, open_plan
from omnisync.sync.staging_upkeep import read_damaged_again
from omnisync.validation.runner import ValidationPage
from omnisync.validation.summary import validation_markdown
from transforms.pii import apply_pii_policy
from transforms.schema import CUSTOMER_SCHEMA


@dataclass(frozen=True)
class Refused:
    """The stream was busy: this run did nothing, and says who holds the stream."""

    message: str


def run_sync(
    settings: Settings,
    full_refresh: bool,
    orchestration: Orchestration,
    context: RunContext | None = None,
) -> dict[str, Any] | Refused:
    """One incremental run (or a full refresh); returns its counts, or :class:`Refused`.

    ``context``: the run's open context when the caller already opened it (the command line's
    preflight does), and closes it; otherwise the run opens its own and closes it here.
    """
    kind = "full" if full_refresh else "incremental"
    logger = orchestration.logger()
    with contextlib.ExitStack() as stack:
        # The validator (GX: seconds to start) is built just before the first window runs, in
        # this thread; for a command-line run on a local lake, GX's import starts before planning
        # (``_steps``): a refused run ends at once, and the import overlaps planning's requests.
        if context is None:  # the command line's preflight's, when it started this flow run
            context = take_handed(settings) or stack.enter_context(
                open_run(settings, uuid.uuid4().hex, validate=False)
            )
        try:
            fence = stack.enter_context(
                context.store.lease.locked(
                    STREAM, wait_seconds=settings.lock_wait_seconds, run_id=context.run_id
                )
            )
        except LockHeld as busy:
            RunRecord.refused(context.store, context.run_id, STREAM, kind, str(busy))
            logger.warning("%s", busy)
            return Refused(str(busy))
        run = context.holding(fence)
        record = stack.enter_context(RunRecord(run.store, run.run_id, STREAM, kind))
        before: dict[str, PlanTotals] = {}  # by plan: what runs before this one read of it
        try:
            counts, docs = _steps(run, record, full_refresh, orchestration, before)
        except DateFilterRejected:
            if not run.datetimes:
                raise
            # The server refuses datetimes an earlier run recorded it to take (seen first by a
            # resumed plan's window, or by planning): the steps again, with dates. Each is
            # idempotent.
            run.filters_rejected()
            counts, docs = _steps(run, record, full_refresh, orchestration, before)
        orchestration.publish(
            "sync-customers",
            summary_markdown(
                run.settings,
                run.run_id,
                counts,
                run.validator.pages(run.run_id) if docs and run.validator else [],
            ),
            "counts, window, watermark and quarantine",
        )
        logger.info("run %s done: %s", run.run_id, counts)
        return {**counts, "run_id": run.run_id, "data_docs": docs}


def _steps(
    run: RunContext,
    record: RunRecord,
    full_refresh: bool,
    orchestration: Orchestration,
    before: dict[str, PlanTotals],
) -> tuple[dict[str, Any], Any]:
    """The run's steps under the lock: recover, finish an open plan, plan anew, publish docs.
    ``before``: what runs before this one read of a plan it finishes, noted at its first steps
    (the steps again after a refused date filter must not count this run's windows)."""
    # A lake of an older format is refused before anything is written; a full refresh rebuilds it.
    if not full_refresh:  # a mistyped lake path would get only what changed since the watermark
        check_lake_for_state(run.storage, run.store.watermarks.get(STREAM))
    run.snapshot.ensure_current(rebuild=full_refresh)
    run.changes.recover()  # a compaction a crash interrupted
    # Every documented dataset is readable before the first window writes: a first run that
    # wrote no row (an empty Omnitron), or was killed while writing its first change-log file
    # (a hidden temporary name), still leaves readers a dataset to open.
    analyst = apply_pii_policy(
        CUSTOMER_SCHEMA.empty_table(),
        run.settings.pii_policy,
        run.settings.pii_salt.get_secret_value().encode(),
    )
    write_missing_datasets(run.storage, analyst.schema, dt.datetime.now(dt.UTC))
    totals = PlanTotals()
    unfinished = None if full_refresh else open_plan(run.store, run.storage)
    # what an earlier run read of the plan this one finishes: in the plan's totals, said apart
    earlier = PlanTotals()
    if unfinished is not None:
        # every staged file opened (check_staged's checks, and more), before any window
        buckets = run.snapshot.buckets
        if read_damaged_again(
            run.storage, run.store, unfinished.plan_id, buckets, run.fence, analyst.schema
        ):
            unfinished = open_plan(run.store, run.storage)  # with those windows pending again
            assert unfinished is not None, "a plan with pending windows is open"
        if unfinished.plan_id not in before:
            done = run.store.plans.windows(STREAM, unfinished.plan_id)
            before[unfinished.plan_id] = PlanTotals.of([w for w in done if w.status == "done"])
        earlier = before[unfinished.plan_id]
        totals.add(_run_plan(run, unfinished, orchestration))
    if full_refresh:
        left = run.store.plans.open(STREAM)
        if left is not None:  # given up by new_plan: said, not done in silence (a new user)
            read = sum(window.status == "done" for window in left[1])
            orchestration.logger().warning(
                "a full refresh gives up the plan an earlier run left unfinished (%d of %d "
                "windows read): it reads every customer again",
                read,
                len(left[1]),
            )
        # A full refresh asks again what the server's date filters take: a server that learned
        # datetimes since is seen by no other answer (dates are understood by every server).
        run.datetimes = run.client.datetime_filters_supported
        run.store.servers.remember(run.client.base_url, run.datetimes)
    # Always plan again: finishing an old plan does not make the lake current. GX's import
    # starts first, on its own thread, so that planning's requests wait on Omnitron while it
    # runs; not in a Prefect flow run, whose own threads load modules whenever they need them
    # (the command line's other threads, a lock's heartbeat or a status line's refresh, load
    # none meanwhile: tests/validation/test_gx_overlap.py).
    if isinstance(orchestration, Local):
        run.prepare_validator()
    plan = new_plan(
        full_refresh,
        settings=run.settings,
        client=run.client,
        datetimes=run.datetimes,
        total=run.total,
        store=run.store,
        fence=run.fence,
        storage=run.storage,
    )
    totals.add(_run_plan(run, plan, orchestration))
    settings = run.settings
    deletions = check_deletions(
        plan.upper,
        full_refresh,
        seen=plan.seen,
        settings=settings,
        client=run.client,
        datetimes=run.datetimes,
        store=run.store,
        fence=run.fence,
        run_id=run.run_id,
        storage=run.storage,
        changes=run.changes,
        snapshot=run.snapshot,
    )
    docs = run.validator.publish_docs() if totals.rows and run.validator else None
    watermark = run.store.watermarks.get(STREAM)
    counts = {
        **totals.counts(),
        **deletions.counts(),
        "deleted": deletions.counts()["deleted"] + totals.rebuild_deleted,
        "resumed_plan": unfinished is not None,
        # customers/ rebuilt: by a full refresh, or by finishing the plan of one
        "rebuilt": full_refresh or (unfinished is not None and unfinished.rebuild),
        "windows_before": earlier.windows,
        "read_before": earlier.rows,
        "upper_bound": plan.upper.isoformat(),
        "watermark_before": None
        if record.watermark_before is None
        else record.watermark_before.isoformat(),
        "watermark_after": None if watermark is None else watermark.isoformat(),
    }
    record.counts = counts
    record.window = (plan.windows[0][0] if plan.windows else None, plan.upper)
    return counts, docs


def _run_plan(run: RunContext, plan: Plan, orchestration: Orchestration) -> PlanTotals:
    """Every window of ``plan`` through the orchestration, then the plan's finish (here)."""
    orchestration.logger().info(
        "run %s: %d window(s) up to %s%s",
        run.run_id,
        len(plan.windows),
        plan.upper,
        " (resuming an interrupted plan)" if plan.resumed else "",
    )
    if plan.windows:
        run.open_validator()  # before any window thread starts: nothing built lazily
        # the base a sync's memory is judged above (make bench): imports and GX's context
        orchestration.logger().debug(
            "validator ready: peak RSS %.0f MiB before any row", peak_mib()
        )
        map_large_blocks(len(plan.windows))  # see omnisync/memory.py: a long plan's heaps
        orchestration.run_windows(run, plan)
    return finish_plan(
        plan,
        settings=run.settings,
        client=run.client,
        store=run.store,
        fence=run.fence,
        run_id=run.run_id,
        storage=run.storage,
        changes=run.changes,
        snapshot=run.snapshot,
    )


def summary_markdown(
    settings: Settings, run_id: str, counts: dict[str, Any], pages: list[ValidationPage]
) -> str:
    """The run's summary as its readers see it in Prefect: counts, then this run's own
    validation pages (not the index, which every run rewrites)."""
    rows = counts_markdown({k: v for k, v in counts.items() if k != "unknown_fields"})
    unknown = counts.get("unknown_fields") or {}
    drift = (
        "\n\n**Fields Omnitron sends that the schema does not know** (kept in `_extra_fields`):\n\n"
        + "\n".join(f"- `{name}`: {n} record(s)" for name, n in unknown.items())
        if unknown
        else ""
    )
    return f"# sync-customers run `{run_id}`\n\n{rows}{drift}\n\n" + validation_markdown(
        settings, pages
    )
