"""The Prefect flow ``reconcile-erp-codes``: orchestration only.

The run's steps are ``omnisync.erp.run.run_reconcile``, the same ones ``omnisync reconcile`` runs
from a terminal without a Prefect API. The ERP database URL is a secret: it comes from the
settings (``OMNISYNC_ERP_URL``) or a Prefect Secret block named by ``erp_url_secret``, never from a
flow parameter that the UI would show.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from prefect import flow
from prefect.states import Cancelled

from flows.orchestration import ACTIONABLE as COMMON
from flows.orchestration import PrefectRun, failed_in_one_line
from omnisync.erp import ErpInputError, ErpSource, PlanRejected, PlanTooLarge, WriteBackFailed
from omnisync.erp.run import run_reconcile
from omnisync.settings import load_settings
from omnisync.state import LockHeld


@flow(name="reconcile-erp-codes", log_prints=False)
def reconcile_erp_codes(
    erp_file: str | None = None,
    erp_query: str | None = None,
    match_on: Literal["pk", "channel_code", "email", "phone"] = "pk",
    dry_run: bool = False,
    max_changes: str | None = None,
    force: bool = False,
    clear_unknown: bool = False,
    columns: dict[str, str] | None = None,
    erp_url_secret: str | None = None,
) -> Any:
    """One reconciliation run; returns its summary (counts by outcome, report location), a
    ``Cancelled`` state when another reconciliation holds the write-back lock, or a ``Failed``
    state in one line for an error a person can act on (:data:`ACTIONABLE`).
    Settings come from the worker's environment (or ``settings_in_effect``)."""
    try:
        settings = load_settings()
        url = settings.erp_url.get_secret_value() if settings.erp_url else None
        if erp_url_secret:
            from prefect.blocks.system import Secret

            block: Any = Secret.load(erp_url_secret)
            url = str(block.get())
        source = ErpSource(
            file=Path(erp_file) if erp_file else None,
            url=url,
            query=erp_query,
            columns=columns or {},
        )
        return run_reconcile(
            settings,
            source,
            match_on,
            PrefectRun(settings),
            dry_run=dry_run,
            max_changes=max_changes,
            force=force,
            clear_unknown=clear_unknown,
        )
    except LockHeld as busy:
        # Another reconciliation is writing back: nothing went wrong, nothing was patched.
        return Cancelled(message=str(busy))
    except ACTIONABLE as error:
        # The artifact (run_reconcile's) says why, with the report's links.
        return failed_in_one_line(error)


#: what a person can act on in a reconciliation, besides every flow's
#: (:data:`flows.orchestration.ACTIONABLE`)
ACTIONABLE: tuple[type[Exception], ...] = (
    PlanTooLarge,
    PlanRejected,
    ErpInputError,
    WriteBackFailed,
    *COMMON,
)


if __name__ == "__main__":
    reconcile_erp_codes()
