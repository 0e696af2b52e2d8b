"""django-filter style filters and ``sort``, parsed into index ranges and row predicates
(answered by ``sandbox/listing.py``).

Filters follow the API's documented filter list (docs/omnitron-api.md). Parameters it does not
list are ignored, as django-filter ignores them. Semantics worth knowing:

* ``created_date`` and ``modified_date`` are DateFilters on datetime fields. A bare date means
  midnight in the server's time zone (``utc_offset_hours``, UTC by default), as Django does with
  ``USE_TZ``: at UTC+3, ``modified_date__lte=2024-01-05`` is ``<= 2024-01-04T21:00:00Z``;
  ``__date`` compares the calendar day there. In ``date_only_filters`` mode a datetime value
  answers 400 ``"Enter a valid date."``, as some Omnitron deployments do.
* ``first_name``, ``last_name``, ``phone_number``, ``channel_code`` and ``erp_code`` are
  CharFilterWithNull: the value ``null`` matches a null.
* ``attributes`` and ``extra_field`` take a JSON object and match records containing those pairs.
* ``channel`` may repeat (``channel=1&channel=2``).
* ``sort=<field>`` or ``sort=-<field>`` on any field; ties are broken by pk unless the
  ``shuffle_ties`` mode is on, when they come back in a new random order on every request. The
  document lists no ``sort``: in ``ignore_sort`` mode it is ignored and results come newest first
  (``-modified_date``), as a server with another default ordering would answer.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from sandbox.records import CHANNELS, GENDERS, USER_TYPES, Customer, to_us

Predicate = Callable[[Customer], bool]
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TRUE = {"true", "True", "1"}
_FALSE = {"false", "False", "0"}
NUMBER_LOOKUPS = ("exact", "gt", "gte", "lt", "lte")
DATE_LOOKUPS = ("exact", "gt", "gte", "lt", "lte", "date")
FILTER_KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "created_date": ("datefilter", DATE_LOOKUPS),
    "modified_date": ("datefilter", DATE_LOOKUPS),
    "attributes": ("json", ("exact",)),
    "extra_field": ("json", ("exact",)),
    "channel": ("channel", ("exact",)),
    "email": ("char", ("exact", "startswith")),
    "first_name": ("charnull", ("exact",)),
    "last_name": ("charnull", ("exact",)),
    "phone_number": ("charnull", ("exact",)),
    "channel_code": ("charnull", ("exact",)),
    "erp_code": ("charnull", ("exact",)),
    "is_active": ("bool", ("exact",)),
    "email_allowed": ("bool", ("exact",)),
    "sms_allowed": ("bool", ("exact",)),
    "call_allowed": ("bool", ("exact",)),
    "date_joined": ("isodatetime", ("exact",)),
    "gender": ("choice", ("exact",)),
    "user_type": ("choice", ("exact",)),
    "date_of_birth": ("date", ("exact",)),
    "id": ("number", NUMBER_LOOKUPS),
    "pk": ("number", NUMBER_LOOKUPS),
}
CHOICES = {"gender": GENDERS, "user_type": USER_TYPES}


class FilterError(Exception):
    """A filter value django-filter would reject: answered as 400 with ``errors``."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(errors)
        self.errors = errors


@dataclass
class Query:
    predicates: list[Predicate] = field(default_factory=list)
    modified_lo: int | None = None  # inclusive, microseconds
    modified_hi: int | None = None  # exclusive
    pk_lo: int | None = None
    pk_hi: int | None = None
    created_lo: int | None = None
    created_hi: int | None = None
    sort: str | None = None

    def narrow_modified(self, lo: int | None, hi: int | None) -> None:
        if lo is not None:
            self.modified_lo = lo if self.modified_lo is None else max(self.modified_lo, lo)
        if hi is not None:
            self.modified_hi = hi if self.modified_hi is None else min(self.modified_hi, hi)

    def narrow_created(self, lo: int | None, hi: int | None) -> None:
        if lo is not None:
            self.created_lo = lo if self.created_lo is None else max(self.created_lo, lo)
        if hi is not None:
            self.created_hi = hi if self.created_hi is None else min(self.created_hi, hi)

    def narrow_pk(self, lo: int | None, hi: int | None) -> None:
        if lo is not None:
            self.pk_lo = lo if self.pk_lo is None else max(self.pk_lo, lo)
        if hi is not None:
            self.pk_hi = hi if self.pk_hi is None else min(self.pk_hi, hi)


def _parse_filter_datetime(
    raw: str, date_only: bool, lookup: str, offset_us: int = 0
) -> tuple[int, bool]:
    """Microseconds of a DateFilter value, and whether it was a bare date (midnight in the
    server's time zone, ``offset_us`` east of UTC)."""
    if _DATE_RE.match(raw):
        try:
            day = dt.date.fromisoformat(raw)
        except ValueError:
            raise ValueError("Enter a valid date.") from None
        return to_us(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)) - offset_us, True
    if date_only or lookup == "date":
        raise ValueError("Enter a valid date.")
    try:
        value = dt.datetime.fromisoformat(raw.replace(" ", "+").replace("Z", "+00:00"))
    except ValueError:
        raise ValueError("Enter a valid date.") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return to_us(value), False


