"""What stops a reconciliation's plan before any PATCH: a plan that failed validation or matched
nothing (:class:`PlanRejected`), one that would clear too many codes, one larger than
``--max-changes`` (:class:`PlanTooLarge`). A stopped plan's report is written; nothing is patched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from omnisync.erp.source import ErpInputError
from transforms.erp.tables import MatchKey, Reconciliation

if TYPE_CHECKING:
    from omnisync.erp.result import ReconcileResult


class _Stopped(Exception):
    #: the plan that was stopped, when it got that far (its report was written)
    result: ReconcileResult | None = None


class PlanTooLarge(_Stopped):
    """The plan is larger than --max-changes: nothing was patched (use --force to go on)."""


class PlanRejected(_Stopped):
    """The plan or the ERP input failed validation: nothing was patched."""


# --clear-unknown may clear at most this share of the customers' codes (or MIN_CLEARS) without
# --force: an ERP export that lost rows must not wipe codes in production.
MAX_CLEAR_SHARE = 0.05
MIN_CLEARS = 10


def parse_limit(value: str | None, total: int) -> int | None:
    """``--max-changes`` as a count: ``500``, a share of the customers like ``2%``, or ``none``."""
    if value is None or value == "" or value.strip().lower() in ("none", "off"):
        return None
    text = value.strip()
    try:
        if text.endswith("%"):
            return int(total * float(text[:-1]) / 100)
        return int(text)
    except ValueError:
        raise ErpInputError(
            f"--max-changes must be a count, a share like 2%, or none; got {value!r}"
        ) from None


def plan_refusal(
    result: Reconciliation,
    customers: pa.Table,
    outcome: ReconcileResult,
    plan_problems: list[str],
    match_on: MatchKey,
    max_changes: str | None,
    force: bool,
    dry_run: bool,
) -> PlanRejected | PlanTooLarge | None:
    """Why this plan must not be applied (nothing will be patched), or None."""
    if plan_problems and result.plan.num_rows:
        return PlanRejected("write-back plan: " + "; ".join(plan_problems))
    if outcome.erp_rows and result.matched == 0 and not result.conflicts.num_rows:
        return PlanRejected(
            f"no ERP row matched a synced customer by {match_on} ({outcome.erp_row_outcomes}); "
            f"check --match-on and the ERP's columns. Review "
            f"{outcome.report_dir}/erp_rows/run={outcome.run_id}/"
        )
    clears = pc.sum(pc.equal(result.plan.column("action"), "clear")).as_py() or 0
    erp_codes = customers.column("erp_code")
    coded = pc.sum(pc.and_(pc.is_valid(erp_codes), pc.not_equal(erp_codes, ""))).as_py() or 0
    if clears > max(MIN_CLEARS, coded * MAX_CLEAR_SHARE) and not force:
        return PlanRejected(
            f"the plan would clear {clears} of {coded} erp_codes (--clear-unknown), more than "
            f"{MAX_CLEAR_SHARE:.0%}: the ERP input looks incomplete. Review "
            f"{outcome.report_dir}/plan/run={outcome.run_id}/, then re-run with --force (a "
            "deployment: the parameter force=true) if it is right"
        )
    limit = parse_limit(max_changes, customers.num_rows)
    if limit is not None and result.plan.num_rows > limit and not force and not dry_run:
        return PlanTooLarge(
            f"the plan has {result.plan.num_rows} changes, more than --max-changes "
            f"{max_changes} ({limit}); nothing was patched. Review {outcome.report_dir}"
            f"/plan/run={outcome.run_id}/, then re-run with --force or a larger limit (a "
            "deployment: the parameters force=true or max_changes)"
        )
    return None


def would_stop(planned: int, customers: pa.Table, max_changes: str | None, force: bool) -> str:
    """For a dry run: the line saying the real run would stop (PlanTooLarge) on this plan, or
    "" when it would go on."""
    limit = parse_limit(max_changes, customers.num_rows)
    if limit is None or planned <= limit or force:
        return ""
    return (
        f"the real run would stop here: the plan has {planned:,} changes, more than "
        f"--max-changes {max_changes} ({limit:,}); nothing would be patched without --force "
        "or a larger limit"
    )
