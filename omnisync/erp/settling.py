"""Holds the ERP ends: a reconciliation whose ERP took the code Omnitron holds (G7).

A hold (:mod:`omnisync.erp.holds`) keeps a code back because someone set another in Omnitron. When
the ERP takes that other code, the hold has done its work: a ``settled`` row ends it, naming the
hold it ends (its code and version), so that a write-back running beside it loses no newer hold.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from omnisync.erp.holds import Hold, read_ledger
from omnisync.erp.outcomes import SET, SETTLED, UNCONFIRMED, iso
from omnisync.state import StateStore


def record_settled(store: StateStore, run_id: str, agreed: pa.Table) -> int:
    """End the holds of the customers whose other code the ERP has taken (``agreed``: ``pk``,
    ``erp_code`` and ``modified_date`` of the customers the lake shows already right): the
    code someone set over a plan or after a lost answer; after this product set a code, any
    other code the lake shows in a later version than that PATCH made. A later change of the
    ERP's is then a new one. Each ``settled`` row names the hold it ends (:func:`_ends`), so a
    write-back running beside it loses nothing. Returns how many ended."""
    if agreed.num_rows == 0:
        return 0
    view = read_ledger(store.ledger.rows())
    holds, conflicts = view.holds, view.conflicts
    held = set(holds) | set(view.kept) | {pk for pk, lost in conflicts.items() if lost}
    if not held:
        return 0
    import pyarrow.compute as pc

    mine = agreed.filter(pc.is_in(agreed.column("pk"), pa.array(sorted(held), pa.int64())))
    ended: set[int] = set()
    for row in mine.to_pylist():
        pk, code, moment = row["pk"], row["erp_code"] or None, row["modified_date"]
        latest = holds.get(pk)
        # A lost PATCH's conflict ends with the code the ERP and Omnitron agree on in a version
        # at least as new as the re-read that found it (the ERP wanting the lost code again
        # after that is a new decision); the lake's older version, with its old code, ends none.
        ending = [
            hold
            for hold in conflicts.get(pk, {}).values()
            if hold.seen_modified is not None and moment >= hold.seen_modified
        ]
        for hold in (latest, view.kept.get(pk)):
            if hold is not None and hold not in ending and _taken_over(hold, code, moment):
                ending.append(hold)
        if pk in ended or not ending:
            continue
        ended.add(pk)
        for hold in ending:
            store.ledger.record(
                run_id=run_id,
                pk=pk,
                erp_code=code,
                previous_erp_code=hold.erp_code,
                based_on_modified_iso=iso(moment),
                outcome=SETTLED,
                detail=f"the ERP took {code!r}: the hold of run {hold.run_id} ends",
                seen_modified_iso=iso(hold.seen_modified) if hold.seen_modified else None,
                seen_erp_code=hold.seen_erp_code,
            )
    return len(ended)


def _taken_over(hold: Hold, code: str | None, moment: dt.datetime) -> bool:
    if hold.outcome == UNCONFIRMED:
        return False  # settled by reading the customer again (check_hold)
    if hold.outcome != SET:
        return code == hold.seen_erp_code  # the person's code, and no other
    if code == (hold.erp_code or None):
        return False  # our own code stands: nothing was overridden
    return hold.seen_modified is None or moment > hold.seen_modified  # not the lake's old code
