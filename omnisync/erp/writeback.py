"""Writing ERP codes back to Omnitron safely (G7).

For each planned change: skip it if the ledger already holds a successful PATCH of this code for
this customer version (never twice for one change); look at the customer's current record; if
its ``modified_date`` moved since the snapshot the plan was computed from, plan it again from the
fresh record, so a change made in Omnitron meanwhile (its erp_code, or the key it was matched
by) is never overwritten; then PATCH ``{"erp_code": ...}``. Every doubt means "do not patch": a
record whose ``modified_date`` cannot be read is skipped and reported.

The current records come from a :class:`~omnisync.erp.change_guard.ChangeGuard`, which lists
what changed in Omnitron before every batch of changes: a customer it does not show has not
changed since the snapshot.
Customers the sync quarantined are read one by one, as is everything when no watermark is
known. So the write-back costs about 1.1 requests per change instead of 2, and a change is
checked against a listing at most one batch old (about a second at 10 requests/s).

A PATCH whose answer was lost is never sent again blindly: :mod:`omnisync.erp.lost_answers`
reads the customer again and decides. What a person did in Omnitron (over a plan, after this
product's PATCH, after a lost answer) keeps later runs from sending the same code over it
(:mod:`omnisync.erp.holds`). A customer Omnitron no longer has ends ``deleted``.

Every planned change's outcome (:mod:`omnisync.erp.outcomes`) goes to the ledger, whatever ends
the run: an error that stops the write-back (a login refused), or Ctrl-C, leaves the changes
not yet tried as ``not_attempted``. Requests run with bounded concurrency inside the
client's throttle; the client does the retrying.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
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
from omnisync.erp.change_guard import ChangeGuard
from omnisync.erp.holds import Applied, check_hold, expected, read_ledger
from omnisync.erp.lost_answers import WriteBackStopped, patch_checked
from omnisync.erp.outcomes import (
    APPLIED,
    CHANGED,
    DELETED,
    DONE_BEFORE,
    OK_ANSWER_LOST,
    UNCONFIRMED,
    Attempt,
    iso,
    parse_moment,
)
from omnisync.state import Fence, LockLost, StateStore
from transforms.erp.replanning import replan_one

log = logging.getLogger("omnisync.erp")
#: the lock one write-back holds at a time (a reconciliation's run log stream is "erp")
LOCK = "erp-writeback"


def already_done(ledger: list[dict[str, Any]]) -> set[tuple[int, str, str]]:
    """(pk, erp_code, based_on) of every change the ledger's rows show applied."""
    return {
        (row["pk"], row["erp_code"] or "", row["based_on_modified_iso"])
        for row in ledger
        if row["outcome"] in APPLIED
    }


STOPPED_BEFORE_RESEND = (
    "its answer was lost and a re-read showed it not applied; the write-back stopped before it "
    "was sent again"
)


