"""Extracting one window of customers without losing a change (G1).

For a window ``[lo, hi)`` of ``modified_date``, the client asks for
``modified_date__gte=lo & modified_date__lt=hi & sort=pk & pk__gt=<last pk seen>`` page after
page (keyset pagination on the primary key), and keeps the rows whose ``modified_date`` is really
in ``[lo, hi)``. Why this cannot lose a change:

* **Ties and random tie order.** The keyset is ``pk``, which is unique: however many customers
  share one ``modified_date`` and however the server orders them, each pk is read exactly once.
* **Live writers.** Offset pagination skips a row whenever an earlier row leaves the result set;
  a pk keyset never does. A row modified during the run leaves the window because its new
  ``modified_date`` is later than ``hi`` (``hi`` is fixed at the start of the run, ``lag`` before
  the server's clock), and that new version is read by the next run. A row created during the run
  likewise has a ``modified_date`` after ``hi``.
* **Late commits.** A row whose commit becomes visible up to ``lag`` seconds after its
  ``modified_date`` is visible before this run's ``hi`` passes it; later ones are re-read by the
  next run's ``lookback`` (the next window starts ``lookback`` before the watermark).
* **A capped ``limit``** changes nothing: the keyset follows the last pk actually received.
* **Date-only servers** get date bounds that contain the window (``lo``'s day to the day after
  ``hi``), and the exact bounds are applied here.

Memory: one page at a time (the caller groups pages into chunks).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from omnisync.client import CustomerQuery, OmnitronClient


def server_bounds(
    lo: dt.datetime | None, hi: dt.datetime, datetimes: bool
) -> tuple[dt.date | dt.datetime | None, dt.date | dt.datetime]:
    """The filter bounds to send: exact datetimes, or whole days that contain ``[lo, hi)``."""
    if datetimes:
        return lo, hi
    upper_day = (hi - dt.timedelta(microseconds=1)).date() + dt.timedelta(days=1)
    return (None if lo is None else lo.date()), upper_day


def parse_modified(value: Any) -> dt.datetime | None:
    """A record's modified_date as an aware datetime, or None if it is not one (quarantine)."""
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def extract_window(
    client: OmnitronClient,
    lo: dt.datetime | None,
    hi: dt.datetime,
    datetimes: bool,
    page_size: int | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """Pages of the customers with ``lo <= modified_date < hi`` (records whose modified_date
    cannot be read are passed through, so that the transform quarantines them)."""
    gte, lt = server_bounds(lo, hi, datetimes)
    last_pk: int | None = None
    while True:
        query = CustomerQuery(modified_gte=gte, modified_lt=lt, sort="pk", pk_gt=last_pk)
        pages = client.list_customers(query, page_size=page_size)
        page = next(pages, None)
        if page is None or not page.results:
            return
        rows = []
        for record in page.results:
            stamp = (
                parse_modified(record.get("modified_date")) if isinstance(record, dict) else None
            )
            if stamp is None or ((lo is None or stamp >= lo) and stamp < hi):
                rows.append(record)
        pks = [
            r["pk"] for r in page.results if isinstance(r, dict) and isinstance(r.get("pk"), int)
        ]
        if rows:
            yield rows
        if not page.has_next or not pks:
            return
        last_pk = max(pks)
