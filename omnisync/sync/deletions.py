"""Customers deleted in Omnitron leave the lake within one run (G9).

Omnitron's API answers ``DELETE`` with 405, but its admin deletes customers and merges remove
them. The list endpoint never shows a customer that is gone, so a sync that only reads changes
never learns of one. Each run therefore ends with a check, using only the documented ``pk`` and
``modified_date`` filters and the ``count`` of a list answer:

* **The cheap check: two requests when nothing was deleted** (none when planning's answer held
  them). Let ``L`` be the pks in ``customers/`` (read from the files), ``S`` the customers Omnitron
  holds (its ``count``), and ``M`` those modified at or after the run's upper bound (a listing).
  Every customer whose current version is older than the upper bound is in ``L`` (G1), so ``S``
  is that set plus ``M``, and ``|L| - |S| + |M - L|`` customers of ``L`` are deleted. ``S`` is
  counted before ``M`` is listed, so a customer created in between makes the estimate larger (a
  wasted narrowing), never smaller. A complete answer of planning (all modified since the
  window's start, one page or a few read in whole pk ranges) holds ``M``, ``S`` counted just
  before it (``Plan.seen``): a customer deleted later in that run is found by the next.
* **Quarantined customers count on the lake's side.** A customer Omnitron holds whose only
  versions were quarantined (no row in ``customers/``) is in ``S``: left out of ``L`` it would
  cancel a deleted customer in that sum, for as long as it stays in quarantine. So ``L`` is the
  pks of ``customers/`` and those of ``quarantine/customers/`` (see :func:`lake_side`); one whose
  deletion is already recorded is left out, so that it is found deleted once.
* **Counts are a sketch.** A customer missing from the lake for another reason (a commit later
  than the lag, a record whose pk cannot be read) cancels a deleted one in that sum; such a
  deletion is seen once the other difference is gone, by a later run. Nothing is ever removed
  on a count's word.
* **Narrowing.** When the estimate is positive, pk ranges are compared by the same sum, cutting
  the ranges that differ at the lake's pk quantiles (see :func:`narrow`). A range whose answer
  fits one page lists it whole: a pk of the lake missing from it is a candidate.
* **Only a pk the server confirms absent leaves the lake.** A candidate must be missing from a
  second whole listing of its range too (or, where its range cannot be listed whole, answer 404
  on its own URL and be missing from a listing of its pk alone, :mod:`~omnisync.sync.absence`:
  answers that disagree keep it and carry its pk to the next run). A whole listing of a pk
  range, with no other filter, shows every customer that exists in it, whatever its
  ``modified_date``: a customer modified or created during the run, or by a live writer, is
  listed, and stays. A listing proves absence only when every record in it names its pk as an
  integer: one whose pk cannot be read may be any candidate (``pk_spans.py``).
* **A request budget** (``OMNISYNC_DELETION_CHECK_REQUESTS``) bounds the narrowing; ranges left
  over are recorded in the state database and narrowed first by the next run; when they are
  done and do not explain the estimate, the budget left narrows the whole range the same run. A
  full refresh has no budget: it keeps no deleted customer but one whose answers disagree.
* **Applying (G3, ``applying.py``).** Confirmed deletions are recorded in the state database
  (fenced, with the moment they were detected) before the lake changes; then the change log gets
  one ``_op = 'delete'`` row per pk (a file named after the detecting run, rewritten the same way
  if a crash repeats it), the pks leave their ``customers/`` buckets (each replaced atomically),
  and the deletions are marked applied. A run killed anywhere in between applies the same rows.
* **Erasure (``OMNISYNC_ERASE_DELETED``).** Before the mark, the deleted customers' personal
  values are erased from the rest of the lake (``omnisync.sync.erasing``): a run killed while
  erasing leaves the deletions pending, and the next run erases them again (idempotent), so no
  deletion is marked applied before its erasure is complete. ``verify --repair`` records the
  deletions it finds and applies them through this same path.
* **Never much of the lake at once.** Before anything is recorded, a run refuses (fails,
  applying none) when Omnitron counts 0 customers for a lake that holds some, or when it would
  delete more than ``OMNISYNC_MAX_DELETIONS_SHARE`` of the lake (``mass_deletion.py``).
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from omnisync.client import CustomerQuery, OmnitronClient, Page
from omnisync.lake import ChangeLog, LakeStorage, Snapshot
from omnisync.settings import Settings
from omnisync.state import Fence, StateStore
from omnisync.state.deletions import (
    PkSpan,
    carried_ranges,
    carry_ranges,
    record_deletions,
)
from omnisync.sync.absence import Absence, ask_absent
from omnisync.sync.applying import apply_pending
from omnisync.sync.context import STREAM
from omnisync.sync.deletion_sides import lake_side, server_side
from omnisync.sync.mass_deletion import refuse_mass_deletion
from omnisync.sync.pk_spans import complete, cuts, proven, within
from transforms.pk_sets import contains

log = logging.getLogger("omnisync.sync")
#: customers modified after the upper bound are listed up to this far ahead of it
Seen = tuple[int, np.ndarray]  # ``S``, and the sorted pks of ``M``


@dataclass
class DeletionCheck:
    """What a run's deletion check did."""

    requests: int = 0
    estimate: int = 0
    deleted: list[int] = field(default_factory=list)
    carried: list[PkSpan] = field(default_factory=list)

    def counts(self) -> dict[str, Any]:
        return {
            "deleted": len(self.deleted),
            "deletion_check_requests": self.requests,
            "deletion_ranges_carried": len(self.carried),
        }


