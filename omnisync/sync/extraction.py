"""Extracting one window of customers without losing a change (G1).

A window is ``[lo, hi)`` of ``modified_date``. The server is asked only with what the document
lists (``modified_date`` and ``pk`` range filters, ``count``, ``next``) and the rows are kept
whose ``modified_date`` is really in ``[lo, hi)``. ``sort=pk`` is sent, but never trusted. Why
this cannot lose a change:

* **Ranges, not pages.** The window is read as ``pk`` ranges, each asked for on its own first page
  (``pk__gte=a & pk__lt=b``). A range whose answer has no ``next`` (and a ``count`` equal to the
  rows received) was read whole. A range that does not fit one page is split, so no page number
  is ever followed: rows leaving the filter while we read cannot shift a page under us, and
  ``"Invalid page."`` cannot happen.
* **``sort`` is checked, not assumed.** When a page comes back in ascending ``pk`` order, the
  server seems to honour the sort: the range is continued after the page's last pk (one request
  per page, as keyset pagination). That claim is verified by the next answer's ``count``: it must
  be the range's count less the rows received. When it is not (a server that ignores ``sort`` but
  happened to answer one page in order, or rows that left the window meanwhile) the skipped
  prefix is read again as a range of its own. When a page is not in ``pk`` order, the server
  ignores the sort: the range is split at the received pks' quantiles until every part fits one
  page, where order does not matter; the client remembers it and splits from then on.
* **A capped or ignored ``limit``** changes nothing: the page size that matters is the number of
  rows received, and every decision above uses only that and ``count``.
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

Memory: one page at a time, the pending pk ranges, and the records of the page whose order
claim is still to be verified (a prefix read again yields none of them twice): a page, not the
window. Keeping the key of every record yielded in the window instead cost about 5% of a full
sync's CPU (200k customers: 9.5-9.8 against 9.0-9.3 CPU-s). The caller groups pages into chunks.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from omnisync.client import CustomerQuery, OmnitronClient, Page, UnexpectedResponse

log = logging.getLogger("omnisync.sync")
DAY = dt.timedelta(days=1)
# Time zones span UTC-12 to UTC+14: a bare date D is an instant between D 00:00Z - 14 h and
# D 00:00Z + 12 h, depending on the server's TIME_ZONE.
WEST = dt.timedelta(hours=12)
EAST = dt.timedelta(hours=14)


def _floor_day(moment: dt.datetime) -> dt.date:
    return moment.astimezone(dt.UTC).date()


def _ceil_day(moment: dt.datetime) -> dt.date:
    moment = moment.astimezone(dt.UTC)
    day = moment.date()
    return day if moment == dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC) else day + DAY


def server_bounds(
    lo: dt.datetime | None, hi: dt.datetime, datetimes: bool
) -> tuple[dt.date | dt.datetime | None, dt.date | dt.datetime]:
    """The filter bounds to send: exact datetimes, or dates that contain ``[lo, hi)`` in any
    server time zone (``gte`` the day of ``lo - 12 h``, ``lt`` the day after ``hi + 14 h``)."""
    if datetimes:
        return lo, hi
    return (None if lo is None else _floor_day(lo - WEST)), _ceil_day(hi + EAST)


def parse_modified(value: Any) -> dt.datetime | None:
    """A record's modified_date as an aware datetime, or None if it is not one (quarantine)."""
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


@dataclass(frozen=True)
class PkRange:
    """``lo <= pk < hi`` (None: open). ``expect`` and ``prefix`` carry a claim to verify: the
    range's count should be ``expect``, or else ``prefix`` was not read whole. A range whose
    order claim failed is ``split_only``: it is split, never continued, so it always shrinks.
    ``yielded``: the records of a prefix already yielded, which reading it again must skip."""

    lo: int | None
    hi: int | None
    expect: int | None = None
    prefix: PkRange | None = None
    split_only: bool = False
    yielded: tuple[Any, ...] = ()


def _valid_pks(records: list[Any]) -> list[int]:
    return [
        r["pk"]
        for r in records
        if isinstance(r, dict) and isinstance(r.get("pk"), int) and not isinstance(r["pk"], bool)
    ]


