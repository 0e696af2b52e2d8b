"""Requests in flight (omnisync/client/in_flight.py): the paginator asks for a window's next
range before its caller has typed the page it has, an error of a request asked ahead is the
caller's, as itself, and a caller that stops early is not held up. Driven by the server's own
progress (a condition on the requests it received), never by sleeping."""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from dataclasses import dataclass, field

import httpx
import pytest
from pydantic import SecretStr

from omnisync.client import Paginator, ValidationFailed
from tests.client.fake_omnitron import BASE, FakeOmnitron

WAIT = 30.0  # a bound on a thread's progress, not a timing: each wait ends on a condition
HI = BASE + dt.timedelta(days=1)


@dataclass
class CountingOmnitron(FakeOmnitron):
    """Tells a waiting test how many requests it has received. Requests for pks from
    ``refuse_from`` on are answered 400 for a filter value, as Omnitron does; those from
    ``hold_from`` on wait until ``released``. (By pks: which of two requests in flight arrives
    first is not known.)"""

    refuse_from: int | None = None
    hold_from: int | None = None
    received: int = 0
    released: threading.Event = field(default_factory=threading.Event)
    _received: threading.Condition = field(default_factory=threading.Condition)

    def handle(self, request: httpx.Request) -> httpx.Response:
        with self._received:
            self.received += 1
            self._received.notify_all()
        start = int(request.url.params.get("pk__gte", 0))
        if self.hold_from is not None and start >= self.hold_from:
            self.released.wait(WAIT)
        if self.refuse_from is not None and start >= self.refuse_from:
            return httpx.Response(400, json={"pk__gte": ["Enter a whole number."]})
        return super().handle(request)

    def wait_for(self, requests: int) -> bool:
        with self._received:
            return self._received.wait_for(lambda: self.received >= requests, WAIT)


def sorted_server(**extra: object) -> CountingOmnitron:
    return CountingOmnitron(dict.fromkeys(range(1, 1001), BASE), order="pk", cap=100, **extra)  # type: ignore[arg-type]


def test_the_next_range_is_asked_for_while_the_caller_holds_each_page() -> None:
    """Found by a review: ranges asked in batches left nothing in flight while the caller held
    a batch's last page."""
    server = sorted_server()
    got: list[int] = []
    with server.client(page_size=100) as client:
        pages = Paginator(client, 100, in_flight=2).changed(None, HI, True)
        with contextlib.closing(pages):
            for held, page in enumerate(pages, start=1):
                got.extend(record["pk"] for record in page)
                if len(got) < 1000:
                    # nothing more is taken from the paginator: the next piece is asked all the
                    # same (the first answer sized the walk, then one piece per page held)
                    assert server.wait_for(1 + held + 1), f"nothing asked ahead of page {held}"
    assert sorted(got) == list(range(1, 1001))
    assert got[:74] == list(range(1, 75))  # the walk's pieces aim at 74 rows of 100


def test_one_request_at_a_time_asks_nothing_ahead() -> None:
    server = sorted_server()
    with server.client(page_size=100) as client:
        pages = Paginator(client, 100).changed(None, HI, True)
        with contextlib.closing(pages):
            next(pages)
            assert server.received == 2  # the first answer and the walk's first piece
            next(pages)
            assert server.received == 3


def test_an_error_of_a_request_asked_ahead_is_raised_to_the_caller_as_itself() -> None:
    server = sorted_server(refuse_from=75)  # the walk's second piece, asked ahead, is refused
    got: list[int] = []

    def read() -> None:
        with server.client(page_size=100) as client:
            for page in Paginator(client, 100, in_flight=2).changed(None, HI, True):
                got.extend(record["pk"] for record in page)

    with pytest.raises(ValidationFailed, match="pk__gte"):
        read()
    assert got == list(range(1, 75)), "the pages answered before it come first"


def test_a_caller_that_stops_early_does_not_wait_for_a_request_asked_ahead() -> None:
    server = sorted_server(hold_from=75)  # the piece asked ahead is held by the server
    try:
        with server.client(page_size=100) as client:
            pages = Paginator(client, 100, in_flight=2).changed(None, HI, True)
            # reaching the first piece means the first answer's walk asked ahead
            next(pages)
            pages.close()  # returns while that request is still held
            assert not server.released.is_set()
    finally:
        server.released.set()


@dataclass
class FailingOmnitron(CountingOmnitron):
    """Answers 503 to every request for pks from ``fail_from`` on, counting them: a server
    failing under the piece asked ahead, which the client retries."""

    fail_from: int = 0
    failed: int = 0

    def handle(self, request: httpx.Request) -> httpx.Response:
        if int(request.url.params.get("pk__gte", 0)) >= self.fail_from:
            with self._received:
                self.failed += 1
                self._received.notify_all()
            return httpx.Response(503, json={"detail": "unavailable"})
        return super().handle(request)

    def wait_for_failures(self, failures: int) -> bool:
        with self._received:
            return self._received.wait_for(lambda: self.failed >= failures, WAIT)


def test_a_request_asked_ahead_is_not_tried_again_once_its_reader_stops() -> None:
    """Found by a review: a piece asked ahead that met a failing server went on retrying for
    the client's whole budget after its reader had stopped (a window that failed), beside the
    window's own retry. Its next attempt now raises instead of going out."""
    from omnisync.client import OmnitronClient
    from omnisync.client.throttle import Throttle

    server = dict.fromkeys(range(1, 1001), BASE)
    failing = FailingOmnitron(server, order="pk", cap=100, fail_from=75)  # type: ignore[arg-type]
    client = OmnitronClient(
        "https://omnitron.test",
        token=SecretStr("fake"),
        page_size=100,
        transport=httpx.MockTransport(failing.handle),
        throttle=Throttle(1_000_000, 8),
        retry_attempts=40,  # about 8 s of retries: far longer than the test waits
        retry_max_seconds=WAIT,
        backoff_initial=0.2,
        backoff_max=0.2,
        backoff_jitter=0.0,
    )
    before = set(threading.enumerate())
    with client:
        pages = Paginator(client, 100, in_flight=2).changed(None, HI, True)
        next(pages)  # the first piece; the second, asked ahead, is failing
        (ahead,) = [t for t in threading.enumerate() if t not in before]
        assert failing.wait_for_failures(2), "the piece asked ahead is being retried"
        pages.close()
        stopped_at = failing.failed
        ahead.join(WAIT)
        assert not ahead.is_alive(), "the request asked ahead ended"
    assert failing.failed <= stopped_at + 1, "no attempt after the one under way"
