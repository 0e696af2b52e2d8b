"""What a run needs from whatever orchestrates it, and the orchestration of a terminal run.

A run's steps (``omnisync.sync.run``, ``omnisync.erp.run``) are written once. They ask their
orchestration for four things: a logger, a way to run a plan's windows side by side, a place to
publish a summary, and a way to say how far a long step is. The Prefect flows (``flows/``)
answer with Prefect's task runner, run logger and artifacts. :class:`Local` answers with a
bounded thread pool, the ``omnisync`` loggers, nothing to publish to, and a status line when its
caller gives one: it is what ``omnisync sync`` and ``omnisync reconcile`` use when no Prefect API
is configured, so that a run from a terminal or cron does not start a Prefect server (seconds
and hundreds of MiB per run, and a start-up timeout on a loaded host: docs/performance.md).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from omnisync.sync.context import RunContext
    from omnisync.sync.planning import Plan


class Orchestration(Protocol):
    def logger(self) -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
        """Where the run's own lines go (the Prefect run's log, or stderr)."""
        ...

    def run_windows(self, context: RunContext, plan: Plan) -> None:
        """Every window of ``plan`` (``sync_window_retrying``), at most
        ``OMNISYNC_WINDOW_CONCURRENCY`` at once. The first failure is raised once the windows
        already started have ended."""
        ...

    def publish(self, key: str, markdown: str, description: str) -> None:
        """A run's summary, where the people who schedule runs look for it."""
        ...

    def progress(self, key: str, done: int, total: int, rate: float | None = None) -> None:
        """How far a long step is (``done`` of ``total``); called from any thread, as often as
        work ends: implementations report at most every few seconds (:class:`Pacer`). ``rate``
        (items per second at most) gives the first report, at 0, its expected duration; later
        reports give the time left at the pace so far (:class:`Eta`)."""
        ...


class Pacer:
    """Lets a progress report through at the start, at the end, and otherwise at most every
    ``seconds``: a write-back of 5,000 changes says where it is without 5,000 log lines."""

    def __init__(self, seconds: float = 2.0) -> None:
        self._seconds = seconds
        self._last = float("-inf")
        self._highest = -1
        self._lock = threading.Lock()

    def due(self, done: int, total: int) -> bool:
        with self._lock:
            # Reports come from several threads: one counted before another may arrive after
            # it, and must not move the progress back (the last one shown is then the end).
            if done == 0:
                self._highest = 0
            elif done < self._highest:
                return False
            self._highest = done
            now = time.monotonic()
            if done in (0, total) or now - self._last >= self._seconds:
                self._last = now
                return True
            return False


def duration(seconds: float) -> str:
    """``seconds`` as people say it: "45 seconds", "9 minutes", "1.5 hours"."""
    if seconds < 90:
        whole = max(1, round(seconds))
        return f"{whole} second{'s' if whole != 1 else ''}"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} minutes"
    return f"{seconds / 3600:.1f} hours"


def progress_line(
    key: str, done: int, total: int, rate: float | None = None, elapsed: float | None = None
) -> str:
    """``erp-write-back: 120 of 5,215 (2%), about 8 minutes left``; at 0 with a ``rate``, what
    is ahead: ``erp-write-back: 5,215 changes at 10/s: about 9 minutes``."""
    if done == 0 and rate and total:
        noun = "change" if total == 1 else "changes"
        return f"{key}: {total:,} {noun} at {rate:g}/s: about {duration(total / rate)}"
    if total == 0:
        return f"{key}: nothing left to do"
    share = done / total if total else 1.0
    line = f"{key}: {done:,} of {total:,} ({share:.0%})"
    if elapsed is not None and 0 < done < total:
        line += f", about {duration(elapsed / done * (total - done))} left"
    return line


class Eta:
    """When each long step started (its first report), for the time left in its later ones."""

    def __init__(self) -> None:
        self._started: dict[str, float] = {}
        self._lock = threading.Lock()

    def line(self, key: str, done: int, total: int, rate: float | None = None) -> str:
        with self._lock:
            now = time.monotonic()
            if done == 0 or key not in self._started:
                self._started[key] = now
            elapsed = now - self._started[key]
        return progress_line(key, done, total, rate, elapsed)


