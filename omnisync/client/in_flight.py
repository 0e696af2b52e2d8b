"""Requests in flight for the paginator: a window's next pk ranges are asked for while its own
thread types the answers it has.

A run extracts one window at a time by default, so that one window's rows are held, not two
(docs/performance.md). With one request at a time, a distant server's latency would add up
request by request; with the next range already asked for, it overlaps the window's own work,
as two windows side by side did. A range asked when nothing else is in flight is asked on the
caller's thread when its answer is wanted (it is the next one answered); the others at once, on
threads of their own (in a copy of the caller's context: a Prefect run's logger is found
through it).

A request started for a reader that stops early (:meth:`InFlight.close`) is not tried again:
its next attempt, a retry or one still waiting for the throttle, raises :class:`Abandoned`
instead of going out. An attempt already sent ends on its own (the client's timeout) and its
answer is dropped; nothing waits for it.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Protocol

from omnisync.client.pages import Page
from omnisync.client.query import CustomerQuery

Answer = Callable[[], Page | None]


class Lister(Protocol):
    """What the paginator needs of a client: the first answer to a list query, with a check
    run before each of its attempts (``OmnitronClient.send``'s ``before_send``)."""

    def list_customers(
        self,
        query: CustomerQuery,
        page_size: int | None = None,
        before_send: Callable[[], None] | None = None,
    ) -> Iterator[Page]: ...


class Abandoned(Exception):
    """A request asked ahead whose reader stopped: not sent (again), since nobody reads it."""


class InFlight:
    """First pages of list queries through ``client``, up to ``limit`` asked at once."""

    def __init__(self, client: Lister, page_size: int | None, limit: int) -> None:
        self._client = client
        self._page_size = page_size
        self.limit = max(1, limit)
        self._closed = threading.Event()

    def first_page(
        self, query: CustomerQuery, before_send: Callable[[], None] | None = None
    ) -> Page | None:
        return next(self._client.list_customers(query, self._page_size, before_send), None)

    def close(self) -> None:
        """The reader stopped (it ended, failed or let go): requests asked ahead go no further.
        Without this, one meeting a failing server retried for minutes after its window had
        failed, beside the window's own retry."""
        self._closed.set()

    def __enter__(self) -> InFlight:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _still_read(self) -> None:
        if self._closed.is_set():
            raise Abandoned("its reader stopped")

    def ask(self, query: CustomerQuery, first: bool) -> Answer:
        """The answer to ``query``, to be taken by calling what this returns. ``first``:
        nothing else is in flight, so it is the next answer taken: asked on the caller's thread
        then."""
        if first:  # (always, with a limit of one: nothing else is ever in flight)
            return lambda: self.first_page(query)
        answer: Future[Page | None] = Future()

        def run() -> None:
            try:
                answer.set_result(self.first_page(query, self._still_read))
            except BaseException as exc:  # raised where the answer is taken
                answer.set_exception(exc)

        # A daemon thread of its own, not a pool's: a run stopped by Ctrl-C does not wait at
        # exit for a request nobody will read (a pool's threads are joined at exit).
        context = contextvars.copy_context()
        threading.Thread(
            target=context.run, args=(run,), name="omnisync-ahead", daemon=True
        ).start()
        return answer.result
