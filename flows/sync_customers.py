"""The Prefect flow ``sync-customers``: orchestration only; the steps are in ``omnisync.sync``.

A run holds the stream's lock, records itself once (``RunRecord``), finishes the plan an
interrupted run left open, and then always plans again from the watermark: a run that ends
``Completed`` has read everything up to its own start (server clock) minus the lag.

A run that finds the stream busy waits up to ``OMNISYNC_LOCK_WAIT_SECONDS``, then ends
``Cancelled`` (not ``Failed``: nothing went wrong) naming the holder's run; it is recorded as
``refused``. Every state change is fenced by the lock (``omnisync/state/store.py``).

One task per window (never per record), run on a thread pool bounded by
``OMNISYNC_WINDOW_CONCURRENCY``; request-level retries stay in the client, task retries cover a
whole window that failed for a transient reason. No DataFrame crosses a task boundary: windows
write the lake themselves and return small summaries. Everything the windows share is opened
before the first of them starts.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Cancelled
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.tasks import exponential_backoff

from omnisync.client import AuthenticationFailed, ConfigurationError, ValidationFailed
from omnisync.settings import Settings, load_settings
from omnisync.state import Fence, LockHeld, LockLost
from omnisync.sync import (
    STREAM,
    BatchRejected,
    Plan,
    PlanTotals,
    RunParts,
    RunRecord,
    WindowResult,
    finish_plan,
    new_plan,
    open_plan,
    sync_window,
)
from omnisync.sync.parts import adopt, parts_for, release
from omnisync.validation import Validator
from transforms.customers import SchemaDrift

_NOT_WORTH_RETRYING = (
    AuthenticationFailed,
    ConfigurationError,
    ValidationFailed,
    BatchRejected,
    SchemaDrift,
    LockLost,
)


def _worth_retrying(task: Any, task_run: Any, state: Any) -> bool:
    try:
        state.result()
    except _NOT_WORTH_RETRYING:
        return False
    except Exception:
        return True
    return False


@task(
    name="sync-window",
    retries=2,
    retry_delay_seconds=exponential_backoff(backoff_factor=5),
    retry_jitter_factor=0.5,
    retry_condition_fn=_worth_retrying,
    cache_policy=NO_CACHE,
    persist_result=False,
)
def sync_window_task(
    settings: Settings,
    run_id: str,
    plan_id: str,
    lo: dt.datetime | None,
    hi: dt.datetime,
    fence: tuple[str, int] | None = None,
) -> WindowResult:
    # Settings and the fence's identity, not the parts, cross the task boundary: on Dask the
    # task runs in another process, which opens its own parts and proves the same lock.
    parts = parts_for(settings, run_id)
    if parts.fence is None and fence is not None:
        parts.hold(Fence(parts.store, STREAM, *fence))
    result = sync_window(parts, plan_id, lo, hi)
    get_run_logger().info(
        "window [%s, %s): %d read, %d written, %d quarantined, %d flagged",
        lo,
        hi,
        result.rows,
        result.written,
        result.quarantined,
        result.flagged,
    )
    return result


def _task_runner(settings: Settings, windows: int) -> Any:
    """Threads by default; a Dask cluster when OMNISYNC_DASK_ADDRESS is set and there is a
    backfill worth spreading (more than one window)."""
    if settings.dask_address and windows > 1:
        from prefect_dask.task_runners import DaskTaskRunner

        if settings.dask_address == "local":
            return DaskTaskRunner(
                cluster_kwargs={
                    "n_workers": settings.dask_workers,
                    "threads_per_worker": 1,
                    "processes": True,
                }
            )
        return DaskTaskRunner(address=settings.dask_address)
    return ThreadPoolTaskRunner(max_workers=settings.window_concurrency)


def _run_plan(parts: RunParts, plan: Plan) -> PlanTotals:
    """Every window of ``plan`` as a task, then the plan's finish (in this process)."""
    get_run_logger().info(
        "run %s: %d window(s) up to %s%s",
        parts.run_id,
        len(plan.windows),
        plan.upper,
        " (resuming an interrupted plan)" if plan.resumed else "",
    )
    if plan.windows:
        with _task_runner(parts.settings, len(plan.windows)) as runner:
            futures = [
                runner.submit(
                    sync_window_task,
                    {
                        "settings": parts.settings,
                        "run_id": parts.run_id,
                        "plan_id": plan.plan_id,
                        "lo": lo,
                        "hi": hi,
                        "fence": None
                        if parts.fence is None
                        else (parts.fence.owner, parts.fence.acquired_us),
                    },
                )
                for lo, hi in plan.windows
            ]
            for future in futures:
                future.result()
    return finish_plan(parts, plan)