class _Budget:
    def __init__(self, client: OmnitronClient, limit: int | None) -> None:
        self.client, self.limit, self.used = client, limit, 0
        #: single pks whose answers disagreed: kept, and carried to the next run
        self.doubtful: list[PkSpan] = []

    def has(self, requests: int) -> bool:
        return self.limit is None or self.used + requests <= self.limit

    def page(self, lo: int | None, hi: int | None, limit: int) -> Page | None:
        self.used += 1
        query = CustomerQuery(pk_gte=lo, pk_lt=hi, sort=None)
        return next(self.client.list_customers(query, limit), None)

    def absent(self, pk: int) -> bool:
        """Whether Omnitron confirms ``pk`` is gone by two answers (``absence.py``); a pk whose
        answers disagree is kept and noted in ``doubtful``."""
        answer, requests = ask_absent(self.client, pk)
        self.used += requests
        if answer is Absence.DOUBTFUL:
            self.doubtful.append((pk, pk + 1))
        return answer is Absence.GONE


def narrow(
    budget: _Budget, lake: np.ndarray, unseen: np.ndarray, spans: list[PkSpan], page_size: int
) -> tuple[list[int], list[PkSpan]]:
    """The lake pks Omnitron confirms deleted within ``spans``, and the spans left unexamined
    when the budget ran out. ``unseen``: pks Omnitron holds that the lake does not (sorted).

    A span whose answer lists it whole names its candidates: lake pks it does not hold. They are
    confirmed by a second whole listing of the span (or, for a span of one or two lake pks, by
    two answers each, ``absence.py``). A whole answer holding a record whose pk cannot be read
    proves nothing absent (``pk_spans.py``): its span is cut like one that differs, down to
    pks asked one by one. A span that differs is cut at the lake's pk quantiles: in
    halves, or, when many of its customers differ, straight into pieces that each fit one page
    (bisecting d differences costs about 2·d·log2(pieces) requests, listing the span whole about
    ``pieces``).
    """
    confirmed: list[int] = []
    # (lo, hi, sibling): halves share a cell holding the parent's difference and, once the
    # lower half was asked, its own; the upper half is skipped when nothing is left for it.
    stack: list[tuple[int | None, int | None, list[int | None] | None]] = [
        (lo, hi, None) for lo, hi in reversed(spans)
    ]

    def left_over(*first: PkSpan) -> list[PkSpan]:
        return [*first, *((lo, hi) for lo, hi, _ in reversed(stack))]

    fits = max(1, page_size * 9 // 10)
    while stack:
        if not budget.has(1):
            return confirmed, left_over()
        lo, hi, cell = stack.pop()
        upper_half = cell is not None and cell[1] is not None
        if upper_half and cell is not None and (cell[0] or 0) - (cell[1] or 0) <= 0:
            continue  # the lower half holds every difference its parent showed (a sketch)
        held = within(lake, lo, hi)
        extra = len(within(unseen, lo, hi))
        page = budget.page(lo, hi, page_size if len(held) + extra <= page_size else 1)
        differ = len(held) + extra - (0 if page is None else page.count)
        if cell is not None and not upper_half:
            cell[1] = differ
        listed = proven(page)
        if listed is not None:
            candidates = [int(pk) for pk in held if int(pk) not in listed]
            if not candidates:
                continue
            if not budget.has(1):
                return confirmed, left_over((lo, hi))
            listed = proven(budget.page(lo, hi, page_size))
            if listed is not None:
                confirmed.extend(pk for pk in candidates if pk not in listed)
                continue
            # customers came in between, or a pk cannot be read: looked at in smaller parts
        elif differ <= 0 and not complete(page):
            continue  # no deletion seen here (a sketch: see the module's docstring)
        # a whole answer naming a pk it cannot read: its candidates are asked in smaller parts
        if len(held) <= 2:
            for pk in held:
                if not budget.has(2):
                    return confirmed, left_over((lo, hi))
                if budget.absent(int(pk)):
                    confirmed.append(int(pk))
            continue
        differ = max(1, differ)
        pieces = math.ceil((len(held) + extra) / fits)
        if pieces > 2 and pieces <= 2 * differ * math.log2(pieces):
            bounds = [lo, *cuts(held, pieces), hi]
            stack.extend((a, b, None) for a, b in reversed(list(itertools.pairwise(bounds))))
        else:
            middle = cuts(held, 2)[0]
            halves: list[int | None] = [differ, None]
            stack.extend([(middle, hi, halves), (lo, middle, halves)])
    return confirmed, []


def check_deletions(
    upper: dt.datetime,
    full_refresh: bool,
    *,
    settings: Settings,
    client: OmnitronClient,
    datetimes: bool,
    store: StateStore,
    fence: Fence | None,
    run_id: str,
    storage: LakeStorage,
    changes: ChangeLog,
    snapshot: Snapshot,
    seen: Seen | None = None,
) -> DeletionCheck:
    """Apply deletions an interrupted run recorded, then find and apply this run's (see the
    module's docstring). Call it under the stream's lock, after the run's plans finished.
    ``seen``: ``S`` and ``M`` (sorted pks) when planning's one complete answer held them
    (``Plan.seen``)."""
    assert fence is not None, "the deletion check changes the lake: hold the lock"
    apply_pending(
        settings=settings,
        client=client,
        store=store,
        fence=fence,
        storage=storage,
        changes=changes,
        snapshot=snapshot,
    )
    check = DeletionCheck()
    lake = lake_side(snapshot, storage, store)
    recorded = carried_ranges(store, STREAM)
    carried = [] if full_refresh else recorded  # a full refresh examines everything anyway
    if seen is not None:
        total, ahead = seen
    else:
        total, ahead, check.requests = server_side(client, upper, datetimes, settings.page_size)
    refuse_mass_deletion(settings, len(lake), 0, total)  # an Omnitron counting 0: see there
    unseen = ahead[~contains(lake, ahead)]
    check.estimate = len(lake) - total + len(unseen)
    if check.estimate <= 0 and not carried:
        if recorded:
            carry_ranges(store, STREAM, [], run_id, fence)
        return check
    budget = _Budget(client, None if full_refresh else settings.deletion_check_requests)
    spans = carried or [(None, None)]
    found, left = narrow(budget, lake, unseen, spans, settings.page_size)
    if carried and not left and budget.has(1) and check.estimate > len(found):
        # The carried ranges do not explain the estimate: a deletion elsewhere is looked for
        # with the budget left, not a run later. Pks found there are no longer the lake's side.
        rest = lake[~np.isin(lake, np.array(found, dtype=np.int64))]
        more, left = narrow(budget, rest, unseen, [(None, None)], settings.page_size)
        found = [*found, *more]
    check.requests += budget.used
    left = list(dict.fromkeys([*left, *budget.doubtful]))  # doubtful pks: asked again
    check.carried = left
    refuse_mass_deletion(settings, len(lake), len(found))
    if found:
        detected = client.server_time()
        # only what is newly recorded counts: a pending one was counted by the run that found it
        check.deleted = record_deletions(store, STREAM, found, detected, run_id, fence)
        apply_pending(
            settings=settings,
            client=client,
            store=store,
            fence=fence,
            storage=storage,
            changes=changes,
            snapshot=snapshot,
        )
    if left or recorded:
        carry_ranges(store, STREAM, left, run_id, fence)
    if left:
        log.warning(
            "deletion check: %d pk range(s) left for the next run (request budget %d, "
            "OMNISYNC_DELETION_CHECK_REQUESTS; or Omnitron's answers disagreed)",
            len(left),
            settings.deletion_check_requests,
        )
    return check
