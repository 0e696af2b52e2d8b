"""One reconciliation run, whole: the same steps whether Prefect or a terminal orchestrates it.

:func:`omnisync.erp.reconcile.reconcile` does the work; this adds what the people who schedule
runs see: the summary (published by the orchestration, a Prefect artifact in a flow run) and, when
the plan was stopped before any PATCH, why, in the same place.
"""

from __future__ import annotations

from typing import Any

from omnisync.counts import counts_markdown
from omnisync.erp.reconcile import reconcile
from omnisync.erp.refusal import PlanRejected, PlanTooLarge
from omnisync.erp.result import ReconcileResult, WriteBackFailed
from omnisync.erp.source import ErpSource
from omnisync.lake.browse import lake_link
from omnisync.orchestration import Orchestration
from omnisync.settings import Settings
from omnisync.validation.summary import validation_markdown
from transforms.erp.tables import MatchKey

KEY = "reconcile-erp-codes"


def run_reconcile(
    settings: Settings,
    source: ErpSource,
    match_on: MatchKey,
    orchestration: Orchestration,
    *,
    dry_run: bool = False,
    max_changes: str | None = None,
    force: bool = False,
    clear_unknown: bool = False,
) -> dict[str, Any]:
    """One recorded reconciliation; returns its summary. Raises what ``reconcile`` raises;
    ``WriteBackFailed`` only after the summary is published."""
    failure: WriteBackFailed | None = None
    try:
        result = reconcile(
            settings,
            source,
            match_on,
            dry_run=dry_run,
            max_changes=max_changes,
            force=force,
            clear_unknown=clear_unknown,
            progress=lambda done, total: orchestration.progress(
                "erp-write-back", done, total, rate=settings.max_rps
            ),
        )
    except WriteBackFailed as exc:
        failure, result = exc, exc.result
    except (PlanTooLarge, PlanRejected) as stopped:
        # Nothing was patched: say so where the scheduler looks, then fail the run.
        links = "" if stopped.result is None else "\n" + _links(settings, stopped.result)
        orchestration.publish(
            KEY,
            f"# reconcile-erp-codes: stopped before any PATCH\n\n{stopped}\n{links}",
            "why the plan was not applied",
        )
        raise
    summary = result.summary()
    title = f"# reconcile-erp-codes `{result.run_id}`" + (
        " (dry run: nothing was patched)" if dry_run else ""
    )
    orchestration.publish(
        KEY,
        f"{title}\n\n{counts_markdown(summary)}\n\n"
        f"{summary['unknown_in_erp']:,} erp_code(s) held in Omnitron are unknown to the ERP "
        "(`unknown_in_erp.csv` in the report).\n\n" + _links(settings, result),
        "plan size, conflicts and write-back outcomes",
    )
    orchestration.logger().info("reconciliation %s: %s", result.run_id, summary)
    if failure is not None:
        raise failure  # the run fails, with its counts published
    return summary


def _links(settings: Settings, result: ReconcileResult) -> str:
    """This run's own report (counts, conflicts with both sides, CSV per outcome) and pages."""
    report = (
        lake_link(settings, result.summary_relative, "Reconciliation report")
        if result.summary_relative
        else ""
    )
    return f"{report}\n\n{validation_markdown(settings, result.validation_pages)}"
