"""The paginator: reading customers by pk ranges without losing a change (G1).

A window is ``[lo, hi)`` of ``modified_date``. The server is asked only with what Omnitron
documents (docs/omnitron-api.md: ``modified_date`` and ``pk`` range filters, ``count``, ``next``)
and the rows are kept whose ``modified_date`` is really in ``[lo, hi)``. ``sort=pk`` is sent,
but never trusted. Why this cannot lose a change:

* **Ranges, not pages.** The window is read as ``pk`` ranges, each asked for on its own first page
  (``pk__gte=a & pk__lt=b``). Only a **complete** answer is used: one with no ``next`` and a
  ``count`` no greater than the rows it holds, so that it lists every customer of its range at
  the moment it was answered. The ranges read whole tile the pk line, so every customer present
  in the window throughout the run is in exactly one of them and is yielded exactly once. An
  answer that does not fit one page yields nothing: its range is split and its parts asked, so no
  page number is ever followed and ``"Invalid page."`` cannot happen.
* **No claim rests on ``sort`` or on counts balancing.** An earlier design continued after a page
  in ascending pk order and checked that claim with the next range's ``count``. A server that
  ignores ``sort`` can answer a page that looks ascending but skips a row (PostgreSQL's heap order
  puts an updated row last), and customers created between the two requests can make the count
  come out exactly as if nothing was skipped. Now the pks received only *size* the next requests:
  an ascending page shows how densely the pk line is used, and the range is then walked in pieces
  expected to hold a little less than a page (:class:`Density`), each read whole. A descending
  page is the range's last pks and is walked the same way; a page in any other order is a
  sample of the range, cut at its quantiles, or walked at its density when it holds too few pks
  to place that many cuts. A wrong guess costs a request (a piece that overflows is split
  again), never a customer.
* **A capped or ignored ``limit``** changes nothing: the page that matters is the number of rows
  received in an answer that has a ``next``, and pieces are sized from it.
* **Ties and random tie order.** Ranges are of ``pk``, which is unique: however many customers
  share one ``modified_date`` and however the server orders them, every pk of a range is in it.
* **Live writers.** A row modified during the run leaves the window because its new
  ``modified_date`` is later than ``hi`` (``hi`` is fixed at the start of the run, ``lag`` before
  the server's clock); that new version is read by the next run. A row created during the run
  likewise has a ``modified_date`` after ``hi``.
* **Late commits.** A row whose commit becomes visible up to ``lag`` seconds after its
  ``modified_date`` is visible before this run's ``hi`` passes it; later ones are re-read by the
  next run's ``lookback`` (the next window starts ``lookback`` before the watermark).
* **Date-only servers** read a bare date as midnight in their own time zone, which the client
  cannot know (UTC-12 to UTC+14). The bounds sent are padded to contain ``[lo, hi)`` at every
  such offset (:func:`server_bounds`), and the exact bounds are applied here.

Cost: a range that fits one page is one request. A larger one costs its first answer (which
yields nothing) and about one request per ``Density.target`` rows, a little less than a page, so
that a piece rarely overflows: about 1.1 requests per page of 1,000, more for small pages.

Memory: the pages in flight (``in_flight``: a sync's windows keep two) and the pending pk
ranges, not the window: no record (nor its key) is kept once yielded. The caller groups pages
into chunks.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import math
from collections import deque
from collections.abc import Generator
from dataclasses import dataclass, replace
from typing import Any

from omnisync.client.dates import parse_modified, server_bounds
from omnisync.client.errors import UnexpectedResponse
from omnisync.client.in_flight import Answer, InFlight, Lister
from omnisync.client.pages import Page
from omnisync.client.query import CustomerQuery
from omnisync.client.records import Record, record_modified, record_pk


@dataclass(frozen=True)
class PkRange:
    """``lo <= pk < hi`` (None: open). ``rows``: how many customers an earlier answer says it
    holds (None: unknown, ask it whole). ``origin``: where to start walking a range open below
    (the least pk seen in it)."""

    lo: int | None
    hi: int | None
    rows: float | None = None
    origin: int | None = None


@dataclass
class Density:
    """How requests are sized: ``page``, the rows a full answer holds (what the server gives, not
    what was asked); ``per_row``, pk units per customer, from the latest answers; ``margin``, how
    far below a page a piece is aimed (None: the margin for a random scatter of customers)."""

    page: int = 1
    per_row: float | None = None
    margin: float | None = None

    def _scatter_margin(self) -> float:
        # t + 3*sqrt(t) = page: a piece aimed at t customers scattered at random overflows
        # about once in a thousand.
        root = (math.sqrt(9 + 4 * self.page) - 3) / 2
        return self.page - root * root

    @property
    def target(self) -> int:
        """Rows to aim a piece at."""
        margin = self._scatter_margin() if self.margin is None else self.margin
        return max(1, math.floor(self.page - margin))

    def observe(self, width: int, count: int, expected: float | None) -> None:
        """A range ``width`` pks wide held ``count`` customers, ``expected`` if it was carved.
        Pieces that land near their aim (densely used pks) narrow the margin towards what they
        miss by; an overflow restores at least the scatter margin."""
        if count:
            self.per_row = width / count
        elif self.per_row is not None:
            self.per_row = min(self.per_row * 2, 1e12)
        if expected is None:
            return
        margin = self._scatter_margin() if self.margin is None else self.margin
        if count > self.page:
            self.margin = max(2 * margin, self._scatter_margin())
        else:
            self.margin = max(1.0, margin / 2 + 1.5 * abs(count - expected))


def _valid_pks(records: list[Any]) -> list[int]:
    return [
        pk for pk in map(record_pk, records) if isinstance(pk, int) and not isinstance(pk, bool)
    ]


def split_points(pks: list[int], lo: int | None, parts: int) -> list[int]:
    """Where to cut a range into about ``parts`` parts: quantiles of the pks received (a sample
    of the range). Every cut is above ``lo``, so every part is smaller than the range."""
    sample = sorted({pk for pk in pks if lo is None or pk > lo})
    if not sample:
        return [(lo if lo is not None else 0) + 1]
    parts = min(len(sample), max(2, parts))
    step = len(sample) / parts
    cuts = sorted({sample[min(len(sample) - 1, int(i * step))] for i in range(1, parts)})
    return cuts or [sample[-1]]


def _is_ascending(pks: list[int]) -> bool:
    return all(a < b for a, b in itertools.pairwise(pks))


def carve(part: PkRange, density: Density) -> tuple[PkRange, PkRange | None]:
    """The piece of ``part`` to ask next and the rest left pending (None: ask ``part`` whole).
    A part known to hold more than a page is walked from its start, a target's worth of pks at a
    time; the piece is always smaller than the part, so the walk ends."""
    target = density.target
    if part.rows is None or part.rows <= target or density.per_row is None:
        return part, None
    start = part.lo if part.lo is not None else part.origin
    if start is None:
        return part, None
    cut = start + max(1, round(target * density.per_row))
    if part.hi is not None:
        cut = min(cut, part.hi - 1)
    if cut <= start:
        return part, None
    expected = min(float(target), part.rows)
    return PkRange(part.lo, cut, expected), PkRange(cut, part.hi, part.rows - expected)


def split(part: PkRange, pks: list[int], count: int, density: Density) -> list[PkRange]:
    """The parts to ask for a range whose answer (``count``, ``pks`` received) did not fit one
    page. Nothing of that answer is trusted to be complete: it only sizes the parts."""
    walk = replace(part, rows=float(max(count, density.target + 1)))
    if len(pks) > 1 and _is_ascending(pks):
        # Most likely the range's first pks (sort honoured, or a heap nearly in pk order): they
        # show how densely pks are used; the range is walked from its start at that density.
        density.per_row = (pks[-1] - pks[0]) / (len(pks) - 1)
        # By its own answer the range holds more than a page, so it is walked, never asked whole.
        return [replace(walk, origin=pks[0])]
    if len(pks) > 1 and _is_ascending(pks[::-1]):
        # The range's last pks (sorted by pk descending): walked from where they put its first.
        density.per_row = (pks[0] - pks[-1]) / (len(pks) - 1)
        return [replace(walk, origin=round(pks[-1] - density.per_row * (count - len(pks))))]
    ordered = sorted(set(pks))
    parts = math.ceil(count / density.target)
    if len(ordered) > 1 and count:
        # A sample of the range: its n pks span about (n - 1) / (n + 1) of the range's.
        span = (ordered[-1] - ordered[0]) * (len(ordered) + 1) / (len(ordered) - 1)
        density.per_row = max(1.0, span / count)
        if parts > len(ordered) // 2:
            # Its quantiles cannot place that many cuts: parts cut between too few sampled pks
            # would overflow and be asked again. The range is walked at the sample's density.
            below = density.per_row * count / (len(ordered) + 1)
            return [replace(walk, origin=round(ordered[0] - below))]
    bounds = [part.lo, *split_points(pks, part.lo, parts), part.hi]
    share = count / (len(bounds) - 1)
    return [PkRange(a, b, share) for a, b in itertools.pairwise(bounds)]


class Paginator:
    """Reads customers by pk ranges (see the module's docstring) through ``client``, asking
    for ``page_size`` rows a request (None: the client's own), ``in_flight`` requests at once
    (``in_flight.py``). Memory: ``in_flight`` pages."""

    def __init__(self, client: Lister, page_size: int | None = None, in_flight: int = 1) -> None:
        self.client = client
        self.page_size = page_size
        self.in_flight = in_flight

    @staticmethod
    def first_query(lo: dt.datetime | None, hi: dt.datetime, datetimes: bool) -> CustomerQuery:
        """What :meth:`changed` asks first for ``[lo, hi)`` (its whole pk range)."""
        gte, lt = server_bounds(lo, hi, datetimes)
        return CustomerQuery(modified_gte=gte, modified_lt=lt, sort="pk")

    @staticmethod
    def since_query(lo: dt.datetime | None, hi: dt.datetime, datetimes: bool) -> CustomerQuery:
        """Every customer modified since ``lo``, open above (``first_query`` for a read open
        below): wider than :meth:`first_query`, so :meth:`changed` takes it as a first page."""
        if lo is None:
            return Paginator.first_query(lo, hi, datetimes)
        gte, _ = server_bounds(lo, hi, datetimes)
        return CustomerQuery(modified_gte=gte, sort="pk")

    def changed(
        self,
        lo: dt.datetime | None,
        hi: dt.datetime,
        datetimes: bool,
        first_page: Page | None = None,
        typed: bool = False,
    ) -> Generator[list[Any], None, None]:
        """Pages of the customers with ``lo <= modified_date < hi`` (records whose modified_date
        cannot be read are passed through, so that the transform quarantines them).

        ``datetimes``: whether the server takes datetimes in date filters (else dates padded by
        :func:`server_bounds` are sent). ``first_page`` is an answer already received to
        :meth:`first_query` or to :meth:`since_query` (planning asks it), used instead of asking
        again. A version is
        yielded once; a customer changed while its range was read again may be yielded in both
        versions: callers keep one row per version, as they must anyway for lookback overlaps.
        Raises the client's errors, and UnexpectedResponse for records without a pk that do
        not fit one page. ``typed``: yield each page's typed ``records`` (``Page.records``)
        rather than its dicts.
        """
        for results in self.pages(self.first_query(lo, hi, datetimes), first_page, typed):
            rows = [record for record in results if _in_window(record, lo, hi)]
            if rows:
                yield rows

    def pages(
        self, query: CustomerQuery, first_page: Page | None = None, typed: bool = False
    ) -> Generator[list[Any], None, None]:
        """Every customer matching ``query``, as the records of complete answers, by pk ranges
        within the query's own pk bounds (``pk_gte``, ``pk_lt``). ``first_page``: an answer
        already received to ``query``, or to a wider query of the same pk bounds (complete, it
        holds them all; if not, it only sizes the ranges). Nothing is filtered here.
        ``typed``: the pages' ``records`` rather than their ``results``."""
        whole = PkRange(query.pk_gte, query.pk_lt)
        pending = [whole]
        density = Density()
        given = first_page
        # closed however the reader ends: requests it asked ahead go no further
        with InFlight(self.client, self.page_size, self.in_flight) as asking:
            # Pieces asked and not yet answered, oldest first, each with the walk it was carved
            # from (None: asked whole); ``tail`` is the current walk's rest. As each answer is
            # taken, the next piece is asked: a walk's next pieces are carved before the answers
            # to the ones before them, which only sizes them.
            flying: deque[tuple[PkRange, int | None, Answer]] = deque()
            tail: PkRange | None = None
            walk = 0
            while True:
                page: Page | None = None  # the page before goes before the next piece is asked
                results: list[Record] = []
                while len(flying) < asking.limit and (tail is not None or pending):
                    if tail is None:
                        walk += 1
                    part, tail = carve(tail if tail is not None else pending.pop(), density)
                    answer: Answer
                    if given is not None and part == whole:
                        answer, given = functools.partial(_given, given), None
                    else:
                        ranged = query.with_(pk_gte=part.lo, pk_lt=part.hi)
                        answer = asking.ask(ranged, first=not flying)
                    flying.append((part, walk if tail is not None else None, answer))
                if not flying:
                    return
                part, walked, answer = flying.popleft()
                page = answer()
                if page is not None:
                    results = page.records if typed else page.results
                count = 0 if page is None else page.count
                current = walked is not None and walked == walk and tail is not None
                if current and tail is not None:
                    # A piece holding more than expected leaves less for the rest. One holding
                    # less does not add to it: the rest's estimate falls by a piece each time, so
                    # the walk of a range open above ends even when the customers it expects are
                    # not there.
                    tail = replace(tail, rows=(tail.rows or 0) - max(0.0, count - (part.rows or 0)))
                bounded = part.lo is not None and part.hi is not None
                width = (part.hi or 0) - (part.lo or 0)
                if page is None or page.complete:
                    if results:
                        yield results
                    if bounded:
                        density.observe(width, count, part.rows if walked is not None else None)
                    continue
                pks = _valid_pks(results)
                if not pks:
                    raise UnexpectedResponse(
                        f"GET customers answered {len(results)} record(s) without a pk and a next "
                        "page: they cannot be read by pk ranges"
                    )
                density.page = max(density.page, len(results))
                if walked is not None and bounded:
                    density.observe(width, count, part.rows)
                if current and tail is not None:
                    pending.append(tail)  # the walk goes on after this piece's parts
                    tail = None
                pending.extend(reversed(split(part, pks, count, density)))


def _given(page: Page) -> Page | None:
    return page


def _in_window(record: Any, lo: dt.datetime | None, hi: dt.datetime) -> bool:
    stamp = parse_modified(record_modified(record))
    return stamp is None or ((lo is None or stamp >= lo) and stamp < hi)
