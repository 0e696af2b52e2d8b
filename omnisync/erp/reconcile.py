"""One ERP reconciliation run, without Prefect (the flow in ``flows/`` orchestrates it).

Steps: read and validate the ERP input (``erp_codes``), match it against the synced
``customers/`` (Omnitron is not read again for planning), plan, validate the plan
(``erp_patch_plan``), write plan, conflicts and unknown codes to ``reconciliation/run=<id>/``,
stop for a dry run or a plan over the limit, then write back and record the outcomes.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from omnisync.client import OmnitronClient
from omnisync.erp.source import ErpInputError, read_file, read_query
from omnisync.erp.writeback import FAILED, Attempt, outcomes_table, write_back
from omnisync.lake import LakeStorage
from omnisync.settings import Settings
from omnisync.state import StateStore
from omnisync.validation import Validator
from transforms.erp import CUSTOMER_COLUMNS, MatchKey, plan_changes
from transforms.quality import validation_frame

log = logging.getLogger("omnisync.erp")
DATASET = "reconciliation"


class PlanTooLarge(Exception):
    """The plan is larger than --max-changes: nothing was patched (use --force to go on)."""


class PlanRejected(Exception):
    """The plan or the ERP input failed validation: nothing was patched."""


@dataclass
class ErpSource:
    file: Path | None = None
    url: str | None = None
    query: str | None = None
    columns: dict[str, str] = field(default_factory=dict)

    def read(self, match_on: MatchKey) -> pa.Table:
        if self.file is not None:
            return read_file(self.file, match_on, self.columns)
        if self.url and self.query:
            return read_query(self.url, self.query, match_on, self.columns)
        raise ErpInputError("give --erp-file, or --erp-url with --erp-query")


def parse_limit(value: str | None, total: int) -> int | None:
    """``--max-changes`` as a count: ``500`` or a share of the customers like ``2%``."""
    if value is None or value == "":
        return None
    text = value.strip()
    try:
        if text.endswith("%"):
            return int(total * float(text[:-1]) / 100)
        return int(text)
    except ValueError:
        raise ErpInputError(
            f"--max-changes must be a count or a share like 2%, got {value!r}"
        ) from None


@dataclass
class ReconcileResult:
    run_id: str
    planned: int
    conflicts: int
    unknown_in_erp: int
    unmatched_erp_rows: int
    unchanged: int
    erp_rows: int
    dry_run: bool
    outcomes: dict[str, int] = field(default_factory=dict)
    report_dir: str = ""

    @property
    def failed(self) -> int:
        return sum(n for outcome, n in self.outcomes.items() if outcome in FAILED)

    def summary(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "erp_rows": self.erp_rows,
            "planned": self.planned,
            "unchanged": self.unchanged,
            "conflicts": self.conflicts,
            "unknown_in_erp": self.unknown_in_erp,
            "unmatched_erp_rows": self.unmatched_erp_rows,
            "dry_run": self.dry_run,
            "outcomes": self.outcomes,
            "failed": self.failed,
            "report": self.report_dir,
        }


def reconcile(
    settings: Settings,
    source: ErpSource,
    match_on: MatchKey,
    *,
    dry_run: bool = False,
    max_changes: str | None = None,
    force: bool = False,
    clear_unknown: bool = False,
    run_id: str | None = None,
) -> ReconcileResult:
    run_id = run_id or f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    storage = LakeStorage(settings.lake)
    storage.check_writable()
    erp = source.read(match_on)
    validator = Validator(settings.lake)
    try:
        checked = validator.validate("erp_codes", validation_frame(erp), f"{run_id}-erp")
        if checked.critical:
            raise PlanRejected("ERP input: " + "; ".join(checked.critical))
        customer_files = storage.files("customers")
        if not customer_files:
            raise ErpInputError(
                f"no synced customers under {settings.lake}/customers: run `omnisync sync` first"
            )
        customers = pa.concat_tables(
            [storage.read_table(f, columns=CUSTOMER_COLUMNS) for f in customer_files],
            promote_options="permissive",
        )
        result = plan_changes(erp, customers, match_on, clear_unknown=clear_unknown)
        report = f"{DATASET}/run={run_id}"
        storage.write_table(f"{report}/plan.parquet", result.plan)
        storage.write_table(f"{report}/conflicts.parquet", result.conflicts)
        storage.write_table(f"{report}/unknown_in_erp.parquet", result.unknown_in_erp)
        plan_check = validator.validate(
            "erp_patch_plan", validation_frame(result.plan), f"{run_id}-plan"
        )
        validator.publish_docs()
    finally:
        validator.close()
    outcome = ReconcileResult(
        run_id,
        result.plan.num_rows,
        result.conflicts.num_rows,
        result.unknown_in_erp.num_rows,
        result.unmatched_erp_rows,
        result.unchanged,
        erp.num_rows,
        dry_run,
        report_dir=storage.path(report),
    )
    if plan_check.critical and result.plan.num_rows:
        raise PlanRejected("write-back plan: " + "; ".join(plan_check.critical))
    limit = parse_limit(max_changes, customers.num_rows)
    if limit is not None and result.plan.num_rows > limit and not force and not dry_run:
        raise PlanTooLarge(
            f"the plan has {result.plan.num_rows} changes, more than --max-changes "
            f"{max_changes} ({limit}); nothing was patched. Review {outcome.report_dir}"
            f"/plan.parquet, then re-run with --force or a larger limit"
        )
    if dry_run or result.plan.num_rows == 0:
        return outcome
    store = StateStore(
        settings.state_url.get_secret_value(), lease_seconds=settings.lock_lease_seconds
    )
    store.migrate()
    try:
        with (
            store.locked("erp-writeback", wait_seconds=settings.lock_wait_seconds),
            OmnitronClient.from_settings(settings) as client,
        ):
            attempts: list[Attempt] = write_back(
                client, store, result.plan, run_id, settings.concurrency
            )
    finally:
        store.dispose()
    storage.write_table(f"{report}/outcomes.parquet", outcomes_table(attempts, run_id))
    counts: dict[str, int] = {}
    for attempt in attempts:
        counts[attempt.outcome] = counts.get(attempt.outcome, 0) + 1
    outcome.outcomes = counts
    return outcome


def read_report(lake: str, run_id: str, name: str) -> pa.Table:
    storage = LakeStorage(lake)
    return pq.read_table(
        storage.path(f"{DATASET}/run={run_id}/{name}.parquet"), filesystem=storage.fs
    )
