"""One sync run's parts and steps, without Prefect: the flow in ``flows/`` orchestrates these.

Order of work per window (G3): extract, type, validate, write the change log and quarantine,
merge into the snapshot, and only then mark the window done. The watermark moves once every
window of the plan is done, to the greatest ``modified_date`` read (a record value, never the
local clock). A crash at any point leaves the watermark behind the data; running again rewrites
the same window files and re-merges idempotently, so the lake converges.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pyarrow as pa

from omnisync.client import OmnitronClient
from omnisync.lake import ChangeLog, LakeStorage, Snapshot, window_key, write_quarantine
from omnisync.settings import Settings
from omnisync.state import StateStore
from omnisync.state.store import from_us, to_us
from omnisync.sync.extraction import extract_window
from omnisync.sync.planning import plan_windows
from omnisync.validation import Validator, validate_customers
from transforms.customers import Lineage, to_table
from transforms.pii import apply_pii_policy
from transforms.schema import QUARANTINE_SCHEMA
from transforms.versions import latest_per_pk

log = logging.getLogger("omnisync.sync")
STREAM = "customers"


class BatchRejected(Exception):
    """Validation failed for a whole batch (systemic problem): the run stops, watermark stays."""


@dataclass
class Plan:
    plan_id: str
    upper: dt.datetime
    watermark_before: dt.datetime | None
    windows: list[tuple[dt.datetime | None, dt.datetime]]
    resumed: bool = False
    done: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class WindowResult:
    lo: dt.datetime | None
    hi: dt.datetime
    rows: int = 0
    written: int = 0
    changes_logged: int = 0
    quarantined: int = 0
    flagged: int = 0
    max_modified: dt.datetime | None = None
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "lo": self.lo,
            "hi": self.hi,
            "rows": self.rows,
            "written": self.written,
            "changes_logged": self.changes_logged,
            "quarantined": self.quarantined,
            "flagged": self.flagged,
            "max_modified": self.max_modified,
        }


class SyncJob:
    """The parts of one run, opened once: client, state store, lake and GX validator.

    ``SyncJob.shared(settings, run_id)`` gives every task of a run in one process the same job,
    so a thread pool shares one client (and its throttle) and one GX context, and each Dask
    worker process builds its own once.
    """

    _shared: ClassVar[dict[str, SyncJob]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def shared(cls, settings: Settings, run_id: str) -> SyncJob:
        with cls._shared_lock:
            job = cls._shared.get(run_id)
            if job is None:
                job = cls._shared[run_id] = cls(settings, run_id)
            return job

    @classmethod
    def release(cls, run_id: str) -> None:
        with cls._shared_lock:
            job = cls._shared.pop(run_id, None)
        if job is not None:
            job.close()

    def __init__(self, settings: Settings, run_id: str | None = None) -> None:
        self.settings = settings
        self.run_id = run_id or uuid.uuid4().hex
        self.storage = LakeStorage(settings.lake)
        self.storage.check_writable()
        self.store = StateStore(
            settings.state_url.get_secret_value(), lease_seconds=settings.lock_lease_seconds
        )
        self.store.migrate()
        self.client = OmnitronClient.from_settings(settings)
        self.changes = ChangeLog(self.storage)
        self.snapshot = Snapshot(self.storage, buckets=settings.snapshot_buckets)
        self._validator: Validator | None = None
        self._datetimes: bool | None = None

    @property
    def validator(self) -> Validator:
        if self._validator is None:
            self._validator = Validator(self.settings.lake)
        return self._validator

    @property
    def datetimes(self) -> bool:
        if self._datetimes is None:
            self._datetimes = self.client.datetime_filters_supported
        return self._datetimes

    def check_source(self) -> None:
        """Log in and ask once, so that a wrong URL or credential fails before any work."""
        self.client.count_customers()

    def close(self) -> None:
        self.client.close()
        if self._validator is not None:
            self._validator.close()
        self.store.dispose()

    # -- planning -----------------------------------------------------------------------------
    def plan(self, full_refresh: bool = False) -> Plan:
        """Resume an unfinished plan, or plan ``[watermark - lookback, server now - lag)``."""
        watermark = self.store.watermark(STREAM)
        if full_refresh:
            self.store.abandon_plans(STREAM)
        else:
            open_plan = self.store.open_plan(STREAM)
            if open_plan is not None:
                plan_id, windows = open_plan
                log.info(
                    "resuming plan %s: %d of %d windows left",
                    plan_id,
                    sum(w.status != "done" for w in windows),
                    len(windows),
                )
                return Plan(
                    plan_id,
                    from_us(windows[-1].hi_us),
                    watermark,
                    [
                        (None if w.lo_us == 0 else from_us(w.lo_us), from_us(w.hi_us))
                        for w in windows
                        if w.status != "done"
                    ],
                    resumed=True,
                    done=[
                        {
                            "rows": w.rows or 0,
                            "max_modified": None
                            if w.max_modified_us is None
                            else from_us(w.max_modified_us),
                        }
                        for w in windows
                        if w.status == "done"
                    ],
                )
        upper = self.client.server_time() - dt.timedelta(seconds=self.settings.lag_seconds)
        lower = (
            None
            if (watermark is None or full_refresh)
            else (watermark - dt.timedelta(seconds=self.settings.lookback_seconds))
        )
        if lower is not None and lower >= upper:
            return Plan(uuid.uuid4().hex, upper, watermark, [])
        bounds = plan_windows(self.client, lower, upper, self.datetimes, self.settings.window_rows)
        plan = Plan(uuid.uuid4().hex, upper, watermark, bounds)
        self.store.save_plan(
            STREAM,
            plan.plan_id,
            [(0 if lo is None else to_us(lo), to_us(hi)) for lo, hi in bounds],
        )
        return plan

    # -- one window ---------------------------------------------------------------------------
    def sync_window(self, plan_id: str, lo: dt.datetime | None, hi: dt.datetime) -> WindowResult:
        """Extract, type, validate and write one window, then mark it done (G3).

        Each chunk's rows are staged per snapshot bucket under ``_staging/``; the window's
        versions go to the change log once, at the end of the window (one file per day), and the
        staged rows are merged into ``customers/`` once per plan by ``finish``: a backfill then
        rewrites each bucket once instead of once per chunk. Memory: one window's typed rows.
        """
        result = WindowResult(lo, hi)
        name = window_key(lo, hi)
        lineage = Lineage(self.run_id, dt.datetime.now(dt.UTC), self.client.base_url)
        chunk: list[dict[str, Any]] = []
        tables: list[pa.Table] = []
        rejected: list[pa.Table] = []
        number = 0
        for page in extract_window(self.client, lo, hi, self.datetimes, self.settings.page_size):
            chunk.extend(page)
            if len(chunk) >= self.settings.chunk_rows:
                number += 1
                good, bad = self._stage_chunk(
                    chunk, plan_id, f"{name}-{number:04d}", lineage, result
                )
                tables.append(good)
                rejected.append(bad)
                chunk = []
        if chunk:
            number += 1
            good, bad = self._stage_chunk(chunk, plan_id, f"{name}-{number:04d}", lineage, result)
            tables.append(good)
            rejected.append(bad)
        if tables:
            result.changes_logged += self.changes.write_window(
                pa.concat_tables(tables, promote_options="permissive"), name
            )
        # One quarantine file per window, so that a retried window replaces it, whatever chunks.
        write_quarantine(
            self.storage,
            pa.concat_tables(rejected) if rejected else QUARANTINE_SCHEMA.empty_table(),
            name,
            lineage.extracted_at,
        )
        self.store.complete_window(
            STREAM,
            plan_id,
            0 if lo is None else to_us(lo),
            result.rows,
            None if result.max_modified is None else to_us(result.max_modified),
        )
        return result

    def _stage_chunk(
        self,
        records: list[dict[str, Any]],
        plan_id: str,
        name: str,
        lineage: Lineage,
        result: WindowResult,
    ) -> tuple[pa.Table, pa.Table]:
        """Type, validate and stage one chunk; returns its rows for the change log and the
        rows for quarantine."""
        converted = to_table(records, lineage)
        table = converted.table
        validation = validate_customers(
            self.validator,
            latest_per_pk(table) if table.num_rows else table,
            f"{self.run_id}-{name}",
            self.settings.max_quarantine_share,
            already_rejected=converted.rejected.num_rows,
        )
        if not validation.passed:
            raise BatchRejected(f"window {name}: " + "; ".join(validation.failures))
        table = _with_flags(table, _flags_by_pk(validation.good))
        quarantined = pa.concat_tables([converted.rejected, validation.quarantined])
        rejected_pks = _pks(validation.quarantined)
        good = table.filter(
            pa.array([pk not in rejected_pks for pk in table.column("pk").to_pylist()])
        )
        analyst = apply_pii_policy(
            good, self.settings.pii_policy, self.settings.pii_salt.get_secret_value().encode()
        )
        for bucket, part in self.snapshot.split(analyst):
            self.storage.write_table(
                f"{staging_dir(plan_id)}/bucket={bucket:03d}/{name}.parquet", part
            )
        result.rows += len(records)
        result.written += good.num_rows
        result.quarantined += quarantined.num_rows
        result.flagged += validation.flagged_rows
        result.warnings.extend(validation.warnings)
        if good.num_rows:
            top = max(good.column("modified_date").to_pylist())
            result.max_modified = (
                top if result.max_modified is None else max(result.max_modified, top)
            )
        return analyst, quarantined

    # -- finishing ----------------------------------------------------------------------------
    def merge_staged(self, plan_id: str) -> int:
        """Merge every staged row of the plan into ``customers/``, bucket by bucket (memory: one
        bucket and its staged rows). Idempotent: a crash here is finished by the next run."""
        merged = 0
        for bucket in range(self.snapshot.buckets):
            files = self.storage.files(f"{staging_dir(plan_id)}/bucket={bucket:03d}")
            if files:
                staged = pa.concat_tables(
                    [self.storage.read_table(f) for f in files], promote_options="permissive"
                )
                self.snapshot.merge_bucket(bucket, staged)
                merged += 1
        return merged

    def finish(self, plan: Plan, results: list[WindowResult]) -> dt.datetime | None:
        """Merge the staged rows, then advance the watermark (G3); compact closed days."""
        self.merge_staged(plan.plan_id)
        stamps = [r.max_modified for r in results if r.max_modified is not None]
        stamps += [d["max_modified"] for d in plan.done if d.get("max_modified") is not None]
        watermark = plan.watermark_before
        if stamps:
            self.store.set_watermark(STREAM, max(stamps), self.run_id)
            watermark = self.store.watermark(STREAM)
        self.store.close_plan(STREAM, plan.plan_id)
        self.storage.delete_tree(staging_dir(plan.plan_id))
        if watermark is not None:
            closed = (watermark - dt.timedelta(seconds=self.settings.lookback_seconds)).date()
            self.changes.compact(before=closed - dt.timedelta(days=1))
        return watermark


def staging_dir(plan_id: str) -> str:
    return f"_staging/customers/plan={plan_id}"


def _pks(table: pa.Table) -> set[int]:
    return set(table.column("pk").to_pylist()) if table.num_rows else set()


def _flags_by_pk(table: pa.Table) -> dict[int, list[str]]:
    return {
        pk: flags
        for pk, flags in zip(
            table.column("pk").to_pylist(), table.column("_dq_flags").to_pylist(), strict=True
        )
        if flags
    }


def _with_flags(table: pa.Table, flags: dict[int, list[str]]) -> pa.Table:
    """Copy the flags of each pk's latest version onto every version of it in the batch."""
    if not flags:
        return table
    values = [flags.get(pk, []) for pk in table.column("pk").to_pylist()]
    index = table.schema.get_field_index("_dq_flags")
    return table.set_column(
        index, table.schema.field(index), pa.array(values, pa.list_(pa.string()))
    )


def preflight(settings: Settings) -> None:
    """Check the lake, the state database and Omnitron, raising the error a user can act on
    (LakeError, StateError, ConfigurationError, AuthenticationFailed, RetriesExhausted)."""
    job = SyncJob(settings)
    try:
        job.check_source()
    finally:
        job.close()