#: the progress keys of a run's windows (``sync-windows: 3 of 25 (12%), about 2 minutes
#: left``): those of the plan it makes, and of one an earlier run left, which it finishes first
WINDOWS = "sync-windows"
RESUMED_WINDOWS = "sync-windows-resumed"


class Tally:
    """A long step's items counted as each ends, on any thread, for its progress (``report(done,
    total)``, from 0 at once: the pace is counted from there). Each count is reported under the
    lock that made it, so a count never follows a higher one on a status line."""

    def __init__(self, report: Callable[[int, int], None], total: int) -> None:
        self._report = report
        self._total = total
        self._done = 0
        self._lock = threading.Lock()
        report(0, total)

    def one(self) -> None:
        with self._lock:
            self._done += 1
            self._report(self._done, self._total)


class WindowsDone(Tally):
    """A plan's windows as each ends, for the orchestration's progress (:data:`WINDOWS`, or
    :data:`RESUMED_WINDOWS` for a plan an earlier run left: its own count from 0, not the
    other's going back): a backfill says where it is, and how long is left at its pace."""

    def __init__(self, orchestration: Orchestration, total: int, resumed: bool = False) -> None:
        key = RESUMED_WINDOWS if resumed else WINDOWS
        super().__init__(lambda done, of: orchestration.progress(key, done, of), total)

    def one_if_done(self, future: Future[Any]) -> None:
        """A window's future ended: counted when its window was done, not failed or cancelled."""
        if not future.cancelled() and future.exception() is None:
            self.one()


def _cancel_unstarted(futures: list[Future[Any]]) -> None:
    """Windows not started yet are not started at all; running ones end on their own."""
    for future in futures:
        future.cancel()


class Local:
    """A run in this process alone: threads, stdlib logging, the summary left to the caller."""

    def __init__(
        self,
        logger_name: str = "omnisync.run",
        on_progress: Callable[[str, int], None] | None = None,
    ) -> None:
        """``on_progress(line, done)`` gets every progress report as a line (a status line)."""
        self._logger = logging.getLogger(logger_name)
        self._on_progress = on_progress
        self._pacer = Pacer()
        self._eta = Eta()

    def logger(self) -> logging.Logger:
        return self._logger

    def run_windows(self, context: RunContext, plan: Plan) -> None:
        from omnisync.sync.window import sync_window_retrying

        workers = max(1, min(context.settings.window_concurrency, len(plan.windows)))
        ended = WindowsDone(self, len(plan.windows), plan.resumed)
        if workers == 1:  # one window at a time (the default) needs no thread at all
            for lo, hi in plan.windows:
                sync_window_retrying(
                    context, plan.plan_id, lo, hi, plan.first_pages.pop((lo, hi), None)
                )
                ended.one()
            return
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="window") as pool:
            futures = [
                pool.submit(
                    sync_window_retrying,
                    context,
                    plan.plan_id,
                    lo,
                    hi,
                    plan.first_pages.pop((lo, hi), None),
                )
                for lo, hi in plan.windows
            ]
            for future in futures:
                future.add_done_callback(ended.one_if_done)
            try:
                done, _ = wait(futures, return_when=FIRST_EXCEPTION)
                if any(future.exception() is not None for future in done):
                    _cancel_unstarted(futures)
                for future in futures:
                    future.result()
            except BaseException:
                # Ctrl-C lands on this thread, waiting here: leaving the pool waits for every
                # window still queued, so a backfill went on to its end. None is started now.
                _cancel_unstarted(futures)
                raise

    def publish(self, key: str, markdown: str, description: str) -> None:
        # A terminal run prints its own summary; the markdown is kept for a debugging reader.
        self._logger.debug("%s (%s):\n%s", key, description, markdown)

    def progress(self, key: str, done: int, total: int, rate: float | None = None) -> None:
        line = self._eta.line(key, done, total, rate)
        if self._on_progress is not None:
            self._on_progress(line, done)  # a status line: cheap, every time
        if self._pacer.due(done, total):
            self._logger.info("%s", line)
