"""PATCHes whose answer was lost: re-read, then decide; never send again blindly (G7).

A PATCH that timed out once sent, got a 5xx, or lost its connection may have been applied. The
client never sends it again on its own (``AnswerLost``). Here the write-back looks first:

- :func:`patch_checked` waits the client's backoff (so that a PATCH still in flight at the
  server has time to land), reads the customer again, and decides: the code is ours
  (``ok_answer_lost``, nothing sent again); the record changed otherwise (``conflict``: someone
  edited it, maybe right over our PATCH, and their edit stands); it is exactly as it was before
  the PATCH (not applied: sent again, within the client's retry budget, ``ok_resent``); nothing
  readable came back (``unconfirmed``: nothing more is sent).
- A later run would plan the same code again, over the person's edit: :mod:`omnisync.erp.holds`
  keeps it back (after ``unconfirmed``, it reads the customer again first).

What remains: a PATCH still being processed by the server when the backoff has passed and the
re-read was served can land after it, so the one resend it leads to may follow it. The backoff
before the re-read makes that window as short as the client's retry policy allows.
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import TYPE_CHECKING, Any

from omnisync.client import AnswerLost, NotFound, OmnitronClient, OmnitronError
from omnisync.erp.outcomes import (
    CONFLICT,
    OK,
    OK_ANSWER_LOST,
    OK_RESENT,
    UNCONFIRMED,
    Attempt,
    iso,
    parse_moment,
)
from omnisync.state.errors import LockLost

if TYPE_CHECKING:
    from omnisync.state.fence import Fence


class WriteBackStopped(Exception):
    """The write-back was stopped (Ctrl-C, or another change's stop) before this PATCH went
    out: nothing of it was sent."""


def patch_checked(
    client: OmnitronClient,
    attempt: Attempt,
    target: str | None,
    before: tuple[dt.datetime, str | None],
    fence: Fence | None = None,
    stop: threading.Event | None = None,
) -> None:
    """PATCH ``target``; after a lost answer, look before anything is sent again.

    ``before`` is the customer's (modified_date, erp_code) as last seen before the PATCH. Sets
    the attempt's outcome; raises ``NotFound`` when a re-read finds the customer gone, and,
    before anything is sent, ``LockLost`` when ``fence`` shows the write-back's lock taken over
    and ``WriteBackStopped`` once ``stop`` is set."""

    def may_send() -> None:  # before every attempt, the client's retries included
        if stop is not None and stop.is_set():
            raise WriteBackStopped("the write-back stopped before this PATCH was sent")
        if fence is not None:
            fence.check()

    budget = client.retry_budget()
    while True:
        sent_before, attempt.patch_sent = attempt.patch_sent, True
        try:
            result = client.patch_customer(attempt.pk, {"erp_code": target}, may_send)
        except (LockLost, WriteBackStopped):
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
