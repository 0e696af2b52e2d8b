"""Pages of one customer listing, followed lazily by ``next``, and what a page holds."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from omnisync.client.errors import NotFound, UnexpectedResponse
from omnisync.client.exact_json import loads_exact
from omnisync.client.query import CUSTOMERS_PATH
from omnisync.client.records import Record, decode_records, envelope

if TYPE_CHECKING:
    from omnisync.client.client import OmnitronClient

log = logging.getLogger("omnisync.client")


class Page:
    """One answer of a listing. Its records are decoded on first use, in the view asked for:
    ``records`` (typed customers for the sync, ``client/records.py``) or ``results`` (exact
    dicts, for callers that read a few fields of a few records). Decoding takes no lock: a page
    handed to another thread has the view that thread reads built first (planning does)."""

    def __init__(
        self,
        number: int,
        count: int,
        results: list[Any] | None,
        has_next: bool,
        *,
        raw_results: bytes | None = None,
    ) -> None:
        self.number, self.count, self.has_next = number, count, has_next
        self._raw = raw_results
        self._results = results
        self._records: list[Record] | None = results

    @property
    def results(self) -> list[Any]:
        """The records as exact dicts (``exact_json.loads_exact``)."""
        if self._results is None:
            assert self._raw is not None
            self._results = loads_exact(self._raw)
        return self._results

    @property
    def complete(self) -> bool:
        """Whether this answer holds every record its query matches: no next page, and as many
        records as its ``count`` (counted in whichever view was decoded: they are as long)."""
        listed = self._records if self._records is not None else self.results
        return not self.has_next and self.count <= len(listed)

    @property
    def records(self) -> list[Record]:
        """The records typed: a ``Customer`` for each that is exactly one, else its dict."""
        if self._records is None:
            assert self._raw is not None
            self._records = decode_records(self._raw)
        return self._records


class PageIterator(Iterator[Page]):
    """Pages of one listing, fetched lazily by following ``next``.

    ``shrunk`` turns True when the server answered "Invalid page." to a ``next`` link: the result
    set got smaller while we paged (rows were modified out of the filter). Iteration then ends
    instead of failing; callers that need every row re-query (the sync does).
    """

    def __init__(
        self,
        client: OmnitronClient,
        params: dict[str, str],
        page_size: int,
        before_send: Callable[[], None] | None = None,
    ) -> None:
        self._client = client
        self._before_send = before_send
        self._params: dict[str, str] | None = {**params, "limit": str(page_size)}
        self.shrunk = False
        self.count: int | None = None
        self.pages = 0

    def __next__(self) -> Page:
        if self._params is None:
            raise StopIteration
        try:
            response = self._client.send(
                "GET", CUSTOMERS_PATH, params=self._params, before_send=self._before_send
            )
        except NotFound as exc:
            if exc.invalid_page and self.pages > 0:
                self.shrunk, self._params = True, None
                log.info("listing shrank while paging; stopping at page %d", self.pages + 1)
                raise StopIteration from None
            raise
        # The results are left as text here: the caller's view decodes them (see ``Page``).
        read = envelope(response.content)
        results: list[Any] | None = None
        raw: bytes | None = None
        if read is None:
            body = self._client._decode(response)
            if not isinstance(body, dict) or "results" not in body:
                raise UnexpectedResponse(f"GET {CUSTOMERS_PATH} answered a body without results")
            count, next_url, results = body.get("count"), body.get("next"), body["results"]
        else:
            count, next_url, raw = read
        self.pages += 1
        self.count = int(count or 0)
        # Only the query of ``next`` is used: behind a proxy its scheme and host may be wrong.
        self._params = dict(parse_qsl(urlsplit(next_url).query)) if next_url else None
        return Page(self.pages, self.count, results, next_url is not None, raw_results=raw)
