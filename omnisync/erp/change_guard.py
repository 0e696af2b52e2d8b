"""The write-back's view of what changed in Omnitron since its snapshot: a listing before every
batch of changes, so that each change is checked against Omnitron at about 1.1 requests per
change instead of a re-read of each (``omnisync/erp/writeback.py``).

A customer that the listing does not show has not changed since the snapshot: the snapshot holds
every version older than the sync's watermark, and the first listing starts a lookback before
that watermark. Listings use the documented ``modified_date`` filter, read by pk ranges, trusting
neither sort nor limit (the paginator).
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

from omnisync.client import OmnitronClient, Paginator


class ChangeGuard:
    """The customers that changed in Omnitron since ``since``, listed again before each batch.

    ``fresh(pk)`` is the customer's newest listed record, or None when no listing showed it
    (it has not changed since the snapshot). Listings overlap by ``margin`` (the sync's lag: a
    commit may become visible that late), and a batch holds twelve changes per request the last
    listing cost, so listing stays under a tenth of a request per change.
    """

    #: changes per listing request: 12 keeps the write-back under 1.1 requests per change with
    #: its login and filter probe; a batch of 12 takes about a second at 10 requests/s
    PER_REQUEST = 12

    def __init__(
        self,
        client: OmnitronClient,
        since: dt.datetime,
        margin: dt.timedelta,
        page_size: int,
    ) -> None:
        self._client = client
        self._next = since
        self._margin = margin
        self._page_size = page_size
        self._seen: dict[int, dict[str, Any]] = {}
        self._left = 0
        self._lock = threading.Lock()
        self.listings = 0

    def fresh(self, pk: int) -> dict[str, Any] | None:
        with self._lock:
            if self._left <= 0:
                self._left = self._list()
            self._left -= 1
            return self._seen.get(pk)

    def _list(self) -> int:
        """List the changes since the last listing (less the margin); the next batch's size."""
        # Asked here, not when built: a refused login is then one change's outcome, like any.
        datetimes = self._client.datetime_filters_supported
        now = self._client.server_time()
        rows = 0
        # Until a day ahead: a record stamped a little in the future is still a change.
        paginator = Paginator(self._client, self._page_size)
        for page in paginator.changed(self._next, now + dt.timedelta(days=1), datetimes):
            for record in page:
                pk = record.get("pk") if isinstance(record, dict) else None
                if isinstance(pk, int):
                    self._seen[pk] = record
            rows += len(page)
        self._next = now - self._margin
        self.listings += 1
        requests = max(1, -(-rows // self._page_size))
        return self.PER_REQUEST * requests
