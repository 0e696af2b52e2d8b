"""The Prefect orchestration of a run: windows as tasks, the run's logger, artifacts.

The steps of a run are in ``omnisync`` and are the same under :class:`omnisync.orchestration.Local`;
this module only says how Prefect runs them. One task per window (never per record), on a thread
pool bounded by ``OMNISYNC_WINDOW_CONCURRENCY``, or on Dask when ``OMNISYNC_DASK_ADDRESS`` is set.
A window's retries are its own (``sync_window_retrying``), so the task itself is not retried.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State
from prefect.states import Failed
from prefect.task_runners import ThreadPoolTaskRunner

from omnisync.client import AuthenticationFailed, ConfigurationError, Page, RetriesExhausted
from omnisync.lake import LakeError
from omnisync.orchestration import Eta, Pacer, WindowsDone
from omnisync.settings import Settings, SettingsError
from omnisync.state import StateError
from omnisync.sync import Plan, RunContext, WindowResult
from omnisync.sync.context import worker_context
from omnisync.sync.window import sync_window_retrying

#: errors whose message says what to do, common to every flow: the run fails in one line,
#: without a traceback. Not the client's root: an unexpected answer, a rejected filter or a 404
#: is a defect to be debugged, and its traceback stays in the run's log.
ACTIONABLE: tuple[type[Exception], ...] = (
    SettingsError,
    ConfigurationError,
    AuthenticationFailed,
    RetriesExhausted,
    LakeError,
    StateError,
)


def failed_in_one_line(error: Exception) -> State[Any]:
    """The flow run's end for an error its reader can act on (a setting, a refused plan, an
    unusable ERP input): one line in the run's log and the state's message, no traceback. The
    error stays the state's data, so calling the flow still raises it."""
    get_run_logger().error("%s: %s", type(error).__name__, error)
    return Failed(message=f"{type(error).__name__}: {error}", data=error)


def own_lines_at(level: str) -> None:
    """omnisync's own lines (``omnisync.*`` loggers) at ``OMNISYNC_LOG_LEVEL`` in this process:
    Prefect ships them with the run (``PREFECT_LOGGING_EXTRA_LOGGERS``), but only those the
    logger lets through; left alone, it inherits the root logger's WARNING."""
    logging.getLogger("omnisync").setLevel(level)


@task(name="sync-window", cache_policy=NO_CACHE, persist_result=False)
def sync_window_task(
    context: RunContext | None,
    settings: Settings,
    run_id: str,
    plan_id: str,
    lo: dt.datetime | None,
    hi: dt.datetime,
    fence: tuple[str, int] | None = None,
    first_page: Page | None = None,
    datetimes: bool | None = None,
    windows: int = 1,
) -> WindowResult:
    # On threads, the flow's own context. On Dask the task runs in another process, which the
    # open context cannot reach: settings and the fence's identity cross instead, and the worker
    # opens the run's context from the same factory (once per run) and proves the same lock.
    own_lines_at(settings.log_level)
    if context is None:
        context = worker_context(settings, run_id, fence, datetimes, windows)
    return sync_window_retrying(context, plan_id, lo, hi, first_page)


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


class PrefectRun:
    """The orchestration of a flow run (see ``omnisync.orchestration.Orchestration``)."""

    def __init__(self, settings: Settings) -> None:
        """Built in the flow's thread, which alone has the run's context: write-back threads
        log their progress through this logger, never building one of their own."""
        own_lines_at(settings.log_level)
        self._pacer = Pacer()
        # Held from the pacer's verdict to the artifact's update, so that reports from several
        # threads reach the artifact in the order the pacer let them through.
        self._reporting = threading.Lock()
        self._eta = Eta()
        self._progress: dict[str, Any] = {}
        self._logger: logging.Logger | logging.LoggerAdapter[logging.Logger] = get_run_logger()

    def logger(self) -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
        return self._logger

    def run_windows(self, context: RunContext, plan: Plan) -> None:
        fence = None if context.fence is None else (context.fence.owner, context.fence.acquired_us)
        runner = _task_runner(context.settings, len(plan.windows))
        # Threads share the flow's context; Dask workers open their own (sync_window_task).
        shared = context if isinstance(runner, ThreadPoolTaskRunner) else None
        ended = WindowsDone(self, len(plan.windows), plan.resumed)
        with runner:
            futures = [
                runner.submit(
                    sync_window_task,
                    {
                        "context": shared,
                        "settings": context.settings,
                        "run_id": context.run_id,
                        "plan_id": plan.plan_id,
                        "lo": lo,
                        "hi": hi,
                        "fence": fence,
                        "first_page": plan.first_pages.pop((lo, hi), None),
                        "datetimes": context.datetimes,
                        "windows": len(plan.windows),  # a worker's heaps, as the flow's
                    },
                )
                for lo, hi in plan.windows
            ]
            for future in futures:  # in the plan's order: a window's end is said once the
                future.result()  # ones before it have ended too
                ended.one()

    def publish(self, key: str, markdown: str, description: str) -> None:
        create_markdown_artifact(markdown, key=key, description=description)

    def progress(self, key: str, done: int, total: int, rate: float | None = None) -> None:
        with self._reporting:
            self._report(key, done, total, rate)

    def _report(self, key: str, done: int, total: int, rate: float | None) -> None:
        line = self._eta.line(key, done, total, rate)
        if not self._pacer.due(done, total):
            return
        share = 100.0 * done / total if total else 100.0
        # The first line of a step with a rate (what is ahead, and how long it should take) at
        # the run's own level: whoever watches the run sees it without turning on INFO.
        ahead = done == 0 and rate is not None
        self.logger().log(logging.WARNING if ahead else logging.INFO, "%s", line)
        if key not in self._progress:
            # Created once, from the flow's thread (its first report, at 0), so that the
            # artifact belongs to the flow run; later reports only move it.
            self._progress[key] = create_progress_artifact(
                share, key=key, description=f"share done ({line})"
            )
        else:
            update_progress_artifact(self._progress[key], share)
