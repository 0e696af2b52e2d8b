"""The sandbox's FastAPI app: the Customers API, token auth, and the ``/_sandbox/`` admin API.

Handlers are ``async`` and never await on the hot path, so the store is only touched from the event
loop and needs no lock. Response bodies are assembled from each customer's pre-encoded JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import email.utils
import random
import re
import secrets
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from sandbox import writers
from sandbox.faults import FaultInjector, FaultMiddleware, LostAnswer
from sandbox.listing import run_query
from sandbox.modes import ALL_FAULTS, ALL_LOST_ANSWERS, SandboxModes
from sandbox.queries import FilterError, parse_query
from sandbox.records import Customer, now_us
from sandbox.seed import seed_customers
from sandbox.serializer import (
    DEFAULTS,
    REQUIRED_ON_CREATE,
    REQUIRED_ON_PUT,
    ValidationFailed,
    validate,
)
from sandbox.store import Store

CHANNEL_CHANGE_BODY = {
    "non_field_errors": "channel:channel_name These field cannot be updated",
    "error_code": "customer_100_3",
}
UNIQUE_ERROR = {"non_field_errors": ["The fields channel, channel_code must make a unique set."]}


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )


class SandboxState:
    """Everything the running sandbox holds: the store, the modes, tokens and counters."""

    def __init__(
        self,
        customers: int,
        seed: int,
        modes: SandboxModes,
        users: dict[str, str],
        static_token: str | None,
    ) -> None:
        self.store = Store(seed_customers(customers, seed))
        self.modes = modes
        self.users = users
        self.rng = random.Random(seed + 1)
        self.tie_rng = random.Random(seed + 2)
        self.faults = FaultInjector(modes.faults, modes.lost_answers)
        self.faults.person_edit = self.person_edit
        self.tokens: dict[str, dict[str, Any]] = {}
        self.user_tokens: dict[str, str] = {}
        if static_token:
            self.tokens[static_token] = {"user": "token", "uses": 0}
        self.served: Counter[str] = Counter()
        #: API requests by method and path, pks shown as {pk}: what a client spent
        self.requests: Counter[str] = Counter()
        self.patches: Counter[int] = Counter()  # successful PATCHes per pk, for write-back tests
        self._cache: OrderedDict[tuple[Any, ...], Sequence[int]] = OrderedDict()

    def person_edit(self, pk: int) -> str | None:
        """A person sets the customer's erp_code in Omnitron's UI (after a lost answer)."""
        customer = self.store.by_pk.get(pk)
        if customer is None:
            return None
        code = f"PERSON-{pk}"
        stamp = max(now_us(), customer.modified_us + 1)
        self.store.update(pk, {"erp_code": code}, stamp)
        return code

    # -- auth -----------------------------------------------------------------------------------
    def login(self, username: str, password: str) -> str | None:
        expected = self.users.get(username)
        if expected is None or not secrets.compare_digest(expected, password):
            return None
        key = self.user_tokens.get(username)
        if key is None or key not in self.tokens:
            key = secrets.token_hex(20)
            self.tokens[key] = {"user": username, "uses": 0}
            self.user_tokens[username] = key
        return key

    def authenticate(self, request: Request) -> Response | None:
        """None when the request carries a valid token, else DRF's 401 answer."""
        header = request.headers.get("authorization", "")
        parts = header.split()
        challenge = {"WWW-Authenticate": "Token"}
        if not parts or parts[0].lower() != "token":
            return _json(
                {"detail": "Authentication credentials were not provided."}, 401, challenge
            )
        if len(parts) == 1:
            return _json(
                {"detail": "Invalid token header. No credentials provided."}, 401, challenge
            )
        if len(parts) > 2:
            return _json(
                {"detail": "Invalid token header. Token string should not contain spaces."},
                401,
                challenge,
            )
        token = self.tokens.get(parts[1])
        if token is None:
            return _json({"detail": "Invalid token."}, 401, challenge)
        token["uses"] += 1
        limit = self.modes.token_max_requests
        if limit is not None and token["uses"] > limit:
            del self.tokens[parts[1]]
            return _json({"detail": "Invalid token."}, 401, challenge)
        return None

    def body(self, blob: bytes) -> bytes:
        """A customer's JSON, with the fields a newer server adds (``added_fields`` mode)."""
        added = self.modes.added_fields
        if not added:
            return blob
        return blob[:-1] + b"," + orjson.dumps(added)[1:]

    # -- queries --------------------------------------------------------------------------------
    def query_pks(self, params: list[tuple[str, str]]) -> Sequence[int]:
        modes = self.modes
        query = parse_query(
            params, modes.date_only_filters, modes.utc_offset_hours, modes.ignore_sort
        )
        if modes.shuffle_ties:
            return run_query(self.store, query, self.tie_rng)
        key = (
            self.store.version,
            modes.utc_offset_hours,
            modes.ignore_sort,
            tuple(sorted(params)),
        )
        cached = self._cache.get(key)
        if cached is None:
            cached = run_query(self.store, query, None)
            self._cache[key] = cached
            while len(self._cache) > 16:
                self._cache.popitem(last=False)
        return cached