def _summary_markdown(run_id: str, counts: dict[str, Any], docs: str | None) -> str:
    rows = "\n".join(
        f"| {key} | {value} |" for key, value in counts.items() if key != "unknown_fields"
    )
    unknown = counts.get("unknown_fields") or {}
    drift = (
        "\n\n**Fields Omnitron sends that the schema does not know** (kept in `_extra_fields`):\n\n"
        + "\n".join(f"- `{name}`: {n} record(s)" for name, n in unknown.items())
        if unknown
        else ""
    )
    link = f"[Data Docs]({docs})" if docs else "no Data Docs (nothing validated)"
    return (
        f"# sync-customers run `{run_id}`\n\n| what | value |\n|---|---|\n{rows}{drift}\n\n{link}\n"
    )


@flow(name="sync-customers", log_prints=False)
def sync_customers(full_refresh: bool = False, settings: Settings | None = None) -> Any:
    """One incremental run (or a full refresh) of the customer sync; returns its counts, or a
    ``Cancelled`` state when another run holds the stream."""
    settings = settings or load_settings()
    logger = get_run_logger()
    kind = "full" if full_refresh else "incremental"
    # The validator (GX: seconds to start) is built once the stream is ours, so that a refused
    # run ends at once; still before any window thread starts.
    parts = RunParts.open(settings, uuid.uuid4().hex, validate=False)
    adopt(parts)
    try:
        with contextlib.ExitStack() as stack:
            try:
                parts.hold(
                    stack.enter_context(
                        parts.store.locked(
                            STREAM, wait_seconds=settings.lock_wait_seconds, run_id=parts.run_id
                        )
                    )
                )
            except LockHeld as busy:
                RunRecord.refused(parts.store, parts.run_id, STREAM, kind, str(busy))
                logger.warning("%s", busy)
                return Cancelled(message=str(busy))
            record = stack.enter_context(RunRecord(parts.store, parts.run_id, STREAM, kind))
            parts.validator = Validator(settings.lake)
            counts, docs = _run(parts, record, full_refresh)
            create_markdown_artifact(
                _summary_markdown(parts.run_id, counts, docs),
                key="sync-customers",
                description="counts, window, watermark and quarantine",
            )
            logger.info("run %s done: %s", parts.run_id, counts)
            return {**counts, "run_id": parts.run_id, "data_docs": docs}
    finally:
        release(parts.run_id)


def _run(parts: RunParts, record: RunRecord, full_refresh: bool) -> tuple[dict[str, Any], Any]:
    """The run's steps under the lock: recover, finish an open plan, plan anew, publish docs."""
    parts.changes.recover()  # a compaction a crash interrupted, before anything is written
    totals = PlanTotals()
    unfinished = None if full_refresh else open_plan(parts)
    if unfinished is not None:
        totals.add(_run_plan(parts, unfinished))
    # Always plan again: finishing an old plan does not make the lake current.
    plan = new_plan(parts, full_refresh=full_refresh)
    totals.add(_run_plan(parts, plan))
    assert parts.validator is not None
    docs = parts.validator.publish_docs() if totals.rows else None
    watermark = parts.store.watermark(STREAM)
    counts = {
        **totals.counts(),
        "resumed_plan": unfinished is not None,
        "upper_bound": plan.upper.isoformat(),
        "watermark_before": None
        if record.watermark_before is None
        else record.watermark_before.isoformat(),
        "watermark_after": None if watermark is None else watermark.isoformat(),
    }
    record.counts = counts
    record.window = (plan.windows[0][0] if plan.windows else None, plan.upper)
    return counts, docs


if __name__ == "__main__":
    sync_customers()
