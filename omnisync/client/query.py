"""Typed filters for listing customers: modified_date and pk ranges, sort, and any other filter.

Date filters render a ``datetime`` as ISO 8601 in UTC (``2024-05-01T10:00:00.5Z``) and a ``date``
as ``YYYY-MM-DD``. Servers that accept only dates (docs/omnitron-api.md) answer 400 to the
former; the client detects that (``OmnitronClient.datetime_filters_supported``) so that callers
can ask with dates and filter the rest themselves.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace

DateOrTime = dt.date | dt.datetime
#: where customers are listed, and each one read or written (``<pk>/``)
CUSTOMERS_PATH = "/api/v1/customers/"


def format_filter_value(value: DateOrTime | int | str | bool) -> str:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: give a timezone (UTC)")
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class CustomerQuery:
    """What to list. Bounds are ``gte`` (inclusive) and ``lt`` (exclusive), as the sync needs."""

    modified_gte: DateOrTime | None = None
    modified_lt: DateOrTime | None = None
    pk_gt: int | None = None
    pk_gte: int | None = None
    pk_lt: int | None = None
    sort: str | None = "pk"
    filters: dict[str, str | int | bool] = field(default_factory=dict)

    def with_(self, **changes: object) -> CustomerQuery:
        return replace(self, **changes)  # type: ignore[arg-type]

    def to_params(self) -> dict[str, str]:
        params: dict[str, str] = {}
        pairs: list[tuple[str, DateOrTime | int | str | bool | None]] = [
            ("modified_date__gte", self.modified_gte),
            ("modified_date__lt", self.modified_lt),
            ("pk__gt", self.pk_gt),
            ("pk__gte", self.pk_gte),
            ("pk__lt", self.pk_lt),
            ("sort", self.sort),
            *self.filters.items(),
        ]
        for key, value in pairs:
            if value is not None:
                params[key] = format_filter_value(value)
        return params