def split_points(pks: list[int], lo: int | None, count: int, received: int) -> list[int]:
    """Where to cut a range that did not fit one page: quantiles of the pks received, so that
    each part holds about half a page (the received pks are a sample of the range)."""
    sample = sorted({pk for pk in pks if lo is None or pk > lo})
    if not sample:
        return [(lo if lo is not None else 0) + 1]
    parts = min(len(sample), max(2, math.ceil(2 * count / max(received, 1))))
    step = len(sample) / parts
    cuts = sorted({sample[min(len(sample) - 1, int(i * step))] for i in range(1, parts)})
    return cuts or [sample[-1]]


def _is_ascending(pks: list[int]) -> bool:
    return all(a < b for a, b in itertools.pairwise(pks))


def first_range_query(lo: dt.datetime | None, hi: dt.datetime, datetimes: bool) -> CustomerQuery:
    """What :func:`extract_window` asks first for ``[lo, hi)`` (its whole pk range)."""
    gte, lt = server_bounds(lo, hi, datetimes)
    return CustomerQuery(modified_gte=gte, modified_lt=lt, sort="pk")


def extract_window(
    client: OmnitronClient,
    lo: dt.datetime | None,
    hi: dt.datetime,
    datetimes: bool,
    page_size: int | None = None,
    first_page: Page | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """Pages of the customers with ``lo <= modified_date < hi`` (records whose modified_date
    cannot be read are passed through, so that the transform quarantines them).

    ``first_page`` is an answer already received to :func:`first_range_query` (planning asks it),
    used instead of asking again. A version is yielded once; a customer changed while its range
    was read again may be yielded in both versions: callers keep one row per version, as they
    must anyway for lookback overlaps.
    """
    base = first_range_query(lo, hi, datetimes)
    pending = [PkRange(None, None)]
    given = first_page
    while pending:
        part = pending.pop()
        page: Page | None
        if given is not None and part == PkRange(None, None):
            page, given = given, None
        else:
            page = next(
                client.list_customers(base.with_(pk_gte=part.lo, pk_lt=part.hi), page_size), None
            )
        results = [] if page is None else page.results
        count = 0 if page is None else page.count
        if part.expect is not None and part.prefix is not None and count != part.expect:
            # Rows before this range were claimed read in order; the count says otherwise.
            pending.append(replace(part.prefix, split_only=True))
        complete = page is None or (not page.has_next and count <= len(results))
        pks = _valid_pks(results)
        ordered = (
            not part.split_only
            and client.sort_honoured is not False
            and bool(pks)
            and _is_ascending(pks)
        )
        rows: list[Any] = []
        if complete or ordered:
            rows = _new_rows(results, lo, hi, part.yielded)
            if rows:
                yield rows
        if complete:
            continue
        if not pks:
            raise UnexpectedResponse(
                f"GET customers answered {len(results)} record(s) without a pk and a next page: "
                "they cannot be read by pk ranges"
            )
        if ordered:
            last = pks[-1]
            prefix = PkRange(part.lo, last + 1, yielded=tuple(rows))
            pending.append(PkRange(last + 1, part.hi, count - len(results), prefix))
            continue
        if client.sort_honoured is not False and not part.split_only:
            log.warning(
                "%s does not order customers by pk: reading by pk ranges instead",
                client.base_url,
            )
            client.sort_honoured = False
        # Every row of this page is read again by one of the parts: nothing is yielded here.
        bounds = [part.lo, *split_points(pks, part.lo, count, len(results)), part.hi]
        pending.extend(
            PkRange(a, b, split_only=part.split_only, yielded=part.yielded)
            for a, b in itertools.pairwise(bounds)
        )


def _new_rows(
    records: list[Any], lo: dt.datetime | None, hi: dt.datetime, yielded: tuple[Any, ...]
) -> list[Any]:
    """The records in ``[lo, hi)`` whose version is not among ``yielded`` (a prefix read
    again), and the records whose pk or modified_date cannot be read (for quarantine)."""
    rows = [record for record in records if _in_window(record, lo, hi)]
    if not yielded:
        return rows
    before = {_version(record) for record in yielded} - {None}
    return [record for record in rows if _version(record) not in before]


def _version(record: Any) -> tuple[int, str] | None:
    """A record's (pk, modified_date as sent), or None if it has no pk to tell it by."""
    pk = record.get("pk") if isinstance(record, dict) else None
    return (pk, str(record.get("modified_date"))) if isinstance(pk, int) else None


def _in_window(record: Any, lo: dt.datetime | None, hi: dt.datetime) -> bool:
    stamp = parse_modified(record.get("modified_date")) if isinstance(record, dict) else None
    return stamp is None or ((lo is None or stamp >= lo) and stamp < hi)
