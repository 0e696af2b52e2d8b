"""Planning a run's windows from the API's counts, using only documented filters.

The span ``[lo, hi)`` is halved by time while a part holds more than ``target_rows`` customers
(a quarter of them when the span holds more than four windows; down to one second, or one day on
date-only servers, finer than which their filters cannot tell), then neighbouring parts are
joined again into the fewest windows that fit, the largest as small as those parts allow
(:func:`balanced`).
A full read starts from a fixed floor and its first window is open below, so no customer is older
than the plan; nothing depends on ``sort`` (docs/omnitron-api.md: it is not promised).
Counting costs one request per part, and each window is then extracted, written and committed
on its own, so a failed backfill resumes where it stopped.

The first count of an incremental asks for a whole page of every customer modified since ``lo``,
open above: what changed in the window, and what changed after its upper bound (the deletion
check's ``M``). When that page is complete (no ``next``, a ``count`` no greater than its rows)
and the plan is its one window, extraction reads the window from it and the deletion check takes
``M`` from it, with ``S`` counted just before it: a run whose changes fit one page asks Omnitron
two things (:func:`new_plan`). When the page is not complete but its ``count`` is no more than a
window's chunk holds (``chunk_rows``), the rest of that open query is read at once, in the
paginator's whole pk ranges, and held as one complete answer: the window and ``M`` again come
from it, and a run of a few pages of changes reads each of them once.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from omnisync.client import CustomerQuery, OmnitronClient, Page
from omnisync.client.dates import DAY, parse_modified, server_bounds
from omnisync.client.paginator import Paginator
from omnisync.client.records import record_modified, record_pk
from omnisync.lake import LakeStorage
from omnisync.settings import Settings
from omnisync.state import Fence, StateStore
from omnisync.state.times import from_us, to_us
from omnisync.sync.context import STREAM
from omnisync.sync.deletions import Seen
from omnisync.sync.rebuild import is_rebuild, mark_rebuild
from omnisync.sync.staging_upkeep import remove_finished_staging

log = logging.getLogger("omnisync.sync")
MIN_WINDOW = dt.timedelta(seconds=1)
# Where a full read starts halving: older customers all fall in the first window, open below.
FLOOR = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)

Window = tuple[dt.datetime | None, dt.datetime]
#: a span of the plan and its count of customers
Part = tuple[dt.datetime, dt.datetime, int]


def _floor_day(moment: dt.datetime) -> dt.datetime:
    return dt.datetime(moment.year, moment.month, moment.day, tzinfo=dt.UTC)


def _count(client: OmnitronClient, a: dt.datetime | None, b: dt.datetime, datetimes: bool) -> int:
    gte, lt = server_bounds(a, b, datetimes)
    return client.count_customers(CustomerQuery(modified_gte=gte, modified_lt=lt, sort=None))


def _middle(a: dt.datetime, b: dt.datetime, datetimes: bool) -> dt.datetime | None:
    """Where to halve ``[a, b)``, or None when it is as fine as the server can filter."""
    if datetimes:
        return a + (b - a) / 2 if b - a > MIN_WINDOW else None
    middle = _floor_day(a + (b - a) / 2)
    if middle <= a:
        middle = _floor_day(a) + DAY
    return middle if a < middle < b and b - a > DAY else None


def plan_windows(
    client: OmnitronClient,
    lo: dt.datetime | None,
    hi: dt.datetime,
    datetimes: bool,
    target_rows: int,
    first_pages: dict[Window, Page] | None = None,
    page_size: int | None = None,
) -> list[Window]:
    """Windows covering ``[lo, hi)`` exactly, in order, with about ``target_rows`` customers
    each at most (more only where one second, or one day, holds more).

    With ``first_pages``, the first count is a whole page (``page_size``) of everything modified
    since ``lo`` (:meth:`Paginator.since_query`; its count may exceed the span's by what changed
    after ``hi``, which can only halve a span more than needed), kept there under ``(lo, hi)``
    when the plan is that one window."""
    start = lo if lo is not None else min(FLOOR, hi - MIN_WINDOW)

    def counted(a: dt.datetime, b: dt.datetime) -> int:
        return _count(client, a if (a != start or lo is not None) else None, b, datetimes)

    # A span, and its count when it is already known (the rest of its halved parent's).
    pending: list[tuple[dt.datetime, dt.datetime, int | None]] = [(start, hi, None)]
    parts: list[Part] = []
    whole: Page | None = None
    finest = target_rows
    while pending:
        a, b, known = pending.pop()
        exact = True  # the count is of exactly [a, b)
        if known is not None:
            count = known
        elif first_pages is not None and whole is None and (a, b) == (start, hi):
            query = Paginator.since_query(lo, hi, datetimes)
            whole = next(client.list_customers(query, page_size), None)
            count = 0 if whole is None else whole.count
            exact = lo is None  # an incremental's is open above: what changed after hi counts
        else:
            count = counted(a, b)
        if (a, b) == (start, hi) and count > 4 * target_rows:
            # Many windows: parts of a quarter of a window, so that the join can make the largest
            # smaller. Parts of a whole window made a 1M plan's largest window 49,897 rows against
            # an average of 35,700 (docs/performance.md); each part costs a count request.
            finest = max(1, target_rows // 4)
        middle = _middle(a, b, datetimes) if count > finest else None
        if middle is None:
            parts.append((a, b, count))
        elif datetimes and exact:
            # Exact bounds and disjoint halves: the upper half is the rest, one request a split
            # (a date-only server's padded bounds overlap, so there both halves are counted).
            # A count that moved in between sizes a window wrongly, never loses a customer.
            lower = counted(a, middle)
            pending.extend([(middle, b, max(0, count - lower)), (a, middle, lower)])
        else:
            pending.extend([(middle, b, None), (a, middle, None)])
    parts.sort(key=lambda part: part[0])
    windows: list[Window] = [(a, b) for a, b, _ in balanced(parts, target_rows)]
    if lo is None:
        windows[0] = (None, windows[0][1])  # the first window of a full read is open below
    if first_pages is not None and whole is not None and windows == [(lo, hi)]:
        first_pages[(lo, hi)] = whole
    log.info("planned %d window(s) for [%s, %s)", len(windows), lo, hi)
    return windows


def _joined(parts: list[Part], most: int) -> list[Part]:
    """Neighbouring parts joined while their sum stays within ``most`` (a part over it alone)."""
    joined: list[Part] = []
    for a, b, count in parts:
        if joined and joined[-1][2] + count <= most:
            first, _, total = joined[-1]
            joined[-1] = (first, b, total + count)
        else:
            joined.append((a, b, count))
    return joined


def balanced(parts: list[Part], target_rows: int) -> list[Part]:
    """``parts`` (in order) joined into the fewest windows of at most ``target_rows`` (joining
    while they fit gives the fewest), with the least largest window that many can have: the
    least bound that still joins them into that many, found by bisection (the count of windows
    only falls as the bound rises). A part over ``target_rows`` stays a window of its own."""
    fewest = len(_joined(parts, target_rows))
    low, high = 0, target_rows
    while low < high:
        middle = (low + high) // 2
        if len(_joined(parts, middle)) <= fewest:
            high = middle
        else:
            low = middle + 1
    return _joined(parts, low)


@dataclass
class Plan:
    """Windows to extract; the upper bound is fixed by the server's clock when planned."""

    plan_id: str
    upper: dt.datetime
    watermark_before: dt.datetime | None
    windows: list[Window]
    resumed: bool = False
    #: a full refresh: its finish rebuilds ``customers/`` from what it read (``rebuild.py``)
    rebuild: bool = False
    #: answers planning already has for a window's first range (not kept across runs; the
    #: orchestration hands each to its window and lets go of it)
    first_pages: dict[Window, Page] = field(default_factory=dict)
    #: the deletion check's ``S`` and ``M`` when planning's one complete answer holds them
    #: (``omnisync/sync/deletions.py``): the customers Omnitron held, counted just before that
    #: page, and the sorted pks it showed modified at or after ``upper`` (or with no readable
    #: ``modified_date``)
    seen: Seen | None = None


