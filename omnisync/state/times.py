"""Moments as the state tables keep them: integer microseconds since the epoch (UTC), exact and
sortable on every database, with an ISO form beside them for people reading the tables."""

from __future__ import annotations

import datetime as dt

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def now_us() -> int:
    moment = dt.datetime.now(dt.UTC)
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def to_us(moment: dt.datetime) -> int:
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(us: int) -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=us)


def iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")
