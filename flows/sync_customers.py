"""The Prefect flow ``sync-customers``: orchestration only; the work is in ``omnisync.sync``.

One task per window (never per record), run on a thread pool bounded by
``OMNISYNC_WINDOW_CONCURRENCY``; request-level retries stay in the client, task retries cover a
whole window that failed for a transient reason. No DataFrame crosses a task boundary: windows
write the lake themselves and return small summaries.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.tasks import exponential_backoff

from omnisync.client import AuthenticationFailed, ConfigurationError, ValidationFailed
from omnisync.settings import Settings, load_settings
from omnisync.sync import STREAM, BatchRejected, SyncJob, WindowResult
from transforms.customers import SchemaDrift

_NOT_WORTH_RETRYING = (
    AuthenticationFailed,
    ConfigurationError,
    ValidationFailed,
    BatchRejected,
    SchemaDrift,
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
def sync_window(
    settings: Settings, run_id: str, plan_id: str, lo: dt.datetime | None, hi: dt.datetime
) -> WindowResult:
    # Settings, not the job, cross the task boundary: on Dask the task runs in another process.
    result = SyncJob.shared(settings, run_id).sync_window(plan_id, lo, hi)
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


def _summary_markdown(job: SyncJob, counts: dict[str, Any], docs: str | None) -> str:
    rows = "\n".join(f"| {key} | {value} |" for key, value in counts.items())
    link = f"[Data Docs]({docs})" if docs else "no Data Docs (nothing validated)"
    return f"# sync-customers run `{job.run_id}`\n\n| what | value |\n|---|---|\n{rows}\n\n{link}\n"


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


@flow(name="sync-customers", log_prints=False)
def sync_customers(full_refresh: bool = False, settings: Settings | None = None) -> dict[str, Any]:
    """One incremental run (or a full refresh) of the customer sync; returns its counts."""
    settings = settings or load_settings()
    logger = get_run_logger()
    job = SyncJob.shared(settings, uuid.uuid4().hex)
    try:
        with job.store.locked(STREAM, wait_seconds=settings.lock_wait_seconds):
            plan = job.plan(full_refresh=full_refresh)
            job.store.start_run(
                job.run_id, STREAM, "full" if full_refresh else "incremental", plan.watermark_before
            )
            logger.info(
                "run %s: %d window(s) up to %s%s",
                job.run_id,
                len(plan.windows),
                plan.upper,
                " (resumed)" if plan.resumed else "",
            )
            try:
                runner = _task_runner(settings, len(plan.windows))
                with runner:
                    futures = [
                        runner.submit(
                            sync_window,
                            {
                                "settings": settings,
                                "run_id": job.run_id,
                                "plan_id": plan.plan_id,
                                "lo": lo,
                                "hi": hi,
                            },
                        )
                        for lo, hi in plan.windows
                    ]
                    results: list[WindowResult] = [future.result() for future in futures]
                watermark = job.finish(plan, results)
            except BaseException as exc:
                job.store.finish_run(job.run_id, "failed", error=str(exc)[:2000])
                raise
            docs = job.validator.publish_docs() if any(r.rows for r in results) else None
            counts = {
                "windows": len(results),
                "read": sum(r.rows for r in results),
                "written": sum(r.written for r in results),
                "changes_logged": sum(r.changes_logged for r in results),
                "quarantined": sum(r.quarantined for r in results),
                "flagged": sum(r.flagged for r in results),
                "upper_bound": plan.upper.isoformat(),
                "watermark_before": None
                if plan.watermark_before is None
                else plan.watermark_before.isoformat(),
                "watermark_after": None if watermark is None else watermark.isoformat(),
            }
            job.store.finish_run(
                job.run_id,
                "succeeded",
                window=(plan.windows[0][0] if plan.windows else None, plan.upper),
                watermark_after=watermark,
                counts=counts,
            )
            create_markdown_artifact(
                _summary_markdown(job, counts, docs),
                key="sync-customers",
                description="counts, window, watermark and quarantine",
            )
            logger.info("run %s done: %s", job.run_id, counts)
            return {**counts, "run_id": job.run_id, "data_docs": docs}
    finally:
        SyncJob.release(job.run_id)


if __name__ == "__main__":
    sync_customers()
