"""An in-process Omnitron list endpoint for property tests of the paginator and planning.

It implements only what Omnitron's API promises (docs/omnitron-api.md: ``modified_date`` and
``pk`` range filters, ``count``, ``next``, ``page``) and lets every undocumented behaviour vary: the order of results
(``sort`` honoured, ignored, random per request, or PostgreSQL's heap order, where an updated
row moves to the end), a cap on ``limit``, and the time zone in which a date-only server reads a
bare date. It can also create, update and delete customers after each answer, as a live tenant
does while a sync reads, and records every version each customer had meanwhile. The sandbox has the same modes over real HTTP; this one is fast enough for hypothesis to
try thousands of servers.
"""

from __future__ import annotations

import datetime as dt
import random
import re
import threading
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlencode

import httpx
import orjson
from hypothesis import strategies as st
from pydantic import SecretStr

from omnisync.client import OmnitronClient, Throttle

Order = Literal["pk", "newest-first", "pk-descending", "random", "heap"]
Change = tuple[Literal["create", "update", "delete"], int, dt.datetime]
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DETAIL = re.compile(r"/customers/(\d+)/$")

BASE = dt.datetime(2024, 3, 9, 20, 0, tzinfo=dt.UTC)


offsets = st.sampled_from([-12.0, -5.0, 0.0, 3.0, 5.5, 14.0])


@st.composite
def customers(draw: st.DrawFn) -> dict[int, dt.datetime]:
    """Customers over three days, many sharing one modified_date (bulk updates)."""
    pks = draw(st.sets(st.integers(1, 5000), min_size=0, max_size=120))
    shared = BASE + dt.timedelta(minutes=draw(st.integers(0, 3000)))
    rows = {}
    for pk in sorted(pks):
        if draw(st.booleans()):
            rows[pk] = shared
        else:
            rows[pk] = BASE + dt.timedelta(seconds=draw(st.integers(0, 3 * 86_400)))
    return rows


@dataclass
class FakeOmnitron:
    rows: dict[int, dt.datetime]
    order: Order = "pk"
    cap: int = 1000
    date_only: bool = False
    utc_offset_hours: float = 0.0
    seed: int = 0
    # Customers created after each list answer, stamped ``created_at`` (their pks are drawn from
    # ``created_pks`` in turn, or follow the greatest pk: assignment order is not documented).
    creates_per_answer: int = 0
    creates_at_most: int = 1_000_000
    created_at: dt.datetime | None = None
    created_pks: list[int] = field(default_factory=list)
    # Changes made after each list answer, ``changes_per_answer`` at a time, in order: an update
    # moves the row to the end (heap order), like PostgreSQL's new tuple.
    changes: list[Change] = field(default_factory=list)
    changes_per_answer: int = 1
    requests: list[dict[str, str]] = field(default_factory=list)
    # Every modified_date each customer had while the fake ran, and who was deleted or created.
    history: dict[int, set[dt.datetime]] = field(default_factory=dict)
    deleted: set[int] = field(default_factory=set)
    created: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()
        self.history = {pk: {stamp} for pk, stamp in self.rows.items()}

    def _instant(self, raw: str) -> dt.datetime | None:
        if _DATE.match(raw):
            day = dt.date.fromisoformat(raw)
            midnight = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
            return midnight - dt.timedelta(hours=self.utc_offset_hours)
        if self.date_only:
            return None
        return dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))

    def handle(self, request: httpx.Request) -> httpx.Response:
        # One request at a time, each answered as of one moment, as a database answers a
        # query: a paginator with requests in flight sends them from several threads.
        with self._lock:
            return self._handle(request)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        self.requests.append(params)
        if detail := _DETAIL.search(request.url.path):
            pk = int(detail[1])
            if pk not in self.rows:
                return httpx.Response(404, json={"detail": "Not found."})
            stamp = self.rows[pk].isoformat().replace("+00:00", "Z")
            return httpx.Response(200, json={"pk": pk, "modified_date": stamp})
        bounds = {}
        for key in ("modified_date__gte", "modified_date__lt"):
            if key in params:
                instant = self._instant(params[key])
                if instant is None:
                    return httpx.Response(400, json={key: ["Enter a valid date."]})
                bounds[key] = instant
        matched = [
            (pk, stamp)
            for pk, stamp in self.rows.items()
            if ("modified_date__gte" not in bounds or stamp >= bounds["modified_date__gte"])
            and ("modified_date__lt" not in bounds or stamp < bounds["modified_date__lt"])
            and ("pk__gte" not in params or pk >= int(params["pk__gte"]))
            and ("pk__gt" not in params or pk > int(params["pk__gt"]))
            and ("pk__lt" not in params or pk < int(params["pk__lt"]))
        ]
        if self.order == "pk" and params.get("sort") == "pk":
            matched.sort()
        elif self.order == "newest-first" or (self.order == "pk" and "sort" not in params):
            matched.sort(key=lambda row: (row[1], row[0]), reverse=True)
        elif self.order == "pk-descending":
            matched.sort(reverse=True)
        elif self.order == "heap":
            pass  # insertion order of ``rows``: an updated row is inserted again, at the end
        else:
            self._rng.shuffle(matched)
        limit = min(int(params.get("limit", 20)), self.cap)
        page = int(params.get("page", 1))
        pages = max(1, -(-len(matched) // limit))
        if page > pages:
            return httpx.Response(404, json={"detail": "Invalid page."})
        chunk = matched[(page - 1) * limit : page * limit]
        next_url = (
            f"https://omnitron.test/api/v1/customers/?{urlencode({**params, 'page': page + 1})}"
            if page < pages
            else None
        )
        body = {
            "count": len(matched),
            "next": next_url,
            "previous": None,
            "results": [
                {"pk": pk, "modified_date": stamp.isoformat().replace("+00:00", "Z")}
                for pk, stamp in chunk
            ],
        }
        self._create()
        self._change()
        return httpx.Response(200, content=orjson.dumps(body))

    def _change(self) -> None:
        for kind, pk, stamp in self.changes[: self.changes_per_answer]:
            if kind == "create" and pk not in self.rows and pk not in self.history:
                self.created.add(pk)
                self.rows[pk] = stamp
            elif kind == "update" and pk in self.rows:
                del self.rows[pk]
                self.rows[pk] = stamp
            elif kind == "delete" and pk in self.rows:
                self.deleted.add(pk)
                del self.rows[pk]
                continue
            else:
                continue
            self.history.setdefault(pk, set()).add(stamp)
        del self.changes[: self.changes_per_answer]

    def _create(self) -> None:
        for _ in range(min(self.creates_per_answer, self.creates_at_most)):
            self.creates_at_most -= 1
            stamp = self.created_at or max(self.rows.values(), default=dt.datetime.now(dt.UTC))
            free = [pk for pk in self.created_pks if pk not in self.rows]
            pk = free[0] if free else max(self.rows, default=0) + 1
            self.rows[pk] = stamp
            self.created.add(pk)
            self.history.setdefault(pk, set()).add(stamp)

    def client(self, page_size: int = 1000) -> OmnitronClient:
        return OmnitronClient(
            "https://omnitron.test",
            token=SecretStr("fake"),
            page_size=page_size,
            transport=httpx.MockTransport(self.handle),
            throttle=Throttle(1_000_000, 8),
        )
