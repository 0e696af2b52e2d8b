"""What keeps a code from being sent to a customer again, read from the ledger (G7).

A later run would plan a code over a person's edit: from the lake's old version of the customer,
or, once a sync has brought the edit in, as a "correction" of the person's code. The ledger says
which customers that concerns; :func:`open_holds` finds them, and :func:`check_hold` decides
for each planned change:

- ``set``: this product set the code (an applied row, with the version its PATCH made). A plan
  from an older lake version is checked against that code, not the plan's (:func:`expected`);
  a plan from a newer version that holds another code means someone changed it since: the same
  code is not sent again (``skipped_person_edit``).
- ``skipped_changed_since_plan`` that saw a code someone set over a plan (not the plan's
  previous code, not its target, not one this product may have made current): that code is
  not overridden by the same target again.
- ``conflict`` and ``unconfirmed`` (a lost answer): see :mod:`omnisync.erp.lost_answers`.

A hold ends with an applied change, a ``deleted`` customer, or a ``settled`` row: a
reconciliation whose ERP took the other code (:mod:`omnisync.erp.settling`). A different code
from the ERP is always a new change. Anything that cannot be told means "do not patch". A lost
PATCH's ``conflict`` holds its code back whatever rows of other codes follow (``conflicts``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from omnisync.client import NotFound, OmnitronClient, OmnitronError
from omnisync.erp.outcomes import (
    APPLIED,
    CHANGED,
    CONFLICT,
    DELETED,
    EDITED,
    HELD,
    OK_ANSWER_LOST,
    SET,
    SETTLED,
    UNCONFIRMED,
    Attempt,
    iso,
    parse_moment,
)


@dataclass(frozen=True)
class Hold:
    """What keeps one customer's code from being sent again (from the ledger)."""

    #: SET, CHANGED, CONFLICT or UNCONFIRMED
    outcome: str
    erp_code: str  # the code that is held back (SET: the code this product set)
    seen_modified: dt.datetime | None  # SET: the version the PATCH made
    seen_erp_code: str | None
    run_id: str


@dataclass(frozen=True)
class Applied:
    """This product's last applied PATCH of a customer: its code, the version it made (None in
    a ledger from before that was recorded) and the lake version it was planned from."""

    erp_code: str | None
    made: dt.datetime | None
    planned_from: str | None


@dataclass
class LedgerView:
    """The ledger read once: the holds, the codes that may be current by this product's doing
    (its last applied code, and any sent since with the answer lost), and its last PATCHes."""

    holds: dict[int, Hold]
    ours: dict[int, set[str | None]]
    applied: dict[int, Applied]
    #: every conflict still standing, by pk and held code: a later row of another code (the
    #: ERP's next one, skipped over the same person's code) takes ``holds``, not these
    conflicts: dict[int, dict[str, Hold]]
    #: this product's last set code, kept when a lost PATCH's row took the latest hold's place
    #: while that code was still there: a person's later edit of it stands as it would have
    kept: dict[int, Hold]


def read_ledger(ledger: list[dict[str, Any]]) -> LedgerView:
    holds: dict[int, Hold] = {}
    ours: dict[int, set[str | None]] = {}
    applied: dict[int, Applied] = {}
    conflicts: dict[int, dict[str, Hold]] = {}
    kept: dict[int, Hold] = {}
    for row in ledger:  # in attempt order: the latest row decides
        pk, outcome = int(row["pk"]), str(row["outcome"])
        code = str(row["erp_code"] or "")
        seen = parse_moment(row.get("seen_modified_iso"))
        run_id = str(row["run_id"])
        if outcome in APPLIED:
            holds[pk] = Hold(SET, code, seen, code or None, run_id)
            ours[pk] = {code or None}
            applied[pk] = Applied(code or None, seen, row.get("based_on_modified_iso"))
            conflicts.pop(pk, None)  # this product's code is current: nobody's edit stands
            kept.pop(pk, None)
        elif outcome in (CONFLICT, UNCONFIRMED):
            before = holds.get(pk)
            # the code the PATCH was sent over: the plan's (a conflict's row saw the re-read's),
            # or what the PATCH saw (an unconfirmed row)
            sent_over = {row.get("previous_erp_code") or "", row.get("seen_erp_code") or ""}
            if before is not None and before.outcome == SET and before.erp_code in sent_over:
                kept[pk] = before  # a PATCH went out over our code: it may still be there
            holds[pk] = Hold(outcome, code, seen, row.get("seen_erp_code") or None, run_id)
            ours.setdefault(pk, set()).add(code or None)
            if outcome == CONFLICT:
                conflicts.setdefault(pk, {})[code] = holds[pk]
        elif outcome == DELETED:
            holds.pop(pk, None)
            ours.pop(pk, None)
            applied.pop(pk, None)
            conflicts.pop(pk, None)
            kept.pop(pk, None)
        elif outcome == SETTLED:
            if pk in holds and _ends(holds[pk], row):
                del holds[pk]
            for lost, hold in list(conflicts.get(pk, {}).items()):
                if _ends(hold, row):  # each settled row names the conflict it ends
                    del conflicts[pk][lost]
            if pk in kept and _ends(kept[pk], row):
                del kept[pk]
        elif outcome == CHANGED and _set_over_plan(row, ours.get(pk, set())):
            holds[pk] = Hold(CHANGED, code, seen, row.get("seen_erp_code") or None, run_id)
    return LedgerView(holds, ours, applied, conflicts, kept)


