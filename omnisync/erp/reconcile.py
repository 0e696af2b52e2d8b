"""One ERP reconciliation run, without Prefect (the flow in ``flows/`` orchestrates it).

Steps: read and validate the ERP input (``erp_codes``), match it against the synced
``customers/`` (Omnitron is not read again for planning), plan, validate the plan
(``erp_patch_plan``), write plan, conflicts and unknown codes (each table to its own dataset,
``reconciliation/<table>/run=<id>/``), stop for a dry run or a plan over the limit, then write back
and record the outcomes.

The run is recorded in the state database from start to outcome (``omnisync status``), and its
``reconciliation/outcomes/`` file is written whatever ends the write-back. A run in which any
wanted change was not made raises ``WriteBackFailed`` (after writing everything), so the CLI exits
1 and the Prefect flow run fails, with the counts.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from omnisync.connection import open_client
from omnisync.erp.outcomes import Attempt, is_failure, outcomes_table
from omnisync.erp.report import write_report
from omnisync.erp.source import ErpInputError, read_file, read_query
from omnisync.erp.writeback import ChangeGuard, write_back
from omnisync.lake import LakeStorage
from omnisync.lake.quarantine import DATASET as QUARANTINE_DATASET
from omnisync.lake.reconciliation import DATASET, table_path, write_run_table
from omnisync.lake.snapshot import check_format
from omnisync.settings import Settings, without_userinfo
from omnisync.state import LockHeld, RunRecord, StateStore
from omnisync.validation import Validator
from omnisync.validation.runner import ValidationPage
from transforms.erp import KEY_COLUMNS, MatchKey, Reconciliation, plan_changes
from transforms.quality import validation_frame

log = logging.getLogger("omnisync.erp")
STREAM = "erp"  # the run log's name for reconciliations; the write-back lock is "erp-writeback"
SYNC_STREAM = "customers"  # whose watermark says how current the snapshot is


class _Stopped(Exception):
    #: the plan that was stopped, when it got that far (its report was written)
    result: ReconcileResult | None = None


class PlanTooLarge(_Stopped):
    """The plan is larger than --max-changes: nothing was patched (use --force to go on)."""


class PlanRejected(_Stopped):
    """The plan or the ERP input failed validation: nothing was patched."""


class WriteBackFailed(Exception):
    """Some wanted changes were not made (refused, or not attempted): see the outcomes."""

    def __init__(self, message: str, result: ReconcileResult) -> None:
        super().__init__(message)
        self.result = result


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


# --clear-unknown may clear at most this share of the customers' codes (or MIN_CLEARS) without
# --force: an ERP export that lost rows must not wipe codes in production.
MAX_CLEAR_SHARE = 0.05
MIN_CLEARS = 10


def needed_columns(settings: Settings, match_on: MatchKey) -> list[str]:
    """The customers/ columns reconciliation reads, refusing (ErpInputError, one line) when the
    PII policy hashed or dropped one it cannot do without."""
    needed = ["pk", "erp_code", "modified_date", *KEY_COLUMNS[match_on]]
    for name in needed:
        action = settings.pii_policy.get(name, "keep")
        if action != "keep":
            raise ErpInputError(
                f"--match-on {match_on} needs customers/{name}, which OMNISYNC_PII_POLICY "
                f"{action}es ({name}: {action}); match on pk or channel_code, or keep {name}"
                if name in KEY_COLUMNS[match_on]
                else f"reconciliation needs customers/{name}, which OMNISYNC_PII_POLICY "
                f"{action}es ({name}: {action}); keep {name} to reconcile"
            )
    return list(dict.fromkeys(needed))


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
    #: PATCH answers lost on the way; each change's outcome says what its re-read found
    lost_answers: int = 0
    #: the reconciliation datasets' folder: this run's tables are ``<table>/run=<id>/`` in it
    report_dir: str = ""
    plan: pa.Table | None = field(default=None, repr=False)
    #: what became of each ERP input row (planned, already_right, conflict, unknown_customer,
    #: invalid); the counts add up to erp_rows
    erp_row_outcomes: dict[str, int] = field(default_factory=dict)
    #: where the write-back's change listing starts (the sync's watermark less its lookback,
    #: read before the snapshot); None: every customer is read again on its own
    guard_since: dt.datetime | None = field(default=None, repr=False)
    #: customers the sync quarantined: the snapshot may lack their newest version
    read_alone: frozenset[int] = field(default=frozenset(), repr=False)
    #: what the human report shows besides the plan: ERP rows, conflicts, Omnitron's codes,
    #: the codes unknown to the ERP
    human: tuple[pa.Table, pa.Table, dict[int, str | None], pa.Table] | None = field(
        default=None, repr=False
    )
    #: the report people open: _reports/reconciliation/run=<id>/summary.html
    summary_page: str = ""
    #: the same, relative to the lake root (for links)
    summary_relative: str = ""
    #: this run's validations (ERP input, plan) and their Data Docs pages
    validation_pages: list[ValidationPage] = field(default_factory=list, repr=False)
    #: a dry run's plan above --max-changes: the one line saying the real run would stop
    would_stop: str = ""

    @property
    def failed(self) -> int:
        return sum(n for outcome, n in self.outcomes.items() if is_failure(outcome))

    def summary(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "erp_rows": self.erp_rows,
            "erp_row_outcomes": self.erp_row_outcomes,
            "planned": self.planned,
            "unchanged": self.unchanged,
            "conflicts": self.conflicts,
            "unknown_in_erp": self.unknown_in_erp,
            "unmatched_erp_rows": self.unmatched_erp_rows,
            "dry_run": self.dry_run,
            "outcomes": self.outcomes,
            "lost_answers": self.lost_answers,
            "failed": self.failed,
            "report": self.report_dir,
            "summary": self.summary_page,
            **({"would_stop": self.would_stop} if self.would_stop else {}),
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
    progress: Callable[[int, int], None] | None = None,
) -> ReconcileResult:
    """One recorded reconciliation; raises PlanRejected, PlanTooLarge, ErpInputError (nothing
    patched) or WriteBackFailed (after writing the outcomes). ``progress(done, total)`` is
    called as each change of the write-back ends."""
    run_id = run_id or f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    storage = LakeStorage(settings.lake)
    storage.check_writable()
    check_format(storage)  # an older lake: one line saying to rebuild it
    store = StateStore(
        settings.state_url.get_secret_value(), lease_seconds=settings.lock_lease_seconds
    )
    store.migrate()
    try:
        kind = "dry-run" if dry_run else "write-back"
        stopped_by = (PlanTooLarge, PlanRejected, ErpInputError)  # before any PATCH
        with RunRecord(
            store, run_id, STREAM, kind, stopped_by=stopped_by, refused_by=(LockHeld,)
        ) as record:
            outcome = _plan(
                settings,
                storage,
                store,
                source,
                match_on,
                max_changes,
                force,
                clear_unknown,
                run_id,
                dry_run,
            )
            outcome.dry_run = dry_run
            record.counts = outcome.summary()
            if not dry_run and outcome.planned:
                _write_back(settings, storage, store, outcome, run_id, progress)
                record.counts = outcome.summary()
                if outcome.failed:
                    raise WriteBackFailed(
                        f"{outcome.failed} of {outcome.planned} change(s) were not made "
                        f"({', '.join(f'{n} {k}' for k, n in sorted(outcome.outcomes.items()))}); "
                        f"see {storage.path(table_path('outcomes', run_id))} and the ledger",
                        outcome,
                    )
            return outcome
    finally:
        store.dispose()


#: the ERP input's validation column saying the row is in conflict (``erp_codes`` suite)
IN_CONFLICT = "_in_conflict"


def _erp_frame(erp: pa.Table, result: Reconciliation, validator: Validator) -> Any:
    """The ERP input as the ``erp_codes`` suite reads it, with :data:`IN_CONFLICT` per row."""
    frame = validation_frame(erp, validator.columns_read("erp_codes"))
    rows = result.erp_rows
    conflicting = rows.filter(pc.equal(rows.column("outcome"), "conflict")).column("row")
    flags = np.zeros(len(frame), dtype=bool)
    flags[conflicting.to_numpy()] = True
    frame[IN_CONFLICT] = flags
    return frame


def _plan(
    settings: Settings,
    storage: LakeStorage,
    store: StateStore,
    source: ErpSource,
    match_on: MatchKey,
    max_changes: str | None,
    force: bool,
    clear_unknown: bool,
    run_id: str,
    dry_run: bool = False,
) -> ReconcileResult:
    """Read, match, plan, validate and report; raises when the plan must not be applied."""
    # Before the snapshot is read: the snapshot is at least as new as this watermark.
    watermark = store.watermarks.get(SYNC_STREAM)
    customer_files = storage.files("customers")
    if not customer_files:  # before GX starts: a mistake is named in a second
        raise ErpInputError(
            f"no synced customers under {without_userinfo(settings.lake)}/customers: "
            "run `omnisync sync` first"
        )
    needed = needed_columns(settings, match_on)
    erp = source.read(match_on)
    check_login(settings)
    validator = Validator.for_settings(settings)
    try:
        customers = pa.concat_tables(
            [storage.read_table(f, columns=needed) for f in customer_files],
            promote_options="permissive",
        )
        result = plan_changes(erp, customers, match_on, clear_unknown=clear_unknown)
        # Validated once matched: a row in conflict is a finding of the ERP input's page too.
        checked = validator.validate(
            "erp_codes", _erp_frame(erp, result, validator), f"{run_id}-erp"
        )
        if checked.critical:
            raise PlanRejected("ERP input: " + "; ".join(checked.critical))
        write_run_table(storage, "plan", run_id, result.plan)
        write_run_table(storage, "conflicts", run_id, result.conflicts)
        write_run_table(storage, "unknown_in_erp", run_id, result.unknown_in_erp)
        write_run_table(storage, "erp_rows", run_id, result.erp_rows)
        plan_check = validator.validate(
            "erp_patch_plan",
            validation_frame(result.plan, validator.columns_read("erp_patch_plan")),
            f"{run_id}-plan",
        )
        validator.publish_docs()
        pages = validator.pages(run_id)
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
        dry_run=False,
        report_dir=storage.path(DATASET),
        plan=result.plan,
        erp_row_outcomes=result.row_counts(),
        guard_since=None
        if watermark is None
        else watermark - dt.timedelta(seconds=settings.lookback_seconds),
        read_alone=_quarantined_pks(storage),
    )
    if sum(outcome.erp_row_outcomes.values()) != erp.num_rows:
        raise AssertionError(f"ERP rows unaccounted for: {outcome.erp_row_outcomes}")
    refusal = _refusal(
        result, customers, outcome, plan_check.critical, match_on, max_changes, force, dry_run
    )
    in_conflict = pc.unique(pc.list_flatten(result.conflicts.column("pks"))).to_pylist()
    known = customers.filter(
        pc.is_in(customers.column("pk"), value_set=pa.array(in_conflict, pa.int64()))
    )
    codes_now = dict(
        zip(known.column("pk").to_pylist(), known.column("erp_code").to_pylist(), strict=True)
    )
    outcome.human = (result.erp_rows, result.conflicts, codes_now, result.unknown_in_erp)
    outcome.validation_pages = pages
    if dry_run:
        outcome.would_stop = _would_stop(result.plan.num_rows, customers, max_changes, force)
    outcome.summary_relative = write_report(
        storage,
        run_id,
        *outcome.human,
        result.plan,
        refused=None if refusal is None else str(refusal),
        dry_run=dry_run,
        would_stop=outcome.would_stop,
    )
    outcome.summary_page = storage.path(outcome.summary_relative)
    if refusal is not None:
        refusal.result = outcome
        raise refusal
    return outcome


def _refusal(
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


def _would_stop(planned: int, customers: pa.Table, max_changes: str | None, force: bool) -> str:
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


def check_login(settings: Settings) -> None:
    """One cheap request (a count, one customer long) with the run's credentials, before
    anything is planned or written: a refused OMNITRON_TOKEN or login raises
    ``AuthenticationFailed`` naming the setting to fix, instead of a plan that every PATCH
    would then fail on."""
    with open_client(settings) as client:
        client.count_customers()


def _quarantined_pks(storage: LakeStorage) -> frozenset[int]:
    pks: set[int] = set()
    for name in storage.files(QUARANTINE_DATASET):
        column = storage.read_table(name, columns=["pk"]).column("pk")
        pks.update(pk for pk in pc.unique(column.drop_null()).to_pylist())
    return frozenset(pks)


def _write_back(
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
    total = outcome.plan.num_rows

    def step(_: Attempt) -> None:
        if progress is not None:
            progress(len(attempts), total)

    try:
        with (
            store.lease.locked(
                "erp-writeback", wait_seconds=settings.lock_wait_seconds, run_id=run_id
            ),
            open_client(settings) as client,
        ):
            # Once the lock is held (a busy lock is not "about 9 minutes" ahead), and from this
            # thread: a Prefect progress artifact belongs to the run.
            if progress is not None:
                progress(0, total)
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


def read_report(lake: str, run_id: str, name: str) -> pa.Table:
    """One run's table ``name`` (plan, conflicts, unknown_in_erp, erp_rows or outcomes)."""
    storage = LakeStorage(lake)
    return storage.read_table(table_path(name, run_id))
