"""What a run needs from whatever orchestrates it, and the orchestration of a terminal run.

A run's steps (``omnisync.sync.run``, ``omnisync.erp.run``) are written once. They ask their
orchestration for three things: a logger, a way to run a plan's windows side by side, and a place
to publish a summary. The Prefect flows (``flows/``) answer with Prefect's task runner, run logger
and artifacts. :class:`Local` answers with a bounded thread pool, the ``omnisync`` loggers and
nothing to publish to: it is what ``omnisync sync`` and ``omnisync reconcile`` use when no Prefect
API is configured, so that a run from a terminal or cron does not start a Prefect server (about
5 s and 225 MiB per run, and a start-up timeout on a loaded host).
"""

from __future__ import annotations

import logging
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from omnisync.sync.parts import RunParts
    from omnisync.sync.planning import Plan


class Orchestration(Protocol):
    def logger(self) -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
        """Where the run's own lines go (the Prefect run's log, or stderr)."""
        ...

    def run_windows(self, parts: RunParts, plan: Plan) -> None:
        """Every window of ``plan`` (``sync_window_retrying``), at most
        ``OMNISYNC_WINDOW_CONCURRENCY`` at once. The first failure is raised once the windows
        already started have ended."""
        ...

    def publish(self, key: str, markdown: str, description: str) -> None:
        """A run's summary, where the people who schedule runs look for it."""
        ...


class Local:
    """A run in this process alone: threads, stdlib logging, the summary left to the caller."""

    def __init__(self, logger_name: str = "omnisync.run") -> None:
        self._logger = logging.getLogger(logger_name)

    def logger(self) -> logging.Logger:
        return self._logger

    def run_windows(self, parts: RunParts, plan: Plan) -> None:
        from omnisync.sync.window import sync_window_retrying

        if len(plan.windows) <= 1:  # the common incremental: no thread at all
            for lo, hi in plan.windows:
                sync_window_retrying(parts, plan.plan_id, lo, hi, plan.first_pages.get((lo, hi)))
            return
        workers = max(1, min(parts.settings.window_concurrency, len(plan.windows)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="window") as pool:
            futures = [
                pool.submit(
                    sync_window_retrying,
                    parts,
                    plan.plan_id,
                    lo,
                    hi,
                    plan.first_pages.get((lo, hi)),
                )
                for lo, hi in plan.windows
            ]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            if any(future.exception() is not None for future in done):
                # Windows not started yet are not started at all; running ones end on their own.
                for future in futures:
                    future.cancel()
            for future in futures:
                future.result()

    def publish(self, key: str, markdown: str, description: str) -> None:
        # A terminal run prints its own summary; the markdown is kept for a debugging reader.
        self._logger.debug("%s (%s):\n%s", key, description, markdown)