def open_holds(ledger: list[dict[str, Any]]) -> dict[int, Hold]:
    """pk -> what holds that customer's code back (see the module's text)."""
    return read_ledger(ledger).holds


def _set_over_plan(row: dict[str, Any], ours: set[str | None]) -> bool:
    """Whether a ``CHANGED`` row saw an erp_code someone set (or cleared) in Omnitron: not the
    one the plan was based on, not the one it wanted, and none this product may have made
    current (``ours``; an older code of ours put back is a person's edit)."""
    if row.get("seen_modified_iso") is None:
        return False  # recorded without what it saw: the match key, or an unreadable date
    seen = row.get("seen_erp_code") or None
    return seen not in {row.get("previous_erp_code") or None, row["erp_code"] or None, *ours}


def _ends(hold: Hold, settled: dict[str, Any]) -> bool:
    """Whether a ``settled`` row ends ``hold``: it names that hold (its code and version), so a
    hold made after the settle was decided (another run's PATCH) is not ended by it."""
    return (settled.get("previous_erp_code") or "") == hold.erp_code and settled.get(
        "seen_modified_iso"
    ) == (iso(hold.seen_modified) if hold.seen_modified else None)


def expected(last: Applied | None, change: dict[str, Any]) -> dict[str, Any]:
    """``change`` with the code Omnitron should hold now: a plan from a lake version older than
    the one this product's last PATCH made (whatever held the customer since) expects that
    PATCH's code, not the plan's. Without the version (an older ledger), a plan from the very
    version that PATCH was planned from does."""
    if last is None:
        return change
    based_on: dt.datetime = change["based_on_modified"]
    older = based_on < last.made if last.made is not None else iso(based_on) == last.planned_from
    return {**change, "previous_erp_code": last.erp_code} if older else change


def check_hold(
    client: OmnitronClient,
    hold: Hold,
    change: dict[str, Any],
    note: Callable[[Attempt], None] | None = None,
) -> Attempt | None:
    """None when the change may go ahead on the normal path; otherwise the attempt that ends it
    (``skipped_person_edit``, ``skipped_after_lost_answer``, ``conflict``, ``ok_answer_lost``
    or ``deleted``).

    After a ``conflict``, the person's edit stands: the same code is never sent again to that
    customer (a different code from the ERP is a new change, planned as usual); settle it in the
    ERP or in Omnitron. After ``unconfirmed``, the customer is read again: the code is ours
    (applied), or it is exactly as when the PATCH went out (not applied: go ahead), or it
    changed (now a ``conflict``). When the ERP wants another code than that PATCH's by then,
    the re-read decides that PATCH on a row of its own (``note``, :func:`_lost_code_seen`) and
    the change goes on as a new one."""
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
        if hold.outcome == SET and (
            previous == target or (hold.seen_modified is not None and based_on < hold.seen_modified)
        ):
            return None  # planned from a version older than our PATCH: see expected()
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
    if target != (hold.erp_code or None):
        return _lost_code_seen(hold, change, moment, code, note)
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


def _lost_code_seen(
    hold: Hold,
    change: dict[str, Any],
    moment: dt.datetime,
    code: str | None,
    note: Callable[[Attempt], None] | None,
) -> Attempt | None:
    """An unconfirmed PATCH re-read while the ERP wants another code: that code is a new change
    (the normal path keeps a person's code as it does for any plan), and what the re-read says
    of the lost PATCH goes on its own row. Exactly as when it went out: not applied, nothing to
    say. Its code: it landed. Otherwise the customer changed since, so whether it landed cannot
    be told: its code is held back (``conflict``), whatever the ERP wants next; were it the code
    held under the person's edit, it would go over it later. When the ERP wants the code that
    PATCH was sent over, someone changed that code since, or our PATCH did and someone after
    it: that cannot be told either, and the change ends a ``conflict`` too (returned)."""
    if hold.seen_modified is not None and (moment, code) == (
        hold.seen_modified,
        hold.seen_erp_code,
    ):
        return None
    landed = code == (hold.erp_code or None)
    target = str(change["erp_code"]) or None
    held_too = not landed and target == (hold.seen_erp_code or None) and code != target
    lost = Attempt(  # that PATCH: the code it sent, over the version and code it was sent against
        int(change["pk"]),
        hold.erp_code,
        hold.seen_erp_code,
        hold.seen_modified or change["based_on_modified"],
        OK_ANSWER_LOST if landed else CONFLICT,
    )
    lost.seen_modified, lost.seen_erp_code = moment, code
    lost.detail = (
        f"run {hold.run_id} lost the answer of this PATCH (unconfirmed); "
        + (
            "the re-read shows it applied"
            if landed
            else f"the customer changed since (erp_code {code!r}): not sent again"
        )
        + (
            f"; the ERP's {target!r}, which it was sent over, is held too"
            if held_too
            else f"; the ERP's {target!r} goes on as a new change"
        )
    )
    if note is not None:
        note(lost)
    if not held_too:
        return None
    over = Attempt(
        lost.pk,
        str(change["erp_code"]),
        change["previous_erp_code"],
        change["based_on_modified"],
        CONFLICT,
    )
    over.seen_modified, over.seen_erp_code = moment, code
    over.detail = (
        f"run {hold.run_id}'s lost PATCH of {hold.erp_code!r} was sent over {target!r}, and "
        f"erp_code {code!r} was set since: {target!r} is not sent again; settle it in the ERP "
        "or in Omnitron"
    )
    return over
