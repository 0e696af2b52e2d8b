"""PATCHes whose answer was lost: re-read, then decide; never send again blindly (G7).

A PATCH that timed out once sent, got a 5xx, or lost its connection may have been applied. The
client never sends it again on its own (``AnswerLost``). Here the write-back looks first:

- :func:`patch_checked` waits the client's backoff (so that a PATCH still in flight at the
  server has time to land), reads the customer again, and decides: the code is ours
  (``ok_answer_lost``, nothing sent again); the record changed otherwise (``conflict``: someone
  edited it, maybe right over our PATCH, and their edit stands); it is exactly as it was before
  the PATCH (not applied: sent again, within the client's retry budget, ``ok_resent``); nothing
  readable came back (``unconfirmed``: nothing more is sent).
- A later run would plan the same code again, over the person's edit: first from the lake's old
  version of the customer, then, once a sync has brought the edit in, as a "correction" of the
  person's code. :func:`open_holds` finds those customers in the ledger, and
  :func:`check_hold` never sends the code a person overrode again; after ``unconfirmed`` it
  reads the customer again first. Anything it cannot tell means "do not
  patch".

What remains: a PATCH still being processed by the server when the backoff has passed and the
re-read was served can land after it, so the one resend it leads to may follow it. The backoff
before the re-read makes that window as short as the client's retry policy allows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from omnisync.client import AnswerLost, NotFound, OmnitronClient, OmnitronError
from omnisync.erp.outcomes import (
    APPLIED,
    CHANGED,
    CONFLICT,
    DELETED,
    EDITED,
    HELD,
    OK,
    OK_ANSWER_LOST,
    OK_RESENT,
    SET,
    SETTLED,
    UNCONFIRMED,
    Attempt,
    iso,
    parse_moment,
)
from omnisync.state.errors import LockLost

if TYPE_CHECKING:
    from omnisync.state.fence import Fence


@dataclass(frozen=True)
class Hold:
    """What the latest lost answer left open for one customer (from the ledger)."""

    #: CONFLICT or UNCONFIRMED; CHANGED when a code was set over a plan; SET when this product
    #: set ``erp_code`` (a person may change it later: that code is then not sent again)
    outcome: str
    erp_code: str  # the code that PATCH was to set
    seen_modified: dt.datetime | None
    seen_erp_code: str | None
    run_id: str


def open_holds(ledger: list[dict[str, Any]]) -> dict[int, Hold]:
    """pk -> the hold of every customer whose latest lost-answer outcome is still open: a
    ``conflict`` or ``unconfirmed`` row not followed by an applied change or ``deleted``; and of
    every customer whose erp_code someone set in Omnitron over a plan (a ``CHANGED`` row that
    saw a code other than the plan's previous one, its target, and the last code this product
    sent that customer); and of every customer this product set a code on (:data:`SET`, with
    the customer's ``modified_date`` that PATCH answered: if a later version has another code,
    that code is not sent again). A ``settled`` row ends any."""
    holds: dict[int, Hold] = {}
    last: dict[int, str | None] = {}  # pk -> the last code this product PATCHed (may have)
    for row in ledger:  # in attempt order: the latest row decides
        pk, outcome = int(row["pk"]), str(row["outcome"])
        code = str(row["erp_code"] or "")
        if outcome in APPLIED:
            seen = parse_moment(row.get("seen_modified_iso"))
            holds[pk] = Hold(SET, code, seen, code or None, str(row["run_id"]))
        elif outcome in (DELETED, SETTLED):
            holds.pop(pk, None)
        elif outcome == CHANGED and _set_over_plan(row, last.get(pk, _NOTHING)):
            holds[pk] = Hold(
                CHANGED,
                str(row["erp_code"] or ""),
                parse_moment(row.get("seen_modified_iso")),
                row.get("seen_erp_code") or None,
                str(row["run_id"]),
            )
        elif outcome in (CONFLICT, UNCONFIRMED):
            holds[pk] = Hold(
                outcome,
                str(row["erp_code"] or ""),
                parse_moment(row.get("seen_modified_iso")),
                row.get("seen_erp_code") or None,
                str(row["run_id"]),
            )
        if outcome in APPLIED or outcome in (CONFLICT, UNCONFIRMED):
            last[pk] = code or None
    return holds


#: "this product sent that customer no code" (None is a code: a cleared one)
_NOTHING = object()


def _set_over_plan(row: dict[str, Any], last: object) -> bool:
    """Whether a ``CHANGED`` row saw an erp_code someone set (or cleared) in Omnitron: not the
    one the plan was based on, not the one it wanted, and not the last this product sent that
    customer (``last``, or :data:`_NOTHING`; an older one put back is a person's edit)."""
    if row.get("seen_modified_iso") is None:
        return False  # recorded without what it saw: the match key, or an unreadable date
    seen = row.get("seen_erp_code") or None
    return seen not in (row.get("previous_erp_code") or None, row["erp_code"] or None) and (
        last is _NOTHING or seen != last
    )


def check_hold(client: OmnitronClient, hold: Hold, change: dict[str, Any]) -> Attempt | None:
    """None when the change may go ahead on the normal path; otherwise the attempt that ends it
    (``skipped_after_lost_answer``, ``conflict``, ``ok_answer_lost`` or ``deleted``).

    After a ``conflict``, the person's edit stands: the same code is never sent again to that
    customer (a different code from the ERP is a new change, planned as usual); settle it in the
    ERP or in Omnitron. After ``unconfirmed``, the customer is read again: the code is ours
    (applied), or it is exactly as when the PATCH went out (not applied: go ahead), or it
    changed (now a ``conflict``)."""
    pk, target = int(change["pk"]), str(change["erp_code"]) or None
    based_on: dt.datetime = change["based_on_modified"]
    seen = hold.seen_modified
    attempt = Attempt(pk, str(change["erp_code"]), change["previous_erp_code"], based_on, HELD)
    attempt.seen_modified, attempt.seen_erp_code = seen, hold.seen_erp_code
    why = f"run {hold.run_id} lost a PATCH's answer ({hold.outcome})"
    if hold.outcome in (SET, CHANGED):  # someone changed the code after us, or over our plan
        previous = change["previous_erp_code"] or None
        if target != (hold.erp_code or None):
            return None  # the ERP wants another code now: a new change
        if hold.outcome == SET and (hold.seen_modified is None or based_on <= hold.seen_modified):
            return None  # planned from a version no newer than our PATCH: nobody's edit seen
        attempt.outcome = EDITED
        attempt.detail = (
            f"run {hold.run_id} set erp_code {hold.erp_code!r}; it was changed in Omnitron since "
            f"(now {previous!r})"
            if hold.outcome == SET
            else f"erp_code {hold.seen_erp_code!r} was set in Omnitron over run {hold.run_id}'s "
            f"plan of {hold.erp_code!r}"
        ) + ": not sent again; settle it in the ERP or in Omnitron"
        return attempt
    if hold.outcome == CONFLICT:
        if target != (hold.erp_code or None):
            return None  # the ERP wants another code now: a new change, not the one overridden
        attempt.detail = (
            f"{why}, and erp_code {hold.seen_erp_code!r} was set in Omnitron after that PATCH: "
            f"{hold.erp_code!r} is not sent again; settle it in the ERP or in Omnitron"
        )
        return attempt
    try:
        now = client.get_customer(pk)
    except NotFound:
        attempt.outcome, attempt.detail = DELETED, "Omnitron answered 404 on the re-read"
        return attempt
    except OmnitronError as exc:
        attempt.detail = f"{why}; the re-read failed ({exc}): not patched"
        return attempt
    moment = parse_moment(now.get("modified_date")) if isinstance(now, dict) else None
    if moment is None:
        attempt.detail = f"{why}; the re-read's modified_date cannot be read: not patched"
        return attempt
    code = now.get("erp_code") or None
    if code == target:
        attempt.outcome = OK_ANSWER_LOST
        attempt.seen_modified, attempt.seen_erp_code = moment, code
        attempt.detail = f"{why}; the re-read shows that PATCH applied"
        return attempt
    if seen is not None and moment == seen and code == hold.seen_erp_code:
        return None  # exactly as when the PATCH went out: it was not applied, nobody edited
    if code == (hold.erp_code or None):
        return None  # that PATCH landed after all, and nobody edited since: a new change
    attempt.outcome = CONFLICT
    attempt.seen_modified, attempt.seen_erp_code = moment, code
    attempt.detail = f"{why}; the customer changed since (erp_code {code!r}): left as it is"
    return attempt


def patch_checked(
    client: OmnitronClient,
    attempt: Attempt,
    target: str | None,
    before: tuple[dt.datetime, str | None],
    fence: Fence | None = None,
) -> None:
    """PATCH ``target``; after a lost answer, look before anything is sent again.

    ``before`` is the customer's (modified_date, erp_code) as last seen before the PATCH. Sets
    the attempt's outcome; raises ``NotFound`` when a re-read finds the customer gone, and
    ``LockLost`` (before sending) when ``fence`` shows the write-back's lock taken over."""
    budget = client.retry_budget()
    while True:
        sent_before, attempt.patch_sent = attempt.patch_sent, True
        try:
            # the lock is checked before every attempt, the client's retries included
            result = client.patch_customer(
                attempt.pk, {"erp_code": target}, None if fence is None else fence.check
            )
        except LockLost:
            # raised before this PATCH's attempt went out; the client sends a write again only
            # after an attempt that never took effect, so this call sent nothing that counts
            attempt.patch_sent = sent_before
            raise
        except AnswerLost as lost:
            attempt.lost_answers += 1
            attempt.status_code = lost.status
            # The backoff comes before the re-read, so that a PATCH still in flight at the
            # server lands first, and the resend follows the freshest look.
            again = budget.another()
            if not _unchanged(client, attempt, target, before, str(lost)):
                return
            if not again:
                attempt.outcome = "retries_exhausted"
                attempt.detail = f"{lost}; not applied (the re-read is unchanged), budget spent"
                return
            continue
        attempt.outcome = OK if attempt.lost_answers == 0 else OK_RESENT
        attempt.status_code = 200
        attempt.detail = f"modified_date now {result.get('modified_date')}"
        # the version this PATCH made: a later version with another code is someone's edit
        attempt.seen_modified = parse_moment(result.get("modified_date"))
        attempt.seen_erp_code = target
        return


def _unchanged(
    client: OmnitronClient,
    attempt: Attempt,
    target: str | None,
    before: tuple[dt.datetime, str | None],
    lost: str,
) -> bool:
    """Re-read after a lost answer: True when the customer is exactly as before (the PATCH was
    not applied); otherwise sets the outcome (applied, conflict, or unconfirmed)."""
    try:
        now: Any = client.get_customer(attempt.pk)
    except NotFound:
        raise
    except OmnitronError as exc:
        now, lost = None, f"{lost}; the re-read failed ({exc})"
    seen = parse_moment(now.get("modified_date")) if isinstance(now, dict) else None
    if seen is None:
        # Nothing readable: what happened is unknown. Later runs compare with what the PATCH
        # was sent against.
        attempt.outcome = UNCONFIRMED
        attempt.seen_modified, attempt.seen_erp_code = before[0], before[1] or None
        attempt.detail = f"{lost}; no readable re-read: not sent again"
        return False
    current = now.get("erp_code") or None
    attempt.seen_modified, attempt.seen_erp_code = seen, current
    if current == target:
        attempt.outcome = OK_ANSWER_LOST
        attempt.detail = f"{lost}; the re-read shows it applied (modified_date {iso(seen)})"
        return False
    if seen != before[0] or current != (before[1] or None):
        attempt.outcome = CONFLICT
        attempt.detail = (
            f"{lost}; Omnitron's record changed since (erp_code {current!r}, modified_date "
            f"{iso(seen)}): left as it is"
        )
        return False
    return True
