"""The two sides the deletion check compares (``omnisync/sync/deletions.py``): ``L``, what the
lake holds, and ``S`` and ``M``, what Omnitron counts and what it shows modified after the run's
upper bound."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import numpy as np

from omnisync.client import CustomerQuery, OmnitronClient
from omnisync.client.paginator import Paginator
from omnisync.lake import LakeStorage, Snapshot
from omnisync.lake.quarantine import quarantined_pks
from omnisync.state import StateStore
from omnisync.state.deletions import recorded_deletions
from omnisync.sync.context import STREAM
from transforms.pk_sets import contains, sorted_unique

#: how far after the upper bound ``M`` looks: every change since, whenever it was made
AHEAD = dt.timedelta(days=3650)


def lake_side(snapshot: Snapshot, storage: LakeStorage, store: StateStore) -> np.ndarray:
    """``L``: the pks of ``customers/``, with the quarantined pks that have no row there (and
    no deletion recorded), sorted."""
    held = snapshot.pks()
    quarantined = quarantined_pks(storage)
    only_quarantined = quarantined[~contains(held, quarantined)]
    if not len(only_quarantined):
        return held
    gone = recorded_deletions(store, STREAM, [int(pk) for pk in only_quarantined])
    keep = np.array([int(pk) not in gone for pk in only_quarantined], dtype=np.bool_)
    return sorted_unique([held, only_quarantined[keep]])


class _Counting:
    """The client's listings, counted (the listing of ``M``)."""

    def __init__(self, client: OmnitronClient) -> None:
        self._client, self.requests = client, 0

    def list_customers(
        self,
        query: CustomerQuery,
        page_size: int | None = None,
        before_send: Callable[[], None] | None = None,
    ) -> Any:
        self.requests += 1
        return self._client.list_customers(query, page_size, before_send)


def server_side(
    client: OmnitronClient, upper: dt.datetime, datetimes: bool, page_size: int
) -> tuple[int, np.ndarray, int]:
    """``S``, the customers Omnitron holds; ``M``, the sorted pks it shows modified at or after
    ``upper`` (the paginator's listing, which passes on records whose ``modified_date`` cannot
    be read); and the list requests that cost."""
    total = client.count_customers(CustomerQuery(sort=None))
    listing: Any = _Counting(client)
    modified = [
        record["pk"]
        for page in Paginator(listing, page_size).changed(upper, upper + AHEAD, datetimes)
        for record in page
        if isinstance(record, dict) and isinstance(record.get("pk"), int)
    ]
    return total, np.unique(np.array(modified, dtype=np.int64)), 1 + listing.requests
