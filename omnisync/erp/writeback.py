"""Writing ERP codes back to Omnitron safely (G7).

For each planned change: skip it if the ledger already holds a successful PATCH of this code for
this customer version (never twice for one change); re-read the customer; if its
``modified_date`` moved since the snapshot the plan was computed from, plan it again from the
fresh record, so a change made in Omnitron meanwhile (its erp_code, or the key it was matched
by) is never overwritten; then PATCH ``{"erp_code": ...}``. Every doubt means "do not patch":
a re-read whose ``modified_date`` cannot be read is skipped and reported. Every attempt and its
outcome goes to the ledger, whatever ends the run: an error that stops the write-back (a login
refused) leaves the changes not yet tried as ``not_attempted``. Requests run with bounded
concurrency inside the client's throttle; the client does the retrying.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa

from omnisync.client import (
    NotAcceptable,
    NotFound,
    OmnitronClient,
    OmnitronError,
    RetriesExhausted,
    ValidationFailed,
)
from omnisync.state import StateStore
from transforms.erp import replan_one

log = logging.getLogger("omnisync.erp")
OK = "ok"


@dataclass
class Attempt:
    pk: int
    erp_code: str
    previous_erp_code: str | None
    based_on_modified: dt.datetime
    outcome: str
    status_code: int | None = None
    detail: str | None = None


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _parse(value: Any) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def already_done(store: StateStore) -> set[tuple[int, str, str]]:
    """(pk, erp_code, based_on) of every successful PATCH in the ledger."""
    return {
        (row["pk"], row["erp_code"] or "", row["based_on_modified_iso"])
        for row in store.ledger_rows(outcome=OK)
    }


def apply_one(client: OmnitronClient, change: dict[str, Any]) -> Attempt:
    pk, code = int(change["pk"]), str(change["erp_code"])
    based_on = change["based_on_modified"]
    attempt = Attempt(pk, code, change["previous_erp_code"], based_on, "pending")
    try:
        fresh = client.get_customer(pk)
        moved = _parse(fresh.get("modified_date"))
        if moved is None or moved.tzinfo is None:
            attempt.outcome = "skipped_unreadable_reread"
            attempt.detail = f"modified_date {fresh.get('modified_date')!r:.80} cannot be read"
            return attempt
        if moved != based_on:
            send, why = replan_one(fresh, change)
            if send is None:
                attempt.outcome, attempt.detail = "skipped_changed_since_plan", why
                return attempt
        result = client.patch_customer(pk, {"erp_code": code or None})
        attempt.outcome, attempt.status_code = OK, 200
        attempt.detail = f"modified_date now {result.get('modified_date')}"
    except (NotFound, ValidationFailed, NotAcceptable) as exc:
        # Omnitron refused this customer's change (400, 404 or 406): keep its answer verbatim.
        attempt.outcome, attempt.status_code = str(exc.status), exc.status
        attempt.detail = orjson.dumps(exc.body).decode()
    except RetriesExhausted as exc:
        attempt.outcome, attempt.status_code, attempt.detail = (
            "retries_exhausted",
            exc.status,
            str(exc),
        )
    except OmnitronError as exc:
        # Not this customer's problem (a login refused, an unexpected answer): record it, and
        # the caller stops sending.
        attempt.outcome, attempt.status_code = "stopped_" + type(exc).__name__, exc.status
        attempt.detail = str(exc)
    return attempt


def write_back(
    client: OmnitronClient,
    store: StateStore,
    plan: pa.Table,
    run_id: str,
    concurrency: int,
    progress: Callable[[Attempt], None] | None = None,
    attempts: list[Attempt] | None = None,
) -> list[Attempt]:
    """Apply ``plan``; returns one Attempt per planned change (also recorded in the ledger).
    ``attempts``, when given, receives each attempt as it ends, so a caller can report them
    whatever interrupts the run."""
    done = already_done(store)
    changes = plan.to_pylist()
    collected: list[Attempt] = [] if attempts is None else attempts
    stop = threading.Event()

    def run(change: dict[str, Any]) -> Attempt:
        key = (int(change["pk"]), str(change["erp_code"]), _iso(change["based_on_modified"]))
        if stop.is_set():
            attempt = Attempt(
                key[0],
                key[1],
                change["previous_erp_code"],
                change["based_on_modified"],
                "not_attempted",
                detail="the write-back stopped before this change",
            )
        elif key in done:
            attempt = Attempt(
                key[0],
                key[1],
                change["previous_erp_code"],
                change["based_on_modified"],
                "skipped_already_patched",
                detail="the ledger holds a successful PATCH of this change",
            )
        else:
            attempt = apply_one(client, change)
            if attempt.outcome.startswith("stopped_"):
                stop.set()
        store.record_attempt(
            run_id=run_id,
            pk=attempt.pk,
            erp_code=attempt.erp_code,
            previous_erp_code=attempt.previous_erp_code,
            based_on_modified_iso=_iso(attempt.based_on_modified),
            outcome=attempt.outcome,
            status_code=attempt.status_code,
            detail=(attempt.detail or "")[:2000],
        )
        collected.append(attempt)
        if progress is not None:
            progress(attempt)
        return attempt

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="writeback") as pool:
        return list(pool.map(run, changes))


FAILED = {"400", "404", "406", "retries_exhausted", "not_attempted"}


def is_failure(outcome: str) -> bool:
    """Whether an outcome means the change was wanted but not made (the run then fails)."""
    return outcome in FAILED or outcome.startswith("stopped_")


def outcomes_table(attempts: list[Attempt], run_id: str) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "_run_id": run_id,
                "pk": a.pk,
                "erp_code": a.erp_code,
                "previous_erp_code": a.previous_erp_code,
                "based_on_modified": a.based_on_modified,
                "outcome": a.outcome,
                "status_code": a.status_code,
                "detail": a.detail,
            }
            for a in attempts
        ],
        schema=pa.schema(
            [
                pa.field("_run_id", pa.string()),
                pa.field("pk", pa.int64()),
                pa.field("erp_code", pa.string()),
                pa.field("previous_erp_code", pa.string()),
                pa.field("based_on_modified", pa.timestamp("us", tz="UTC")),
                pa.field("outcome", pa.string()),
                pa.field("status_code", pa.int64()),
                pa.field("detail", pa.string()),
            ]
        ),
    )
