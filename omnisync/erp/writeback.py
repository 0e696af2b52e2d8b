"""Writing ERP codes back to Omnitron safely (G7).

For each planned change: skip it if the ledger already holds a successful PATCH of this code for
this customer version (never twice for one change); look at the customer's current record; if
its ``modified_date`` moved since the snapshot the plan was computed from, plan it again from the
fresh record, so a change made in Omnitron meanwhile (its erp_code, or the key it was matched
by) is never overwritten; then PATCH ``{"erp_code": ...}``. Every doubt means "do not patch": a
record whose ``modified_date`` cannot be read is skipped and reported.

The current records come from a :class:`ChangeGuard`: just before every batch of changes (12,
or more when a listing needs several pages), it lists what changed in Omnitron since its
previous listing, with the documented ``modified_date`` filter (read by pk ranges, trusting
neither sort nor limit). A customer that the listing does not show has not changed since the
snapshot, because the snapshot holds every version older than the sync's watermark, and the
guard's first listing starts a lookback before that watermark. Customers the sync quarantined
(the snapshot may lack their newest version) are read one by one, as is everything when no
watermark is known. So the write-back costs about 1.1 requests per change instead of 2, and a
change is checked against a listing at most one batch old (about a second at 10 requests/s),
as close as a re-read was behind the throttle.

Every attempt and its outcome goes to the ledger, whatever ends the run: an error that stops the
write-back (a login refused) leaves the changes not yet tried as ``not_attempted``. Requests run
with bounded concurrency inside the client's throttle; the client does the retrying.
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
    AnswerLost,
    NotAcceptable,
    NotFound,
    OmnitronClient,
    OmnitronError,
    RetriesExhausted,
    UnexpectedResponse,
    ValidationFailed,
)
from omnisync.state import StateStore
from omnisync.sync.extraction import extract_window
from transforms.erp import replan_one

log = logging.getLogger("omnisync.erp")

# Outcomes. A change is made (``APPLIED``) by a PATCH that was answered, or whose lost answer a
# re-read showed applied, or that a re-read showed unapplied and was sent again.
OK = "ok"
OK_ANSWER_LOST = "ok_answer_lost"
OK_RESENT = "ok_resent"
APPLIED = frozenset({OK, OK_ANSWER_LOST, OK_RESENT})
CONFLICT = "conflict"  # a lost answer, then the record changed otherwise: a person's edit stands
UNCONFIRMED = "unconfirmed"  # a lost answer, then the re-read failed: unknown, nothing more sent
DELETED = "deleted"  # Omnitron no longer has the customer (404)
HELD = "skipped_after_lost_answer"  # a later run: the lake has not caught up with that change


@dataclass
class Attempt:
    pk: int
    erp_code: str
    previous_erp_code: str | None
    based_on_modified: dt.datetime
    outcome: str
    status_code: int | None = None
    detail: str | None = None
    lost_answers: int = 0  # PATCH answers lost on the way (each followed by a re-read)
    seen_modified: dt.datetime | None = None  # the re-read's modified_date after a lost answer


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _parse(value: Any) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def already_done(store: StateStore) -> set[tuple[int, str, str]]:
    """(pk, erp_code, based_on) of every change the ledger shows applied."""
    return {
        (row["pk"], row["erp_code"] or "", row["based_on_modified_iso"])
        for outcome in sorted(APPLIED)
        for row in store.ledger_rows(outcome=outcome)
    }


def lost_answer_holds(store: StateStore) -> dict[int, tuple[str, dt.datetime | None]]:
    """pk -> (outcome, modified_date) of the latest lost-answer PATCH the ledger left open.

    After a ``conflict`` (someone edited the customer after our PATCH may have been applied) or
    an ``unconfirmed`` PATCH, the lake still holds the customer as it was before. A plan computed
    from it would send the same code again, over the person's edit: :func:`held` keeps such a
    customer out of every write-back until a sync has brought the newer record into the lake."""
    rows = [
        row for outcome in (CONFLICT, UNCONFIRMED) for row in store.ledger_rows(outcome=outcome)
    ]
    holds: dict[int, tuple[str, dt.datetime | None]] = {}
    for row in sorted(rows, key=lambda row: int(row["id"])):  # the latest attempt stands
        iso = row.get("seen_modified_iso")
        holds[int(row["pk"])] = (str(row["outcome"]), _parse(iso) if iso else None)
    return holds


def held(hold: tuple[str, dt.datetime | None], based_on: dt.datetime) -> str | None:
    """Why a change planned from the lake's ``based_on`` must wait (None: it may go ahead).

    A conflict is over once the lake holds the edited record (``based_on`` at least the
    re-read's modified_date); an unconfirmed PATCH, once the lake holds any record newer than
    the one that PATCH was based on. Fails closed: no date to compare with means wait."""
    outcome, seen = hold
    if seen is None or seen.tzinfo is None or based_on is None or based_on.tzinfo is None:
        return f"an earlier PATCH's answer was lost ({outcome}) and its date is unknown"
    caught_up = based_on >= seen if outcome == CONFLICT else based_on > seen
    if caught_up:
        return None
    return (
        f"an earlier PATCH's answer was lost ({outcome}) and Omnitron's record changed at "
        f"{_iso(seen)}; the lake has the customer as of {_iso(based_on)}: sync first"
    )


class ChangeGuard:
    """The customers that changed in Omnitron since ``since``, listed again before each batch.

    ``fresh(pk)`` is the customer's newest listed record, or None when no listing showed it
    (it has not changed since the snapshot). Listings overlap by ``margin`` (the sync's lag: a
    commit may become visible that late), and a batch holds twelve changes per request the last
    listing cost, so listing stays under a tenth of a request per change.
    """

    #: changes per listing request: 12 keeps the write-back under 1.1 requests per change with
    #: its login and filter probe; a batch of 12 takes about a second at 10 requests/s
    PER_REQUEST = 12

    def __init__(
        self,
        client: OmnitronClient,
        since: dt.datetime,
        margin: dt.timedelta,
        page_size: int,
    ) -> None:
        self._client = client
        self._next = since
        self._margin = margin
        self._page_size = page_size
        self._seen: dict[int, dict[str, Any]] = {}
        self._left = 0
        self._lock = threading.Lock()
        self.listings = 0

    def fresh(self, pk: int) -> dict[str, Any] | None:
        with self._lock:
            if self._left <= 0:
                self._left = self._list()
            self._left -= 1
            return self._seen.get(pk)

    def _list(self) -> int:
        """List the changes since the last listing (less the margin); the next batch's size."""
        # Asked here, not when built: a refused login is then one change's outcome, like any.
        datetimes = self._client.datetime_filters_supported
        now = self._client.server_time()
        rows = 0
        # Until a day ahead: a record stamped a little in the future is still a change.
        for page in extract_window(
            self._client, self._next, now + dt.timedelta(days=1), datetimes, self._page_size
        ):
            for record in page:
                pk = record.get("pk") if isinstance(record, dict) else None
                if isinstance(pk, int):
                    self._seen[pk] = record
            rows += len(page)
        self._next = now - self._margin
        self.listings += 1
        requests = max(1, -(-rows // self._page_size))
        return self.PER_REQUEST * requests


def apply_one(
    client: OmnitronClient, change: dict[str, Any], guard: ChangeGuard | None = None
) -> Attempt:
    """One change: its current record (from ``guard``, or read on its own without one), then
    the PATCH, or the reason it was not sent."""
    pk, code = int(change["pk"]), str(change["erp_code"])
    based_on = change["based_on_modified"]
    attempt = Attempt(pk, code, change["previous_erp_code"], based_on, "pending")
    try:
        # None from the guard: no listing since the snapshot showed this customer.
        fresh = client.get_customer(pk) if guard is None else guard.fresh(pk)
        before = (based_on, change["previous_erp_code"])
        if fresh is not None:
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
            before = (moved, fresh.get("erp_code"))
        _patch_checked(client, attempt, code or None, before)
    except NotFound as exc:
        # Omnitron no longer has this customer (deleted, or merged into another).
        attempt.outcome, attempt.status_code = DELETED, exc.status
        attempt.detail = "Omnitron answered 404: the customer no longer exists"
    except (ValidationFailed, NotAcceptable) as exc:
        # Omnitron refused this customer's change (400 or 406): keep its answer verbatim.
        attempt.outcome, attempt.status_code = str(exc.status), exc.status
        attempt.detail = orjson.dumps(exc.body).decode()
    except RetriesExhausted as exc:
        attempt.outcome, attempt.status_code = "retries_exhausted", exc.status
        attempt.detail = str(exc)
    except OmnitronError as exc:
        # Not this customer's problem (a login refused, an unexpected answer): record it, and
        # the caller stops sending.
        attempt.outcome, attempt.status_code = "stopped_" + type(exc).__name__, exc.status
        attempt.detail = str(exc)
    return attempt


def _patch_checked(
    client: OmnitronClient,
    attempt: Attempt,
    target: str | None,
    before: tuple[dt.datetime, str | None],
) -> None:
    """PATCH ``target``; after a lost answer, re-read the customer and decide, never resend blind.

    ``before`` is the customer's (modified_date, erp_code) as last seen before the PATCH. After a
    lost answer the re-read says which of three things happened: the code is ours (applied:
    ``ok_answer_lost``, not sent again); the record changed otherwise (someone edited it, maybe
    over our PATCH: ``conflict``, and their edit stands); or it is exactly as before (not
    applied: sent again, within the client's retry budget). A re-read that fails leaves the
    change ``unconfirmed``: nothing more is sent.
    """
    budget = client.retry_budget()
    while True:
        try:
            result = client.patch_customer(attempt.pk, {"erp_code": target})
        except AnswerLost as lost:
            attempt.lost_answers += 1
            attempt.status_code = lost.status
            try:
                now = client.get_customer(attempt.pk)
            except (RetriesExhausted, UnexpectedResponse) as unreadable:
                attempt.outcome = UNCONFIRMED
                attempt.seen_modified = before[0]
                attempt.detail = f"{lost}; the re-read failed ({unreadable}): not sent again"
                return
            seen = _parse(now.get("modified_date"))
            attempt.seen_modified = seen
            current = now.get("erp_code") or None
            if current == target:
                attempt.outcome = OK_ANSWER_LOST
                attempt.detail = f"{lost}; the re-read shows it applied (modified_date {seen})"
                return
            if seen is None or seen != before[0] or current != (before[1] or None):
                attempt.outcome = CONFLICT
                attempt.detail = (
                    f"{lost}; Omnitron's record changed since (erp_code {current!r}, "
                    f"modified_date {now.get('modified_date')!r:.40}): left as it is"
                )
                return
            if not budget.another():
                attempt.outcome = "retries_exhausted"
                attempt.detail = f"{lost}; not applied (the re-read is unchanged), budget spent"
                return
            continue
        attempt.outcome = OK if attempt.lost_answers == 0 else OK_RESENT
        attempt.status_code = 200
        attempt.detail = f"modified_date now {result.get('modified_date')}"
        return


def write_back(
    client: OmnitronClient,
    store: StateStore,
    plan: pa.Table,
    run_id: str,
    concurrency: int,
    progress: Callable[[Attempt], None] | None = None,
    attempts: list[Attempt] | None = None,
    guard: ChangeGuard | None = None,
    read_alone: set[int] | frozenset[int] = frozenset(),
) -> list[Attempt]:
    """Apply ``plan``; returns one Attempt per planned change (also recorded in the ledger).
    ``attempts``, when given, receives each attempt as it ends, so a caller can report them
    whatever interrupts the run. Current records come from ``guard``, except for the pks in
    ``read_alone`` (and for every pk without a guard), which are read one by one. A customer
    an earlier lost answer left open waits until the lake has caught up (:func:`held`)."""
    done = already_done(store)
    holds = lost_answer_holds(store)
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
        elif key[0] in holds and (why := held(holds[key[0]], change["based_on_modified"])):
            attempt = Attempt(
                key[0],
                key[1],
                change["previous_erp_code"],
                change["based_on_modified"],
                HELD,
                detail=why,
            )
            attempt.seen_modified = holds[key[0]][1]
        else:
            attempt = apply_one(client, change, None if key[0] in read_alone else guard)
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
            lost_answers=attempt.lost_answers,
            seen_modified_iso=_iso(attempt.seen_modified) if attempt.seen_modified else None,
        )
        collected.append(attempt)
        if progress is not None:
            progress(attempt)
        return attempt

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="writeback") as pool:
        return list(pool.map(run, changes))


FAILED = {"400", "406", "retries_exhausted", "not_attempted", UNCONFIRMED}


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
                "lost_answers": a.lost_answers,
                "seen_modified": a.seen_modified,
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
                pa.field("lost_answers", pa.int64()),
                pa.field("seen_modified", pa.timestamp("us", tz="UTC")),
            ]
        ),
    )
