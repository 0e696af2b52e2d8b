"""Pages of one customer listing, followed lazily by ``next``, and what a page holds."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from omnisync.client.errors import NotFound, UnexpectedResponse
from omnisync.client.query import CUSTOMERS_PATH

if TYPE_CHECKING:
    from omnisync.client.client import OmnitronClient

log = logging.getLogger("omnisync.client")


@dataclass(frozen=True)
class Page:
    number: int
    count: int
    results: list[dict[str, Any]]
    has_next: bool


class PageIterator(Iterator[Page]):
    """Pages of one listing, fetched lazily by following ``next``.

    ``shrunk`` turns True when the server answered "Invalid page." to a ``next`` link: the result
    set got smaller while we paged (rows were modified out of the filter). Iteration then ends
    instead of failing; callers that need every row re-query (the sync does).
    """

    def __init__(self, client: OmnitronClient, params: dict[str, str], page_size: int) -> None:
        self._client = client
        self._params: dict[str, str] | None = {**params, "limit": str(page_size)}
        self.shrunk = False
        self.count: int | None = None
        self.pages = 0

    def __next__(self) -> Page:
        if self._params is None:
            raise StopIteration
        try:
            body = self._client.get_json(CUSTOMERS_PATH, params=self._params)
        except NotFound as exc:
            if exc.invalid_page and self.pages > 0:
                self.shrunk, self._params = True, None
                log.info("listing shrank while paging; stopping at page %d", self.pages + 1)
                raise StopIteration from None
            raise
        if not isinstance(body, dict) or "results" not in body:
            raise UnexpectedResponse(f"GET {CUSTOMERS_PATH} answered a body without results")
        self.pages += 1
        self.count = int(body.get("count") or 0)
        next_url = body.get("next")
        # Only the query of ``next`` is used: behind a proxy its scheme and host may be wrong.
        self._params = dict(parse_qsl(urlsplit(next_url).query)) if next_url else None
        return Page(self.pages, self.count, body["results"], next_url is not None)