def _page_url(url: str, page: int | None) -> str:
    parts = urlsplit(url)
    items = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "page"]
    if page is not None:
        items.append(("page", str(page)))
    return urlunsplit(parts._replace(query=urlencode(sorted(items))))


def create_app(
    customers: int = 1000,
    seed: int = 7,
    modes: SandboxModes | None = None,
    users: dict[str, str] | None = None,
    static_token: str | None = None,
    bulk_update: int = 0,
) -> FastAPI:
    """A sandbox app with ``customers`` seeded customers. ``app.state.sandbox`` holds its state.

    ``bulk_update`` > 0 gives that many customers one shared ``modified_date`` at start.
    """
    state = SandboxState(
        customers, seed, modes or SandboxModes(), users or {"sandbox": "sandbox"}, static_token
    )
    if bulk_update:
        writers.modify(
            state.store,
            state.rng,
            state.store.random_pks(state.rng, bulk_update),
            same_timestamp=True,
        )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(writers.run_writers(state.store, lambda: state.modes, state.rng))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app = FastAPI(
        title="Omnitron sandbox",
        lifespan=lifespan,
        docs_url="/_sandbox/docs",
        openapi_url="/_sandbox/openapi.json",
        redoc_url=None,
    )
    app.state.sandbox = state

    @app.exception_handler(StarletteHTTPException)
    async def drf_errors(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 405:
            return _json({"detail": f'Method "{request.method}" not allowed.'}, 405)
        if exc.status_code == 404:
            return _json({"detail": "Not found."}, 404)
        return _json({"detail": exc.detail}, exc.status_code)

    @app.middleware("http")
    async def count_and_commit(request: Request, call_next: Any) -> Response:
        if request.url.path.startswith("/api/"):
            state.store.flush_due()
            path = re.sub(r"/\d+/", "/{pk}/", request.url.path)
            state.requests[f"{request.method} {path}"] += 1
        response: Response = await call_next(request)
        state.served[str(response.status_code)] += 1
        skew = state.modes.date_skew_seconds
        if skew is not None:  # the API promises no Date header, nor its clock
            moment = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=skew)
            response.headers["date"] = email.utils.format_datetime(moment, usegmt=True)
        return response

    async def body_of(request: Request) -> Any:
        raw = await request.body()
        try:
            return orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError as exc:
            raise ValidationFailed({"detail": [f"JSON parse error - {exc}"]}) from None

    # -- the Omnitron API ---------------------------------------------------------------------
    @app.post("/api/v1/auth/login/")
    async def login(request: Request) -> Response:
        try:
            body = await body_of(request)
        except ValidationFailed as exc:
            return _json({"detail": exc.errors["detail"][0]}, 400)
        missing = {
            f: ["This field is required."]
            for f in ("username", "password")
            if not isinstance(body, dict) or not body.get(f)
        }
        if missing:
            return _json(missing, 400)
        key = state.login(str(body["username"]), str(body["password"]))
        if key is None:
            return _json({"non_field_errors": ["Unable to log in with provided credentials."]}, 400)
        return _json({"key": key})

    @app.get("/api/v1/customers/")
    async def list_customers(request: Request) -> Response:
        if (denied := state.authenticate(request)) is not None:
            return denied
        params = list(request.query_params.multi_items())
        filters = [(k, v) for k, v in params if k not in ("page", "limit")]
        try:
            pks = state.query_pks(filters)
        except FilterError as exc:
            return _json(exc.errors, 400)
        modes = state.modes
        limit = modes.default_limit
        raw_limit = request.query_params.get("limit")
        if raw_limit:
            with contextlib.suppress(ValueError):
                if int(raw_limit) > 0:
                    limit = min(int(raw_limit), modes.max_limit)
        count = len(pks)
        pages = max(1, -(-count // limit))
        raw_page = request.query_params.get("page", "1")
        page = pages if raw_page == "last" else (int(raw_page) if raw_page.isdigit() else 0)
        if page < 1 or page > pages:
            return _json({"detail": "Invalid page."}, 404)
        url = str(request.url)
        next_url = _page_url(url, page + 1) if page < pages else None
        previous = None if page == 1 else _page_url(url, None if page == 2 else page - 1)
        body_of_pk = state.store.body
        rows = b",".join(
            state.body(body_of_pk(pk)) for pk in pks[(page - 1) * limit : page * limit]
        )
        body = b"".join(
            (
                b'{"count":',
                str(count).encode(),
                b',"next":',
                orjson.dumps(next_url),
                b',"previous":',
                orjson.dumps(previous),
                b',"results":[',
                rows,
                b"]}",
            )
        )
        if modes.creates_per_list:
            # After the answer is built: the next request of the same read sees them.
            writers.create(state.store, state.rng, modes.creates_per_list)
        return Response(body, media_type="application/json")

    @app.post("/api/v1/customers/")
    async def create_customer(request: Request) -> Response:
        if (denied := state.authenticate(request)) is not None:
            return denied
        try:
            clean = validate(await body_of(request), required=REQUIRED_ON_CREATE)
        except ValidationFailed as exc:
            return _json(exc.errors, 400)
        if state.store.owner(clean["channel"], clean["channel_code"]) is not None:
            return _json(UNIQUE_ERROR, 400)
        customer = state.store.create({**DEFAULTS, **clean})
        return Response(customer.blob, status_code=201, media_type="application/json")

    def lookup(pk: str) -> Customer | None:
        return state.store.by_pk.get(int(pk)) if pk.isdigit() else None

    @app.get("/api/v1/customers/{pk}/")
    async def customer_detail(pk: str, request: Request) -> Response:
        if (denied := state.authenticate(request)) is not None:
            return denied
        customer = lookup(pk)
        if customer is None:
            return _json({"detail": "Not found."}, 404)
        return Response(state.body(customer.blob), media_type="application/json")

    @app.api_route("/api/v1/customers/{pk}/", methods=["PATCH", "PUT"])
    async def update_customer(pk: str, request: Request) -> Response:
        if (denied := state.authenticate(request)) is not None:
            return denied
        customer = lookup(pk)
        if customer is None:
            return _json({"detail": "Not found."}, 404)
        try:
            body = await body_of(request)
            if (
                isinstance(body, dict)
                and "channel" in body
                and str(body["channel"]) != str(customer.data["channel"])
            ):
                return _json(CHANNEL_CHANGE_BODY, 406)
            required = REQUIRED_ON_PUT if request.method == "PUT" else ()
            clean = validate(body, required=required)
        except ValidationFailed as exc:
            return _json(exc.errors, 400)
        owner = state.store.owner(
            clean.get("channel", customer.data["channel"]),
            clean.get("channel_code", customer.data["channel_code"]),
        )
        if owner not in (None, customer.pk):
            return _json(UNIQUE_ERROR, 400)
        updated = state.store.update(customer.pk, clean)
        if request.method == "PATCH":
            state.patches[customer.pk] += 1
        return Response(updated.blob, media_type="application/json")

    # -- the admin API: tests, demo and benchmarks only ---------------------------------------
    @app.get("/_sandbox/modes")
    async def get_modes() -> Response:
        return _json(state.modes.model_dump())

    @app.patch("/_sandbox/modes")
    async def patch_modes(request: Request) -> Response:
        changes = await body_of(request)
        merged = state.modes.model_dump()
        faults = {**merged["faults"], **changes.pop("faults", {})}
        merged.update(changes)
        merged["faults"] = faults
        try:
            state.modes = SandboxModes.model_validate(merged)
        except ValueError as exc:
            return _json({"detail": str(exc)}, 400)
        state.faults.reconfigure(state.modes.faults, state.modes.lost_answers)
        return _json(state.modes.model_dump())

    @app.post("/_sandbox/faults/next")
    async def queue_faults(request: Request) -> Response:
        body = await body_of(request)
        kinds = body.get("kinds", [])
        bad = [k for k in kinds if k not in ALL_FAULTS]
        if bad:
            return _json(
                {"kinds": [f"unknown fault {bad[0]!r}; choose from {list(ALL_FAULTS)}"]}, 400
            )
        methods = body.get("methods")  # only requests of these methods meet them; all if absent
        only = frozenset(str(m).upper() for m in methods) if methods else None
        path = body.get("path")  # only requests of this path (e.g. one customer's URL)
        state.faults.queue.extend((kind, only, path) for kind in kinds)
        return _json({"queued": len(state.faults.queue)})

    @app.post("/_sandbox/lost_answers/next")
    async def queue_lost_answers(request: Request) -> Response:
        """The next PATCHes are applied, then their answers lost: ``{"answers": [{"kind":
        "502" | "reset" | "timeout", "edit": bool}, ...]}`` (``edit``: a person edits the
        customer's erp_code at once, before the answer is lost)."""
        body = await body_of(request)
        answers = body.get("answers", []) if isinstance(body, dict) else []
        kinds = list(ALL_LOST_ANSWERS)
        bad = [a for a in answers if not isinstance(a, dict) or a.get("kind") not in kinds]
        if bad:
            return _json({"answers": [f"unknown lost answer {bad[0]!r}; kinds are {kinds}"]}, 400)
        state.faults.lost_queue.extend(
            LostAnswer(a["kind"], bool(a.get("edit", False))) for a in answers
        )
        return _json({"queued": len(state.faults.lost_queue)})

    @app.post("/_sandbox/modify")
    async def admin_modify(request: Request) -> Response:
        body = await body_of(request)
        pks = body.get("pks") or state.store.random_pks(state.rng, int(body.get("count", 1)))
        late = float(body.get("late_seconds", 0.0))
        done = writers.modify(
            state.store,
            state.rng,
            [int(p) for p in pks],
            same_timestamp=bool(body.get("same_timestamp")),
            late_seconds=late,
        )
        return _json(
            {
                "pks": [c.pk for c in done],
                "modified_dates": sorted({c.data["modified_date"] for c in done}),
            }
        )

    @app.post("/_sandbox/create")
    async def admin_create(request: Request) -> Response:
        body = await body_of(request)
        done = writers.create(
            state.store,
            state.rng,
            int(body.get("count", 1)),
            late_seconds=float(body.get("late_seconds", 0.0)),
        )
        return _json({"pks": [c.pk for c in done]})

    @app.post("/_sandbox/delete")
    async def admin_delete(request: Request) -> Response:
        body = await body_of(request)
        pks = body.get("pks") or state.store.random_pks(state.rng, int(body.get("count", 1)))
        return _json({"pks": writers.delete(state.store, [int(p) for p in pks])})

    @app.post("/_sandbox/quiesce")
    async def quiesce() -> Response:
        state.modes = state.modes.model_copy(
            update={"writers_per_second": 0.0, "creates_per_list": 0}
        )
        committed = state.store.flush_all()
        return _json({"committed": committed, "count": len(state.store)})

    @app.post("/_sandbox/tokens/expire")
    async def expire_tokens() -> Response:
        state.tokens.clear()
        state.user_tokens.clear()
        return _json({"expired": True})

    @app.get("/_sandbox/truth")
    async def truth() -> Response:
        store = state.store
        rows = b",".join(map(store.body, store.pks))
        return Response(
            b'{"count":%d,"pending":%d,"results":[%b]}' % (len(store), store.pending_count, rows),
            media_type="application/json",
        )

    @app.get("/_sandbox/stats")
    async def stats() -> Response:
        return _json(
            {
                "customers": len(state.store),
                "pending": state.store.pending_count,
                "served": dict(state.served),
                "requests": dict(state.requests),
                "faults_injected": dict(state.faults.injected),
                "version": state.store.version,
                "patches": {str(pk): n for pk, n in state.patches.items()},
                "lost_answers": {str(pk): kind for pk, kind in state.faults.lost.items()},
                "person_edits": {str(pk): code for pk, code in state.faults.edited.items()},
            }
        )

    # Outermost, so that an injected fault short-circuits auth, counting and the handlers.
    app.add_middleware(FaultMiddleware, injector=state.faults)
    return app
