"""An Omnitron written apart from the sandbox: the standard library's HTTP server over SQLite.

It shares no code with ``sandbox/``; it implements the documented surface only
(``docs/omnitron-api.md``: login, the customer list with its ``pk``/``modified_date``/
``created_date`` filters, ``count``/``next``/``page``, the detail, PATCH) the way a Django REST
Framework server in Istanbul would, and differs from the sandbox's defaults wherever the API
promises nothing:

* the date filters are ``DateFilter``s, as Omnitron declares them: a datetime is refused
  with 400, and a bare date means midnight in the server's time zone (UTC+3);
* datetimes are rendered in that time zone (``...+03:00``), as DRF renders them under
  ``TIME_ZONE = "Europe/Istanbul"``;
* ``sort`` is ignored: results come in SQLite's rowid order, and an updated customer gets a new
  rowid, so it moves to the end, like a row in PostgreSQL's heap;
* ``limit`` is capped at 100, and fields come in alphabetical order, JSON with spaces.

A test drives it from its own thread: ``add``, ``edit``, ``delete`` and ``live``, and
``between_answers``, called after each list answer is built, changes customers while a sync
pages through them, as a live tenant does.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

ISTANBUL = dt.timezone(dt.timedelta(hours=3))
USERNAME, PASSWORD, KEY = "analyst", "s3cret-pass", "0123456789abcdef0123456789abcdef01234567"
MAX_LIMIT, DEFAULT_LIMIT = 100, 20
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DETAIL = re.compile(r"^/api/v1/customers/(\d+)/$")
_FILTERS = {"pk": "pk", "modified_date": "modified_us", "created_date": "created_us"}
_OPERATORS = {"": "=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
_WRITABLE = {
    "email",
    "first_name",
    "last_name",
    "phone_number",
    "is_active",
    "channel_code",
    "erp_code",
    "extra_field",
    "email_allowed",
    "sms_allowed",
    "call_allowed",
    "gender",
    "attributes",
    "user_type",
    "date_of_birth",
}


def _us(value: dt.datetime) -> int:
    return int(value.timestamp()) * 1_000_000 + value.microsecond


def _render(us: int | None) -> str | None:
    if us is None:
        return None
    moment = dt.datetime.fromtimestamp(us // 1_000_000, ISTANBUL).replace(
        microsecond=us % 1_000_000
    )
    return moment.isoformat()


class BadFilter(ValueError):
    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(errors)
        self.errors = errors


class IndependentOmnitron:
    """The server's data and its HTTP front, on a free port of 127.0.0.1."""

    def __init__(self, customers: int = 0, start: dt.datetime | None = None) -> None:
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self._db.execute(
            "create table customers (row integer primary key autoincrement, pk integer unique,"
            " modified_us integer, created_us integer, data text)"
        )
        self._lock = threading.RLock()
        self._next_pk = 1000
        self.patches: dict[int, int] = {}
        self.list_requests = 0
        self.between_answers: Callable[[IndependentOmnitron], None] | None = None
        first = start or dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
        for i in range(customers):
            self._insert(self._new_record(first + dt.timedelta(minutes=7 * i, microseconds=i)))
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}"
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._db.close()

    # -- what a test does to the tenant ---------------------------------------------------------
    def _new_record(self, created: dt.datetime) -> dict[str, Any]:
        self._next_pk += 3  # pks with gaps, as a table with deleted rows has
        pk = self._next_pk
        return {
            "pk": pk,
            "channel": 1 + pk % 2,
            "email": f"customer{pk}@example.com.tr",
            "first_name": f"Ad{pk}",
            "last_name": "Soyad",
            "phone_number": f"+90532{pk:07d}",
            "is_active": pk % 5 != 0,
            "channel_code": f"CC-{pk}",
            "erp_code": None if pk % 3 else f"ERP-{pk}",
            "extra_field": {"tier": pk % 4, "score": 10.10},
            "modified_us": _us(created),
            "created_us": _us(created),
            "date_joined": _render(_us(created)),
            "email_allowed": pk % 2 == 0,
            "sms_allowed": True,
            "call_allowed": False,
            "gender": ("male", "female", None)[pk % 3],
            "attributes": {"logged_ip": "127.0.0.1", "visits": pk % 11},
            "user_type": "registered",
            "date_of_birth": "1990-05-17" if pk % 4 else None,
            "attributes_kwargs": {},
            "localized_attributes": {},
            "localized_attributes_kwargs": {},
        }

    def _insert(self, record: dict[str, Any]) -> None:
        with self._lock:
            self._db.execute("delete from customers where pk = ?", (record["pk"],))
            self._db.execute(
                "insert into customers (pk, modified_us, created_us, data) values (?, ?, ?, ?)",
                (record["pk"], record["modified_us"], record["created_us"], json.dumps(record)),
            )

    def _record(self, pk: int) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("select data from customers where pk = ?", (pk,)).fetchone()
        return None if row is None else json.loads(row[0])

    def pks(self) -> list[int]:
        with self._lock:
            return [r[0] for r in self._db.execute("select pk from customers order by pk")]

    def add(self, count: int) -> list[int]:
        with self._lock:
            made = [self._new_record(dt.datetime.now(dt.UTC)) for _ in range(count)]
            for record in made:
                self._insert(record)
        return [r["pk"] for r in made]

    def edit(self, pks: list[int], **changes: Any) -> None:
        """A person's edit of each customer in ``pks``: a new ``modified_date`` (now)."""
        with self._lock:
            for pk in pks:
                record = self._record(pk)
                if record is None:
                    continue
                record.update(changes or {"last_name": f"Edited{record['modified_us'] % 97}"})
                record["modified_us"] = max(_us(dt.datetime.now(dt.UTC)), record["modified_us"] + 1)
                self._insert(record)

    def delete(self, pks: list[int]) -> None:
        with self._lock:
            self._db.executemany("delete from customers where pk = ?", [(pk,) for pk in pks])

    def live(self) -> list[dict[str, Any]]:
        """Every customer as the API renders it, by pk."""
        with self._lock:
            rows = self._db.execute("select data from customers order by pk").fetchall()
        return [self.rendered(json.loads(r[0])) for r in rows]

    def newest(self) -> dt.datetime:
        with self._lock:
            us = self._db.execute("select max(modified_us) from customers").fetchone()[0]
        return dt.datetime.fromtimestamp(us / 1_000_000, dt.UTC)

    @staticmethod
    def rendered(record: dict[str, Any]) -> dict[str, Any]:
        shown = {k: v for k, v in record.items() if k not in ("modified_us", "created_us")}
        shown["modified_date"] = _render(record["modified_us"])
        shown["created_date"] = _render(record["created_us"])
        return dict(sorted(shown.items()))

    # -- the API --------------------------------------------------------------------------------
    def where(self, params: list[tuple[str, str]]) -> tuple[str, list[Any]]:
        clauses, values, errors = [], [], {}
        for key, raw in params:
            field, _, lookup = key.partition("__")
            if field not in _FILTERS or lookup not in _OPERATORS:
                continue  # an unknown parameter is ignored, as django-filter does
            if field == "pk":
                if not re.fullmatch(r"-?\d+", raw):
                    errors[key] = ["Enter a number."]
                    continue
                value: int = int(raw)
            else:
                if not _DATE.match(raw):
                    errors[key] = ["Enter a valid date."]
                    continue
                day = dt.date.fromisoformat(raw)
                value = _us(dt.datetime(day.year, day.month, day.day, tzinfo=ISTANBUL))
            clauses.append(f"{_FILTERS[field]} {_OPERATORS[lookup]} ?")
            values.append(value)
        if errors:
            raise BadFilter(errors)
        return (" where " + " and ".join(clauses) if clauses else ""), values

    def list_page(self, url: str) -> tuple[int, dict[str, Any]]:
        parts = urlsplit(url)
        params = parse_qsl(parts.query, keep_blank_values=True)
        options = dict(params)
        try:
            where, values = self.where([(k, v) for k, v in params if k not in ("page", "limit")])
        except BadFilter as exc:
            return 400, exc.errors
        limit = DEFAULT_LIMIT
        if options.get("limit", "").isdigit() and int(options["limit"]) > 0:
            limit = min(int(options["limit"]), MAX_LIMIT)
        raw_page = options.get("page", "1")
        page = int(raw_page) if raw_page.isdigit() else 0
        with self._lock:
            self.list_requests += 1
            count = self._db.execute(f"select count(*) from customers{where}", values).fetchone()[0]
            pages = max(1, -(-count // limit))
            if page < 1 or page > pages:
                return 404, {"detail": "Invalid page."}
            rows = self._db.execute(
                f"select data from customers{where} order by row limit ? offset ?",
                [*values, limit, (page - 1) * limit],
            ).fetchall()
            body = {
                "count": count,
                "next": None
                if page == pages
                else f"{self.url}{parts.path}?{urlencode({**options, 'page': page + 1})}",
                "previous": None,
                "results": [self.rendered(json.loads(r[0])) for r in rows],
            }
        if self.between_answers is not None:
            self.between_answers(self)
        return 200, body

    def patch(self, pk: int, body: Any) -> tuple[int, dict[str, Any]]:
        with self._lock:
            record = self._record(pk)
            if record is None:
                return 404, {"detail": "Not found."}
            if not isinstance(body, dict):
                return 400, {"non_field_errors": ["Invalid data."]}
            if "channel" in body and body["channel"] != record["channel"]:
                return 406, {
                    "non_field_errors": "channel:channel_name These field cannot be updated",
                    "error_code": "customer_100_3",
                }
            record.update({k: v for k, v in body.items() if k in _WRITABLE})
            record["modified_us"] = max(_us(dt.datetime.now(dt.UTC)), record["modified_us"] + 1)
            self._insert(record)
            self.patches[pk] = self.patches.get(pk, 0) + 1
            return 200, self.rendered(record)


def _handler(server: IndependentOmnitron) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def answer(self, status: int, body: Any) -> None:
            blob = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(blob)))
            self.end_headers()
            self.wfile.write(blob)

        def body(self) -> Any:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            return json.loads(raw) if raw else {}

        def allowed(self) -> bool:
            if self.headers.get("Authorization") == f"Token {KEY}":
                return True
            self.answer(401, {"detail": "Authentication credentials were not provided."})
            return False

        def do_POST(self) -> None:
            body = self.body()
            if self.path != "/api/v1/auth/login/":
                self.answer(405, {"detail": 'Method "POST" not allowed.'})
            elif body.get("username") == USERNAME and body.get("password") == PASSWORD:
                self.answer(200, {"key": KEY})
            else:
                self.answer(
                    400, {"non_field_errors": ["Unable to log in with provided credentials."]}
                )

        def do_GET(self) -> None:
            if not self.allowed():
                return
            path = urlsplit(self.path).path
            if path == "/api/v1/customers/":
                self.answer(*server.list_page(self.path))
            elif detail := _DETAIL.match(path):
                record = server._record(int(detail[1]))
                if record is None:
                    self.answer(404, {"detail": "Not found."})
                else:
                    self.answer(200, server.rendered(record))
            else:
                self.answer(404, {"detail": "Not found."})

        def do_PATCH(self) -> None:
            body = self.body()
            if not self.allowed():
                return
            detail = _DETAIL.match(urlsplit(self.path).path)
            if detail is None:
                self.answer(404, {"detail": "Not found."})
            else:
                self.answer(*server.patch(int(detail[1]), body))

    return Handler


@contextmanager
def independent_omnitron(customers: int) -> Iterator[IndependentOmnitron]:
    server = IndependentOmnitron(customers)
    try:
        yield server
    finally:
        server.close()
