"""A reconciliation's plan applied: the write-back under its lock, with the change guard, and the
outcomes written whatever ends it (``reconciliation/outcomes/`` and the human report)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from omnisync.connection import open_client
from omnisync.erp.change_guard import ChangeGuard
from omnisync.erp.outcomes import Attempt, outcomes_table
from omnisync.erp.report import write_report
from omnisync.erp.result import ReconcileResult
from omnisync.erp.writeback import LOCK, write_back
from omnisync.lake import LakeStorage
from omnisync.lake.reconciliation import write_run_table
from omnisync.orchestration import Tally
from omnisync.settings import Settings
from omnisync.state import StateStore


def apply_plan(
    settings: Settings,
    storage: LakeStorage,
    store: StateStore,
    outcome: ReconcileResult,
    run_id: str,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Apply the plan under the write-back lock; outcomes.parquet is written whatever happens."""
    attempts: list[Attempt] = []
    assert outcome.plan is not None
    # What is ahead: the plan less what the ledger holds done, as the write-back tells it (a
    # run after an interrupted one skips those at once: counted, they made "1,000 changes ...
    # about 2 minutes" of 691 left, and the pace after them "about 1 second left").
    tally: list[Tally] = []

    def start(changes: int) -> None:
        if progress is not None:
            tally.append(Tally(progress, changes))

    def step(_: Attempt) -> None:
        if tally:
            tally[0].one()

    try:
        with (
            store.lease.locked(
                LOCK, wait_seconds=settings.lock_wait_seconds, run_id=run_id
            ) as fence,
            open_client(settings) as client,
        ):
            guard = (
                None
                if outcome.guard_since is None
                else ChangeGuard(
                    client,
                    outcome.guard_since,
                    dt.timedelta(seconds=settings.lag_seconds),
                    settings.page_size,
                )
            )
            write_back(
                client,
                store,
                outcome.plan,
                run_id,
                settings.concurrency,
                progress=step,
                attempts=attempts,
                guard=guard,
                read_alone=outcome.read_alone,
                fence=fence,
                # once the lock is held (a busy lock is not "about 9 minutes" ahead), and from
                # this thread: a Prefect progress artifact belongs to the run
                ahead=start,
            )
    finally:
        done = outcomes_table(attempts, run_id)
        write_run_table(storage, "outcomes", run_id, done)
        if outcome.human is not None:
            write_report(storage, run_id, *outcome.human, outcome.plan, outcomes=done)
        counts: dict[str, int] = {}
        for attempt in attempts:
            counts[attempt.outcome] = counts.get(attempt.outcome, 0) + 1
        outcome.outcomes = counts
        outcome.lost_answers = sum(attempt.lost_answers for attempt in attempts)