def open_plan(store: StateStore, storage: LakeStorage) -> Plan | None:
    """The plan an interrupted run left unfinished, with the windows it still has to do."""
    found = store.plans.open(STREAM)
    if found is None:
        return None
    plan_id, windows = found
    left = [w for w in windows if w.status != "done"]
    log.info("resuming plan %s: %d of %d windows left", plan_id, len(left), len(windows))
    return Plan(
        plan_id,
        from_us(windows[-1].hi_us),
        store.watermarks.get(STREAM),
        [(None if w.lo_us == 0 else from_us(w.lo_us), from_us(w.hi_us)) for w in left],
        resumed=True,
        rebuild=is_rebuild(storage, plan_id),
    )


def new_plan(
    full_refresh: bool = False,
    *,
    settings: Settings,
    client: OmnitronClient,
    datetimes: bool,
    total: Callable[[], int],
    store: StateStore,
    fence: Fence | None,
    storage: LakeStorage,
) -> Plan:
    """Plan ``[watermark - lookback, server now - lag)``, or everything below ``now - lag``.

    Its first request counts every customer (``total``: ``S``, and the ``Date`` header that
    fixes the upper bound), unless the run's context just did; its second is a whole page of
    what changed since ``watermark - lookback``. Raises DateFilterRejected when ``datetimes``
    is wrong (the caller records it and plans again with dates)."""
    watermark = store.watermarks.get(STREAM)
    if full_refresh:
        store.plans.abandon(STREAM, fence=fence)
    remove_finished_staging(storage, store)
    counted = total()
    upper = client.server_time() - dt.timedelta(seconds=settings.lag_seconds)
    lower = (
        None
        if (watermark is None or full_refresh)
        else (watermark - dt.timedelta(seconds=settings.lookback_seconds))
    )
    if lower is not None and lower >= upper:
        return Plan(uuid.uuid4().hex, upper, watermark, [])
    first_pages: dict[Window, Page] = {}
    bounds = plan_windows(
        client,
        lower,
        upper,
        datetimes,
        settings.window_rows,
        first_pages=first_pages,
        page_size=settings.page_size,
    )
    plan = Plan(
        uuid.uuid4().hex, upper, watermark, bounds, first_pages=first_pages, rebuild=full_refresh
    )
    page = first_pages.get((lower, upper))
    if page is not None:
        # Built here, before any window thread starts: the window reads this same view. First:
        # ``complete`` counts the view decoded, and would otherwise decode the exact dicts too.
        records = page.records
        if lower is not None and not page.complete and page.count <= settings.chunk_rows:
            page = _read_since(client, lower, upper, datetimes, settings.page_size, page)
            first_pages[(lower, upper)] = page
            records = page.records
        if lower is not None and page.complete:
            plan.seen = (counted, _changed_since(records, upper))
    if full_refresh:  # before the plan exists: a run that resumes it must rebuild too
        mark_rebuild(storage, plan.plan_id)
    store.plans.save(
        STREAM,
        plan.plan_id,
        [(0 if lo is None else to_us(lo), to_us(hi)) for lo, hi in bounds],
        fence=fence,
    )
    return plan


def _read_since(
    client: OmnitronClient,
    lower: dt.datetime,
    upper: dt.datetime,
    datetimes: bool,
    page_size: int,
    first: Page,
) -> Page:
    """Everything modified since ``lower``, open above, read in whole pk ranges (the
    paginator's, sized by ``first``) and held as one complete answer: the window's records and
    the deletion check's ``M`` at once. Only for what one chunk of the window holds anyway."""
    query = Paginator.since_query(lower, upper, datetimes)
    records = [
        record
        for part in Paginator(client, page_size).pages(query, first, typed=True)
        for record in part
    ]
    return Page(first.number, len(records), records, False)


def _changed_since(records: list[Any], upper: dt.datetime) -> np.ndarray:
    """The sorted pks of ``records`` modified at or after ``upper``, or whose ``modified_date``
    cannot be read (as the deletion check's own listing keeps them)."""
    pks = []
    for record in records:
        pk = record_pk(record)
        if not isinstance(pk, int) or isinstance(pk, bool):
            continue
        stamp = parse_modified(record_modified(record))
        if stamp is None or stamp >= upper:
            pks.append(pk)
    return np.unique(np.array(pks, dtype=np.int64))
