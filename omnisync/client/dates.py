"""Dates in Omnitron's filters and records: what a date-only server is sent so that a window is
inside what it answers whatever its time zone, and a record's ``modified_date`` as an instant."""

from __future__ import annotations

import datetime as dt
from typing import Any

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