def apply_one(
    client: OmnitronClient,
    change: dict[str, Any],
    guard: ChangeGuard | None = None,
    fence: Fence | None = None,
    stop: threading.Event | None = None,
) -> Attempt:
    """One change: its current record (from ``guard``, or read on its own without one), then
    the PATCH, or the reason it was not sent. ``fence`` and ``stop`` are checked before every
    PATCH: a run whose lock was taken over (it stalled past its lease), or that was stopped
    (Ctrl-C), sends nothing more."""
    pk, code = int(change["pk"]), str(change["erp_code"])
    based_on = change["based_on_modified"]
    attempt = Attempt(pk, code, change["previous_erp_code"], based_on, "pending")
    before: tuple[dt.datetime, str | None] = (based_on, change["previous_erp_code"])
    try:
        # None from the guard: no listing since the snapshot showed this customer.
        fresh = client.get_customer(pk) if guard is None else guard.fresh(pk)
        if fresh is not None:
            moved = parse_moment(fresh.get("modified_date"))
            if moved is None:
                attempt.outcome = "skipped_unreadable_reread"
                attempt.detail = f"modified_date {fresh.get('modified_date')!r:.80} cannot be read"
                return attempt
            if moved != based_on:
                send, why = replan_one(fresh, change)
                if send is None:
                    attempt.outcome, attempt.detail = CHANGED, why
                    # what was seen: a code set over the plan stands in later runs too
                    attempt.seen_modified, attempt.seen_erp_code = moved, fresh.get("erp_code")
                    return attempt
            before = (moved, fresh.get("erp_code"))
        patch_checked(client, attempt, code or None, before, fence, stop)
    except WriteBackStopped as exc:
        # after a lost answer whose re-read showed it unapplied, it ends unconfirmed (below)
        attempt.outcome = "stopped_WriteBackStopped" if attempt.patch_sent else "not_attempted"
        attempt.detail = str(exc) if not attempt.patch_sent else STOPPED_BEFORE_RESEND
    except LockLost as exc:
        # Another run holds the write-back now: what this one read before its stall may be
        # stale, and the other would not know of this run's PATCHes.
        attempt.outcome, attempt.detail = "stopped_LockLost", str(exc)
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
        # the caller stops sending. One that proves this PATCH was never sent (a certificate
        # refused) leaves nothing unconfirmed, unless an earlier one's answer was lost.
        attempt.outcome, attempt.status_code = "stopped_" + type(exc).__name__, exc.status
        attempt.detail = str(exc)
        if exc.unsent and attempt.lost_answers == 0:
            attempt.patch_sent = False
    except Exception as exc:
        # A defect, or an answer of a shape nobody expected: the ledger must still say so, and
        # the write-back stops. Only the type is kept: its text may hold anything.
        log.error("write-back of customer %s stopped by an unexpected %s", pk, type(exc).__name__)
        attempt.outcome = "stopped_" + type(exc).__name__
        attempt.detail = f"an unexpected {type(exc).__name__}: the write-back stopped"
    if attempt.patch_sent and attempt.outcome.startswith("stopped_"):
        # A PATCH went out and nothing says what it did: later runs look before patching.
        attempt.outcome, attempt.detail = UNCONFIRMED, f"{attempt.detail}; after a PATCH was sent"
        attempt.seen_modified = attempt.seen_modified or before[0]
        attempt.seen_erp_code = attempt.seen_erp_code or (before[1] or None)
    return attempt


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
    fence: Fence | None = None,
    ahead: Callable[[int], None] | None = None,
) -> list[Attempt]:
    """Apply ``plan``; returns one Attempt per planned change (also recorded in the ledger);
    ``ahead`` is told first how many of them it will try (not those the ledger holds done),
    and ``progress`` gets each of those as it ends, whatever its outcome.
    ``attempts``, when given, receives each attempt as it ends, so a caller can report them
    whatever interrupts the run. Current records come from ``guard``, except for the pks in
    ``read_alone`` (and for every pk without a guard), which are read one by one. A customer
    the ledger holds back (:mod:`omnisync.erp.holds`) goes ahead only when :func:`check_hold`
    allows it, expecting the code this product's last PATCH set (:func:`expected`). With
    ``fence`` (the write-back's lock), no PATCH is sent once the lock is lost; the ledger is
    written all the same: it records what was sent, which is true whoever holds the lock."""
    ledger = store.ledger.rows()  # read once: what was applied, and what holds codes back
    done, view = already_done(ledger), read_ledger(ledger)
    holds = view.holds
    changes = plan.to_pylist()
    collected: list[Attempt] = [] if attempts is None else attempts
    stop = threading.Event()

    def keep(attempt: Attempt) -> None:
        store.ledger.record(run_id=run_id, **attempt.ledger_row())

    def key_of(change: dict[str, Any]) -> tuple[int, str, str]:
        return int(change["pk"]), str(change["erp_code"]), iso(change["based_on_modified"])

    def done_before(key: tuple[int, str, str]) -> bool:
        # done only while that code is surely the last this product made current
        return key in done and view.ours.get(key[0]) == {key[1] or None}

    if ahead is not None:  # what is ahead, and what progress counts: all but those done before
        ahead(sum(not done_before(key_of(change)) for change in changes))

    def held(change: dict[str, Any], noted: list[Attempt]) -> Attempt | None:
        """What ends ``change`` before it is sent: the customer's latest hold (an unconfirmed
        PATCH of another code is re-read, its outcome noted on a row of its own), then a
        conflict over this very code, which stands whatever rows of other codes came after,
        then this product's own code of it when a lost PATCH's row took that hold's place."""

        def note(lost: Attempt) -> None:
            log.warning("customer %s: erp_code %r: %s", lost.pk, lost.erp_code, lost.detail)
            keep(lost)  # a row of its own for that earlier PATCH, not one of the plan's changes
            noted.append(lost)

        pk = int(change["pk"])
        latest, standing = holds.get(pk), view.conflicts.get(pk, {}).get(str(change["erp_code"]))
        if latest is not None and (ended := check_hold(client, latest, change, note)):
            return ended
        if any(lost.outcome == OK_ANSWER_LOST for lost in noted):
            return None  # a PATCH of ours is current after the conflict: it ended it
        if standing is not None and standing is not latest:
            return check_hold(client, standing, change, note)
        ours = view.kept.get(pk)
        if ours is not None and (ours.erp_code or None) == (str(change["erp_code"]) or None):
            return check_hold(client, ours, change, note)  # our code, a person's edit since
        return None

    begun: set[int] = set()  # the changes taken (by id): Ctrl-C cancels the rest in map
    taking = threading.Lock()

    def taken(change: dict[str, Any]) -> bool:
        """Whether this thread takes ``change`` (no other did): after a second Ctrl-C stopped
        the pool's shutdown, its workers and the ``finally`` below take changes at once."""
        with taking:
            if id(change) in begun:
                return False
            begun.add(id(change))
            return True

    def run(change: dict[str, Any]) -> Attempt | None:
        return attempted(change) if taken(change) else None

    def attempted(change: dict[str, Any]) -> Attempt:
        key = key_of(change)
        noted: list[Attempt] = []
        plan = (key[0], key[1], change["previous_erp_code"], change["based_on_modified"])
        if done_before(key):  # first: a stopped write-back's earlier PATCHes are no failures
            said = "the ledger holds a successful PATCH of this change"
            attempt = Attempt(*plan, DONE_BEFORE, detail=said)
        elif stop.is_set():
            said = "the write-back stopped before this change"
            attempt = Attempt(*plan, "not_attempted", detail=said)
        elif ended := held(change, noted):
            attempt = ended
        else:
            last = view.applied.get(key[0])
            for lost in noted:  # a lost PATCH the re-read just showed applied is the last one
                if lost.outcome == OK_ANSWER_LOST:
                    last = Applied(lost.erp_code or None, lost.seen_modified, None)
            change = expected(last, change)
            alone = key[0] in read_alone
            attempt = apply_one(client, change, None if alone else guard, fence, stop)
            if attempt.outcome.startswith("stopped_"):
                stop.set()
        for lost in noted:  # said in the change's own row too: reports list the plan's changes
            attempt.detail = f"the lost PATCH of {lost.erp_code!r}: {lost.outcome}; " + (
                attempt.detail or ""
            )
        keep(attempt)
        collected.append(attempt)
        if progress is not None and not done_before(key):  # by the rule ``ahead`` counted
            progress(attempt)
        return attempt

    try:
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="writeback") as pool:
            try:
                # every change is taken by map's workers while nothing stops them
                return [attempt for attempt in pool.map(run, changes) if attempt is not None]
            except BaseException:
                stop.set()  # Ctrl-C: the changes begun send no PATCH from now on
                raise
    finally:  # and those map cancelled never ran: each ends not_attempted, in the ledger too
        for change in changes:
            run(change)
