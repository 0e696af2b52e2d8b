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
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from omnisync.connection import naming_omnitron_url, reach
from omnisync.erp.apply import apply_plan
from omnisync.erp.refusal import PlanRejected, PlanTooLarge, plan_refusal, would_stop
from omnisync.erp.report import write_report
from omnisync.erp.result import ReconcileResult, WriteBackFailed
from omnisync.erp.settling import record_settled
from omnisync.erp.source import ErpInputError, ErpSource
from omnisync.lake import LakeStorage
from omnisync.lake.quarantine import DATASET as QUARANTINE_DATASET
from omnisync.lake.reconciliation import DATASET, table_path, write_run_table
from omnisync.lake.record import check_format
from omnisync.settings import Settings
from omnisync.state import LockHeld, RunRecord, StateStore
from omnisync.url_credentials import without_userinfo
from omnisync.validation import Validator
from transforms.erp.planning import plan_changes
from transforms.erp.tables import KEY_COLUMNS, MatchKey, Reconciliation
from transforms.quality import validation_frame

log = logging.getLogger("omnisync.erp")
STREAM = "erp"  # the run log's name for reconciliations; the write-back lock is "erp-writeback"
SYNC_STREAM = "customers"  # whose watermark says how current the snapshot is


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
            if not dry_run and outcome.agreed is not None:
                record_settled(store, run_id, outcome.agreed)
            if not dry_run and outcome.planned:
                try:
                    apply_plan(settings, storage, store, outcome, run_id, progress)
                finally:  # Ctrl-C too: the run's row says what was patched before it
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
        right = result.erp_rows.filter(pc.equal(result.erp_rows.column("outcome"), "already_right"))
        # what the ERP and the lake agree on, with the lake's version (settling.record_settled)
        agreed = right.select(["pk", "erp_code"]).join(
            customers.select(["pk", "modified_date"]), "pk", join_type="inner"
        )
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
        agreed=agreed,
    )
    if sum(outcome.erp_row_outcomes.values()) != erp.num_rows:
        raise AssertionError(f"ERP rows unaccounted for: {outcome.erp_row_outcomes}")
    refusal = plan_refusal(
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
        outcome.would_stop = would_stop(result.plan.num_rows, customers, max_changes, force)
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


def check_login(settings: Settings) -> None:
    """One cheap request (a count, one customer long) with the run's credentials, before
    anything is planned or written: a refused OMNITRON_TOKEN or login raises
    ``AuthenticationFailed`` naming the setting to fix, instead of a plan that every PATCH
    would then fail on. It is the command's preflight: a few attempts, then OMNITRON_URL named."""
    with reach(settings) as client, naming_omnitron_url(settings, client):
        client.count_customers()


def _quarantined_pks(storage: LakeStorage) -> frozenset[int]:
    pks: set[int] = set()
    for name in storage.files(QUARANTINE_DATASET):
        column = storage.read_table(name, columns=["pk"]).column("pk")
        pks.update(pk for pk in pc.unique(column.drop_null()).to_pylist())
    return frozenset(pks)


def read_report(lake: str, run_id: str, name: str) -> pa.Table:
    """One run's table ``name`` (plan, conflicts, unknown_in_erp, erp_rows or outcomes)."""
    storage = LakeStorage(lake)
    return storage.read_table(table_path(name, run_id))