_DAY_US = 86_400_000_000


def _equals(name: str, wanted: Any) -> Predicate:
    return lambda c: bool(c.data[name] == wanted)


def _is(name: str, wanted: bool) -> Predicate:
    return lambda c: c.data[name] is wanted


def _startswith(name: str, prefix: str) -> Predicate:
    return lambda c: str(c.data[name] or "").startswith(prefix)


def _contains(name: str, wanted: dict[str, Any]) -> Predicate:
    return lambda c: all(c.data[name].get(k) == v for k, v in wanted.items())


def _same_instant(name: str, us: int) -> Predicate:
    def check(c: Customer) -> bool:
        raw = c.data[name]
        return raw is not None and _parse_filter_datetime(raw, False, "exact")[0] == us

    return check


def _channel_in(wanted: set[int]) -> Predicate:
    return lambda c: c.data["channel"] in wanted


def _datefilter(
    query: Query, name: str, lookup: str, raw: str, date_only: bool, offset_us: int
) -> None:
    us, _ = _parse_filter_datetime(raw, date_only, lookup, offset_us)
    bounds = {
        "exact": (us, us + 1),
        "gt": (us + 1, None),
        "gte": (us, None),
        "lt": (None, us),
        "lte": (None, us + 1),
        "date": (us, us + _DAY_US),
    }[lookup]
    lo, hi = bounds
    if name == "modified_date":
        query.narrow_modified(lo, hi)
    else:
        query.narrow_created(lo, hi)


def _number(query: Query, lookup: str, raw: str) -> None:
    try:
        value = int(raw) if "." not in raw else int(float(raw))
    except ValueError:
        raise ValueError("Enter a number.") from None
    lo, hi = {
        "exact": (value, value + 1),
        "gt": (value + 1, None),
        "gte": (value, None),
        "lt": (None, value),
        "lte": (None, value + 1),
    }[lookup]
    query.narrow_pk(lo, hi)


def _json_object(raw: str) -> dict[str, Any]:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ValueError("Enter a valid JSON.") from None
    if not isinstance(value, dict):
        raise ValueError("Enter a valid JSON.")
    return value


def parse_query(
    params: Sequence[tuple[str, str]],
    date_only: bool,
    utc_offset_hours: float = 0.0,
    ignore_sort: bool = False,
) -> Query:
    """Turn query parameters into predicates and index ranges. Raises FilterError (400)."""
    query = Query(sort="-modified_date" if ignore_sort else None)
    offset_us = int(utc_offset_hours * 3_600_000_000)
    errors: dict[str, list[str]] = {}
    channels: list[str] = []
    for key, raw in params:
        if key == "sort":
            if not ignore_sort:
                query.sort = raw or None
            continue
        name, _, lookup = key.partition("__")
        lookup = lookup or "exact"
        spec = FILTER_KINDS.get(name)
        if spec is None or lookup not in spec[1] or raw == "":
            continue
        kind = spec[0]
        try:
            if kind == "datefilter":
                _datefilter(query, name, lookup, raw, date_only, offset_us)
            elif kind == "number":
                _number(query, lookup, raw)
            elif kind == "channel":
                channels.append(raw)
            elif kind == "char":
                if lookup == "startswith":
                    query.predicates.append(_startswith(name, raw))
                else:
                    query.predicates.append(_equals(name, raw))
            elif kind == "charnull":
                want = None if raw == "null" else raw
                query.predicates.append(_equals(name, want))
            elif kind == "bool":
                if raw in _TRUE or raw in _FALSE:
                    flag = raw in _TRUE
                    query.predicates.append(_is(name, flag))
            elif kind == "choice":
                if raw not in CHOICES[name]:
                    raise ValueError(
                        f"Select a valid choice. {raw} is not one of the available choices."
                    )
                query.predicates.append(_equals(name, raw))
            elif kind == "date":
                if not _DATE_RE.match(raw):
                    raise ValueError("Enter a valid date.")
                query.predicates.append(_equals(name, raw))
            elif kind == "isodatetime":
                us, _ = _parse_filter_datetime(raw, False, "exact")
                query.predicates.append(_same_instant(name, us))
            elif kind == "json":
                wanted = _json_object(raw)
                query.predicates.append(_contains(name, wanted))
        except ValueError as exc:
            errors.setdefault(key, []).append(str(exc))
    if channels:
        try:
            wanted_channels = {int(v) for v in channels}
            unknown = sorted(wanted_channels - set(CHANNELS))
            if unknown:
                raise ValueError(
                    f"Select a valid choice. {unknown[0]} is not one of the available choices."
                )
        except ValueError as exc:
            message = str(exc)
            if not message.startswith("Select"):
                message = (
                    f"Select a valid choice. {channels[0]} is not one of the available choices."
                )
            errors.setdefault("channel", []).append(message)
        else:
            query.predicates.append(_channel_in(wanted_channels))
    if errors:
        raise FilterError(errors)
    return query
