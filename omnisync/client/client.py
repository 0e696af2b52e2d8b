"""The Omnitron client: one ``httpx.Client`` with auth, a per-process throttle and the retry layer.

Retries live here and nowhere else: 429 (honouring Retry-After), 5xx (JSON or not), timeouts and
broken connections are retried with bounded exponential backoff and jitter (stamina) within
``retry_attempts`` and ``retry_max_seconds``; every other answer is classified once
(``errors.classify``) and raised for the caller to act on.

A write is not a read. A PATCH, PUT or POST is sent again only after a failure that proves it
never took effect (a connection refused or never made, a 429 or 503 with ``Retry-After``). After
any other failure (a timeout once sent, a 5xx, a connection broken mid-way) it may have been
applied, so the client raises ``AnswerLost`` at once, and the caller re-reads before deciding;
``retry_budget()`` gives that caller the same attempts, time and backoff as this layer.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import logging
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, cast
from urllib.parse import urlsplit

import httpx
import orjson
import stamina
from pydantic import SecretStr

from omnisync import __version__
from omnisync.client.auth import OmnitronAuth
from omnisync.client.errors import (
    AnswerLost,
    ClientClosed,
    DateFilterRejected,
    NotFound,
    OmnitronError,
    Retriable,
    RetriesExhausted,
    UnexpectedResponse,
    classify,
)
from omnisync.client.exact_json import loads_exact
from omnisync.client.pages import PageIterator
from omnisync.client.query import CUSTOMERS_PATH, CustomerQuery
from omnisync.client.redaction import Redactor
from omnisync.client.retry import READS, RetryBudget, retry_policy, transport_failure
from omnisync.client.throttle import Throttle
from omnisync.client.tls import tls_context

log = logging.getLogger("omnisync.client")

# An answer's Date header stands for the server's clock this long after it came.
CLOCK_REUSE_SECONDS = 60.0


class OmnitronClient:
    """A thread-safe client for one Omnitron instance. Use as a context manager, or ``close()``."""

    def __init__(
        self,
        base_url: str,
        *,
        token: SecretStr | None = None,
        username: str | None = None,
        password: SecretStr | None = None,
        page_size: int = 1000,
        timeout_seconds: float = 30.0,
        max_rps: float = 10.0,
        concurrency: int = 4,
        retry_attempts: int = 8,
        retry_max_seconds: float = 120.0,
        verify_tls: bool = True,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        backoff_jitter: float = 1.0,
        transport: httpx.BaseTransport | None = None,
        throttle: Throttle | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.page_size = page_size
        self.retry_attempts = retry_attempts
        self.retry_max_seconds = retry_max_seconds
        #: (attempts, seconds) a request retries within until the server first answers (a
        #: preflight names an unreachable server in seconds); None: the full budget at once
        self.first_answer_budget: tuple[int, float] | None = None
        #: whether Omnitron has answered yet: anything but no connection, a timeout, a 5xx or a
        #: 404 (which, before any other answer, says the address is not Omnitron's)
        self.answered = False
        self._backoff_waits = (backoff_initial, backoff_max, backoff_jitter)
        self._redact = Redactor(
            [
                token.get_secret_value() if token else None,
                password.get_secret_value() if password else None,
            ]
        )
        self._auth = OmnitronAuth(token=token, username=username, password=password)
        self._throttle = throttle or Throttle.shared(self.base_url, max_rps, concurrency)
        self._http = httpx.Client(
            base_url=self.base_url,
            auth=self._auth,
            timeout=httpx.Timeout(timeout_seconds),
            verify=tls_context(verify_tls),
            transport=transport,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
            headers={"Accept": "application/json", "User-Agent": f"omnisync/{__version__}"},
            follow_redirects=False,
        )
        self._host = urlsplit(self.base_url).netloc.rpartition("@")[2]  # never credentials
        self._datetime_filters: bool | None = None
        # the latest answer's Date and when it came (monotonic): the server's clock, unasked
        self._last_date: tuple[str | None, float] | None = None

    def __repr__(self) -> str:
        return f"OmnitronClient({self.base_url!r}, auth={self._auth!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> OmnitronClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the retry layer ----------------------------------------------------------------------
    def retry_budget(self) -> RetryBudget:
        """Attempts and time with this client's backoff, for a write looked at after AnswerLost."""
        initial, maximum, jitter = self._backoff_waits
        return RetryBudget(self.retry_attempts, self.retry_max_seconds, initial, maximum, jitter)

    def send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json: Any = None,
        before_send: Callable[[], None] | None = None,
    ) -> httpx.Response:
        """One request with retries. Raises an OmnitronError subclass for anything but 2xx;
        ``AnswerLost`` when a write failed after it may have reached the server. ``before_send``
        runs before every attempt (a write's lock check); what it raises ends the request."""
        content = orjson.dumps(json) if json is not None else None
        headers = {"Content-Type": "application/json"} if content is not None else None
        attempts = 0
        initial, maximum, jitter = self._backoff_waits
        budget = (self.retry_attempts, self.retry_max_seconds)
        if self.first_answer_budget is not None and not self.answered:
            budget = self.first_answer_budget

        started = time.monotonic()

        def attempts_left() -> bool:  # what stamina checks before it schedules another
            return attempts < budget[0] and time.monotonic() - started < budget[1]

        try:
            for attempt in stamina.retry_context(
                on=retry_policy(method, self._redact, attempts_left),
                attempts=budget[0],
                timeout=budget[1],
                wait_initial=initial,
                wait_max=maximum,
                wait_jitter=jitter,
            ):
                with attempt:
                    attempts += 1
                    with self._throttle.slot():
                        if before_send is not None:
                            before_send()
                        response = self._attempt(method, path, params, content, headers)
                    outcome = classify(response)
                    if not isinstance(outcome, (Retriable, NotFound)):
                        self.answered = True
                    if outcome is not None:
                        raise outcome
                    self._last_date = (response.headers.get("date"), time.monotonic())
                    return response
        except Retriable as exc:
            if method not in READS and not exc.unsent:
                raise AnswerLost(
                    self._redact(f"{exc}: it may have been applied; not sent again unseen"),
                    status=exc.status,
                ) from None
            tries = f"{attempts} attempt{'' if attempts == 1 else 's'}"
            raise RetriesExhausted(
                self._redact(f"{exc}; gave up after {tries}"), status=exc.status
            ) from None
        except OmnitronError as exc:
            exc.args = (self._redact(str(exc)),)
            raise
        raise AssertionError("unreachable: stamina either returns or raises")

    def _attempt(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None,
        content: bytes | None,
        headers: dict[str, str] | None,
    ) -> httpx.Response:
        try:
            return self._http.request(method, path, params=params, content=content, headers=headers)
        except (httpx.TransportError, httpx.DecodingError) as exc:
            where = f"{method} {path} on {self._host}"
            checking = self.first_answer_budget is not None and not self.answered  # a preflight
            raise transport_failure(exc, where, checking) from None
        except RuntimeError as exc:  # closed (Ctrl-C, another thread) before or while answered
            if not self._http.is_closed:  # a bare RuntimeError, worth a retry
                raise
            answered = isinstance(exc, httpx.StreamError)  # it left: a write may be applied
            closed = ClientClosed.while_answered if answered else ClientClosed.unsent_request
            raise closed(method, path) from None

    def get_json(self, path: str, *, params: dict[str, str] | None = None) -> Any:
        return self._decode(self.send("GET", path, params=params))

    @staticmethod
    def _decode(response: httpx.Response) -> Any:
        try:
            return loads_exact(response.content)
        except ValueError:
            raise UnexpectedResponse(
                f"{response.request.method} {response.request.url.path} answered "
                f"{response.status_code} with a body that is not JSON",
                status=response.status_code,
            ) from None

    # -- customers ----------------------------------------------------------------------------
    def list_customers(
        self,
        query: CustomerQuery | None = None,
        page_size: int | None = None,
        before_send: Callable[[], None] | None = None,
    ) -> PageIterator:
        """Pages of customers matching ``query``, fetched lazily (memory: one page);
        ``before_send`` as :meth:`send`'s, before every attempt of every page."""
        return PageIterator(
            self, (query or CustomerQuery()).to_params(), page_size or self.page_size, before_send
        )

    def iter_customers(self, query: CustomerQuery | None = None) -> Iterator[dict[str, Any]]:
        for page in self.list_customers(query):
            yield from page.results

    def count_customers(self, query: CustomerQuery | None = None) -> int:
        params = {**(query or CustomerQuery()).to_params(), "limit": "1"}
        return int(self.get_json(CUSTOMERS_PATH, params=params)["count"])

    def get_customer(self, pk: int) -> dict[str, Any]:
        return cast(dict[str, Any], self.get_json(f"{CUSTOMERS_PATH}{int(pk)}/"))

    def patch_customer(
        self, pk: int, changes: dict[str, Any], before_send: Callable[[], None] | None = None
    ) -> dict[str, Any]:
        """PATCH (partial update); the updated customer. 406 NotAcceptable on a channel change;
        ``AnswerLost`` when the PATCH may have been applied but its answer cannot be read."""
        path = f"{CUSTOMERS_PATH}{int(pk)}/"
        return self._written(self.send("PATCH", path, json=changes, before_send=before_send))

    def put_customer(self, pk: int, body: dict[str, Any]) -> dict[str, Any]:
        return self._written(self.send("PUT", f"{CUSTOMERS_PATH}{int(pk)}/", json=body))

    def _written(self, response: httpx.Response) -> dict[str, Any]:
        """A write's 2xx answer as the object written; any other (a proxy's page) is lost."""
        try:
            body = loads_exact(response.content)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise AnswerLost(
                f"{response.request.method} {response.request.url.path} answered "
                f"{response.status_code} without a JSON object: it may have been applied",
                status=response.status_code,
            )
        return body

    def server_time(self) -> dt.datetime:
        """The server's clock (a run's upper bound is the server's time, not ours): the latest
        answer's ``Date`` (a request only when none came in the last minute) plus the time since,
        never later than the server's clock (the header is rounded down and stamped before it
        travelled). Without a ``Date`` header, the local clock."""
        seen = self._last_date
        if seen is None or time.monotonic() - seen[1] > CLOCK_REUSE_SECONDS:
            self.send("GET", CUSTOMERS_PATH, params={"limit": "1"})
            seen = self._last_date
        assert seen is not None
        header, received = seen
        if header:
            with contextlib.suppress(TypeError, ValueError):
                stamped = email.utils.parsedate_to_datetime(header).astimezone(dt.UTC)
                return stamped + dt.timedelta(seconds=time.monotonic() - received)
        log.warning("%s sent no Date header; using the local clock", self.base_url)
        return dt.datetime.now(dt.UTC)

    @property
    def datetime_filters_supported(self) -> bool:
        """Whether the server takes datetimes in date filters (asked once, then remembered)."""
        if self._datetime_filters is None:
            # with microseconds, as windows send them: a server refusing those takes dates only
            at = dt.datetime(2000, 1, 1, 0, 0, 1, 1, tzinfo=dt.UTC)
            probe = CustomerQuery(modified_gte=at)
            try:
                self.count_customers(probe)
                self._datetime_filters = True
            except DateFilterRejected:
                log.info("%s takes only dates in date filters", self.base_url)
                self._datetime_filters = False
        return self._datetime_filters

    def dates_only(self) -> None:
        """The server refused a datetime in a date filter: remembered, whatever a probe said."""
        self._datetime_filters = False
