"""Planning a run: the upper bound, and windows sized from the API's counts.

A window larger than ``target_rows`` customers is split in two by time until each half is small
enough (or, on date-only servers, one day long). Counting costs one request per window, and each
window is then extracted, written and committed on its own, so a failed backfill resumes where it
stopped.
"""

from __future__ import annotations

import datetime as dt
import logging

from omnisync.client import CustomerQuery, OmnitronClient
from omnisync.sync.extraction import server_bounds

log = logging.getLogger("omnisync.sync")
DAY = dt.timedelta(days=1)
MIN_WINDOW = dt.timedelta(seconds=1)


def earliest_modified(
    client: OmnitronClient, hi: dt.datetime, datetimes: bool
) -> dt.datetime | None:
    """The oldest modified_date below ``hi`` (None when there is no customer)."""
    _, lt = server_bounds(None, hi, datetimes)
    pages = client.list_customers(CustomerQuery(modified_lt=lt, sort="modified_date"), page_size=1)
    page = next(pages, None)
    if page is None or not page.results:
        return None
    value = page.results[0].get("modified_date")
    try:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def _floor_day(moment: dt.datetime) -> dt.datetime:
    return dt.datetime(moment.year, moment.month, moment.day, tzinfo=dt.UTC)


def plan_windows(
    client: OmnitronClient,
    lo: dt.datetime | None,
    hi: dt.datetime,
    datetimes: bool,
    target_rows: int,
) -> list[tuple[dt.datetime | None, dt.datetime]]:
    """Windows covering ``[lo, hi)`` with at most about ``target_rows`` customers each."""
    start = lo if lo is not None else earliest_modified(client, hi, datetimes)
    if start is None:
        return [(lo, hi)]
    if not datetimes:
        start = _floor_day(start)
    pending: list[tuple[dt.datetime, dt.datetime]] = [(start, hi)]
    done: list[tuple[dt.datetime | None, dt.datetime]] = []
    while pending:
        a, b = pending.pop()
        gte, lt = server_bounds(a, b, datetimes)
        count = client.count_customers(CustomerQuery(modified_gte=gte, modified_lt=lt))
        span = b - a
        splittable = span > (DAY if not datetimes else MIN_WINDOW)
        if count > target_rows and splittable:
            middle = a + span / 2
            if not datetimes:
                middle = max(_floor_day(middle), a + DAY)
            pending.extend([(middle, b), (a, middle)])
        else:
            done.append((a, b))
    done.sort(key=lambda w: w[1])
    if lo is None and done:
        done[0] = (None, done[0][1])  # the first window of a full read is open below
    log.info("planned %d window(s) for [%s, %s)", len(done), lo, hi)
    return done
