"""One window of a plan: extract, type, validate, write, and mark it done (G3, G6).

Order of work: each chunk of pages is typed; at the end of the window its rows are validated
together, then staged under ``_staging/`` as one file with a row group per snapshot bucket, its
versions go to the change log (a file per month it touches) and its rejected records to
quarantine (with the PII policy applied to their raw JSON, G8), and only then is the window
marked done. The staged rows (``staging.py``) reach ``customers/`` when the whole plan is
finished (``finish.py``), so a backfill rewrites each bucket once. A window that fails for a
reason that may pass is run again (its files are replaced); one that fails on what stays as it is
(a refused login, a damaged lake file) stops the run, and its plan is finished by the next.

A record that cannot be represented is quarantined and the window goes on; whether the run as a
whole has too many of them is judged once over the whole plan (``finish.py``), never over one
small chunk. The marks of its quarantined versions (``transforms/quarantine_marks.py``) are staged
beside the window's rows, so that the merge marks the row of each customer whose newer version
was quarantined: ``customers/`` never holds an older version silently. Memory: one chunk of
records, and one window's typed rows for validation, staging and the change log.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import stamina

from omnisync.client import (
    AuthenticationFailed,
    ClientClosed,
    ConfigurationError,
    Page,
    ValidationFailed,
)
from omnisync.client.paginator import Paginator
from omnisync.client.records import Customer, Record, customer_text
from omnisync.lake import window_key, write_quarantine
from omnisync.lake.errors import LakeError
from omnisync.lake.file_options import one_chunk
from omnisync.memory import give_back
from omnisync.settings import Settings
from omnisync.state import LockLost
from omnisync.state.times import to_us
from omnisync.sync.context import STREAM, RunContext
from omnisync.sync.quarantined import record_quarantined
from omnisync.sync.staging import stage_window, staging_dir
from omnisync.sync.window_rows import latest_versions, pks_of, policy_applied, with_latest_flags
from omnisync.validation import Validator, validate_customers
from transforms.customers import Converted, Lineage, SchemaDrift
from transforms.pii import apply_pii_policy
from transforms.schema import QUARANTINE_SCHEMA, TIMESTAMP
from transforms.typed_rows import records_to_table

log = logging.getLogger("omnisync.sync")


#: a window's requests at once: the next range is asked for while this one is typed, so that a
#: distant server's latency overlaps the window's work with one window at a time (the default:
#: OMNISYNC_WINDOW_CONCURRENCY), as two windows side by side did (docs/performance.md)
PAGES_IN_FLIGHT = 2


class BatchRejected(Exception):
    """Validation failed for a whole batch or run (a systemic problem): the run stops and the
    watermark stays where it was."""


@dataclass
class WindowResult:
    lo: dt.datetime | None
    hi: dt.datetime
    rows: int = 0
    written: int = 0
    changes_logged: int = 0
    quarantined: int = 0
    flagged: int = 0
    #: quarantined versions named on their customer's row (pk and modified_date readable)
    marked: int = 0
    #: records (and quarantined ones) after the watermark: not read by an earlier run's window
    fresh: int = 0
    fresh_quarantined: int = 0
    max_modified: dt.datetime | None = None
    unknown_fields: Counter[str] = field(default_factory=Counter)

    def counts(self) -> dict[str, Any]:
        """What the state store keeps of the window (beside rows, quarantined, max_modified)."""
        return {
            "written": self.written,
            "changes_logged": self.changes_logged,
            "flagged": self.flagged,
            "marked": self.marked,
            "fresh": self.fresh,
            "fresh_quarantined": self.fresh_quarantined,
            "unknown_fields": dict(self.unknown_fields),
        }


def sync_window(
    context: RunContext,
    plan_id: str,
    lo: dt.datetime | None,
    hi: dt.datetime,
    first_page: Page | None = None,
) -> WindowResult:
    """Extract, type, validate and write one window, then mark it done in the state store.
    ``first_page``: planning's answer to the window's first request, when it has one.

    The one step that takes the run's whole context: a window uses every collaborator of the
    run, and is what an orchestration hands a thread or a Dask worker."""
    settings = context.settings
    result = WindowResult(lo, hi)
    name = window_key(lo, hi)
    since = context.store.watermarks.get(STREAM)
    lineage = Lineage(context.run_id, dt.datetime.now(dt.UTC), context.client.base_url)
    chunk: list[Record] = []
    typed: list[pa.Table] = []
    rejected: list[pa.Table] = []
    rejected_modified: list[pa.Array | pa.ChunkedArray] = []
    number = 0
    converted: Converted | None = None
    pages = Paginator(context.client, settings.page_size, PAGES_IN_FLIGHT).changed(
        lo, hi, context.datetimes, first_page=first_page, typed=True
    )
    # closed when the window fails too: its requests asked ahead are not tried again (a failed
    # window's traceback would keep the pages alive through its retry)
    with contextlib.closing(pages):
        for page in pages:
            chunk.extend(page)
            if len(chunk) >= settings.chunk_rows:
                number += 1
                converted = _type_chunk(chunk, f"{name}-{number:04d}", lineage, result)
                typed.append(converted.table)
                rejected.append(converted.rejected)
                rejected_modified.append(converted.rejected_modified)
                chunk = []
    if chunk:
        number += 1
        converted = _type_chunk(chunk, f"{name}-{number:04d}", lineage, result)
        typed.append(converted.table)
        rejected.append(converted.rejected)
        rejected_modified.append(converted.rejected_modified)
    # The last chunk's records and tables are in the lists now: not held a second time through
    # the validation and the writes.
    chunk, converted = [], None
    rows: pa.Table | None = None
    if typed:
        assert context.validator is not None, "a sync run opens its validator"
        rows, quarantined, refused_modified = _validate_window(
            context.validator, settings, context.run_id, typed, name, result
        )
        # The typed chunks go, and the rows are joined a column at a time as they do: the
        # staging's and the change log's takes then copy only the rows they take (one_chunk).
        typed.clear()
        rows = one_chunk(rows)
        rejected.append(quarantined)
        rejected_modified.append(refused_modified)
        # Also when no row is left: writing a retried window again replaces its earlier files.
        stage_window(context.storage, context.snapshot, plan_id, name, rows)
        result.changes_logged += context.changes.write_window(rows, name)
    # One quarantine file per window, so that a retried window replaces it, whatever chunks.
    quarantine = pa.concat_tables(rejected) if rejected else QUARANTINE_SCHEMA.empty_table()
    to_keep = policy_applied(quarantine, settings)
    write_quarantine(context.storage, to_keep, name, lineage.extracted_at)
    left = record_quarantined(
        context.storage,
        staging_dir(plan_id),
        name,
        quarantine.column("pk"),
        pa.chunked_array(rejected_modified, TIMESTAMP),
        lineage.extracted_at,
        rows,
        since,
        to_keep.column("raw"),  # as the quarantine holds it: compared with earlier reads
    )
    result.marked, result.fresh, result.fresh_quarantined = (
        left.marked,
        left.fresh,
        left.fresh_quarantined,
    )
    if left.newest is not None:  # see quarantined.py: counts in the watermark
        top = left.newest
        result.max_modified = top if result.max_modified is None else max(result.max_modified, top)
    context.store.plans.complete_window(
        STREAM,
        plan_id,
        0 if lo is None else to_us(lo),
        result.rows,
        None if result.max_modified is None else to_us(result.max_modified),
        quarantined=result.quarantined,
        counts=result.counts(),
        fence=context.fence,
    )
    log.info(
        "window [%s, %s) done: %d read, %d quarantined", lo, hi, result.rows, result.quarantined
    )
    del typed, rows, rejected, rejected_modified, quarantine, to_keep  # so the trim returns them
    give_back()
    return result


# A window that failed for a reason retrying cannot fix is not run again: the run stops. A lake
# error is a path or a damaged file, which stay as they are (a retry only kept a person waiting
# for the same line).
_NOT_WORTH_RETRYING = (
    AuthenticationFailed,
    ClientClosed,
    ConfigurationError,
    ValidationFailed,
    BatchRejected,
    SchemaDrift,
    LockLost,
    LakeError,
)
WINDOW_ATTEMPTS = 3


def _worth_retrying(exc: BaseException) -> bool:
    # stamina hands over every exception, Ctrl-C's KeyboardInterrupt and SystemExit too: those
    # stop the run (a one-window run's window is on the main thread, where Ctrl-C lands)
    if not isinstance(exc, Exception) or isinstance(exc, _NOT_WORTH_RETRYING):
        return False
    log.warning("window failed, running it again: %s", exc)
    return True


def sync_window_retrying(
    context: RunContext,
    plan_id: str,
    lo: dt.datetime | None,
    hi: dt.datetime,
    first_page: Page | None = None,
) -> WindowResult:
    """:func:`sync_window`, run again (up to three attempts in all, 5 s then 10 s apart, with
    jitter) when it failed for a reason that may pass: a window is the unit of retry above the
    client's per-request retries, whatever orchestrates the run. A retried window replaces its
    own files, so running it again is always safe. A retry reads planning's answer again, when
    there is one (``first_page``), not the server: the deletion check takes ``S`` and ``M`` from
    that answer, and a window that read its range afresh could miss a customer it showed."""
    for attempt in stamina.retry_context(
        on=_worth_retrying,
        attempts=WINDOW_ATTEMPTS,
        timeout=None,
        wait_initial=5.0,
        wait_exp_base=2.0,
        wait_max=30.0,
        wait_jitter=2.5,
    ):
        with attempt:
            return sync_window(context, plan_id, lo, hi, first_page=first_page)
    raise AssertionError("unreachable: stamina either returns or raises")


def _type_chunk(
    records: list[Record], name: str, lineage: Lineage, result: WindowResult
) -> Converted:
    """Type one chunk of records; the raw records can go once this returns."""
    converted = records_to_table(records, lineage, Customer, customer_text)
    log.debug("typed chunk %s: %d records", name, len(records))
    result.rows += len(records)
    result.quarantined += converted.rejected.num_rows
    result.unknown_fields.update(converted.unknown_field_counts)
    return converted


def _validate_window(
    validator: Validator,
    settings: Settings,
    run_id: str,
    typed: list[pa.Table],
    name: str,
    result: WindowResult,
) -> tuple[pa.Table, pa.Table, pa.ChunkedArray]:
    """Validate a window's typed rows at once; returns its rows for the lake (flagged, PII
    policy applied), the rows to quarantine and their ``modified_date``. Raises BatchRejected
    for a batch-level critical failure (a schema change).

    Once per window, not per chunk: GX has a fixed cost per validation whatever its size, so
    fewer, larger validations cost less CPU (docs/performance.md), and the window's typed rows
    are held until it is staged anyway."""
    table = pa.concat_tables(typed, promote_options="permissive")
    latest = latest_versions(table)
    validation = validate_customers(validator, latest, f"{run_id}-{name}")
    if not validation.passed:
        raise BatchRejected(f"window {name}: " + "; ".join(validation.failures))
    table = with_latest_flags(table, validation.good)
    rejected_pks = pks_of(validation.quarantined)
    good = (
        table.filter(
            pc.invert(pc.is_in(table.column("pk"), value_set=pa.array(sorted(rejected_pks))))
        )
        if rejected_pks
        else table
    )
    analyst = apply_pii_policy(
        good, settings.pii_policy, settings.pii_salt.get_secret_value().encode()
    )
    log.debug("validated window %s: %d rows", name, table.num_rows)
    result.written += good.num_rows
    result.quarantined += validation.quarantined.num_rows
    result.flagged += validation.flagged_rows
    if good.num_rows:
        top = pc.max(good.column("modified_date")).as_py()
        result.max_modified = top if result.max_modified is None else max(result.max_modified, top)
    quarantined_pks = validation.quarantined.column("pk").combine_chunks()
    at = pc.index_in(quarantined_pks, value_set=latest.column("pk"))
    modified = latest.column("modified_date").combine_chunks().take(at).cast(TIMESTAMP)
    return analyst, validation.quarantined, modified
