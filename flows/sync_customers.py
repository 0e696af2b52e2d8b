"""The Prefect flow ``sync-customers``: orchestration only.

The run's steps are ``omnisync.sync.run.run_sync``, the same ones ``omnisync sync`` runs from a
terminal without a Prefect API; here Prefect runs its windows as tasks, keeps its log and shows its
summary as an artifact. A run that finds the stream busy ends ``Cancelled`` (nothing went wrong),
naming the run that holds it.
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.states import Cancelled

from flows.orchestration import ACTIONABLE as COMMON
from flows.orchestration import PrefectRun, failed_in_one_line
from omnisync.settings import load_settings
from omnisync.sync import BatchRejected
from omnisync.sync.run import Refused, run_sync
from transforms.customers import SchemaDrift

#: what a person can act on in a sync, besides every flow's (:data:`flows.orchestration.ACTIONABLE`)
ACTIONABLE: tuple[type[Exception], ...] = (*COMMON, BatchRejected, SchemaDrift)


@flow(name="sync-customers", log_prints=False)
def sync_customers(full_refresh: bool = False) -> Any:
    """One incremental run (or a full refresh) of the customer sync; returns its counts, or a
    ``Cancelled`` state when another run holds the stream. Settings come from the worker's
    environment (or ``settings_in_effect``), never from a parameter the UI would show."""
    try:
        settings = load_settings()
        outcome = run_sync(settings, full_refresh, PrefectRun(settings))
    except ACTIONABLE as error:
        return failed_in_one_line(error)
    if isinstance(outcome, Refused):
        return Cancelled(message=outcome.message)
    return outcome


if __name__ == "__main__":
    sync_customers()
