"""The in-memory customer store.

The hot path (listing pages) is served from memory: a dict by pk, a pk-ordered list and a list of
``(modified_us, pk)`` kept sorted for ``bisect``. Every write bumps ``version`` so that cached query
results are never served stale. Late commits wait in ``pending`` until their visibility time; until
then no request can see them, although their ``modified_date`` is already in the past.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import random
from collections.abc import Iterable
from typing import Any

from sandbox.records import Customer, now_us


class Store:
    def __init__(self, customers: Iterable[Customer] = ()) -> None:
        self.by_pk: dict[int, Customer] = {}
        self.pk_index: list[int] = []
        self.md_index: list[tuple[int, int]] = []
        self.unique: dict[tuple[int, str], int] = {}
        self.version = 0
        self.next_pk = 1
        self._pending: list[
            tuple[int, int, int, Customer]
        ] = []  # (visible_at_us, seq, pk, version)
        self._seq = itertools.count()
        for customer in customers:
            self.by_pk[customer.pk] = customer
        self.pk_index = sorted(self.by_pk)
        self.md_index = sorted((c.modified_us, c.pk) for c in self.by_pk.values())
        self.unique = {
            (c.data["channel"], c.data["channel_code"]): c.pk for c in self.by_pk.values()
        }
        self.next_pk = (self.pk_index[-1] + 1) if self.pk_index else 1

    def __len__(self) -> int:
        return len(self.by_pk)

    # -- writes ---------------------------------------------------------------------------------
    def put(self, customer: Customer) -> None:
        """Make ``customer`` visible now, replacing any earlier version of the same pk."""
        pk = customer.pk
        old = self.by_pk.get(pk)
        if old is not None:
            i = bisect.bisect_left(self.md_index, (old.modified_us, pk))
            del self.md_index[i]
            self.unique.pop((old.data["channel"], old.data["channel_code"]), None)
        else:
            bisect.insort(self.pk_index, pk)
            self.next_pk = max(self.next_pk, pk + 1)
        bisect.insort(self.md_index, (customer.modified_us, pk))
        self.unique[(customer.data["channel"], customer.data["channel_code"])] = pk
        self.by_pk[pk] = customer
        self.version += 1

    def delete(self, pk: int) -> bool:
        """Remove ``pk`` (an admin's delete, or a merge of two customers); its pending late
        commits go with it. False if there was no such customer."""
        self._pending = [item for item in self._pending if item[2] != pk]
        heapq.heapify(self._pending)
        old = self.by_pk.pop(pk, None)
        if old is None:
            return False
        del self.md_index[bisect.bisect_left(self.md_index, (old.modified_us, pk))]
        del self.pk_index[bisect.bisect_left(self.pk_index, pk)]
        self.unique.pop((old.data["channel"], old.data["channel_code"]), None)
        self.version += 1
        return True

    def allocate_pk(self) -> int:
        pk = self.next_pk
        self.next_pk += 1
        return pk

    def create(self, data: dict[str, Any], at_us: int | None = None) -> Customer:
        stamp = now_us() if at_us is None else at_us
        data = {**data, "pk": self.allocate_pk()}
        customer = Customer.build(data, stamp, stamp)
        self.put(customer)
        return customer

    def update(self, pk: int, changes: dict[str, Any], at_us: int | None = None) -> Customer:
        self.flush_pk(pk)  # a later write commits after the pending one, as row locks would force
        stamp = now_us() if at_us is None else at_us
        customer = self.by_pk[pk].replaced(changes, stamp)
        self.put(customer)
        return customer

    def commit_later(self, customer: Customer, visible_at_us: int) -> None:
        """Keep ``customer`` invisible until ``visible_at_us``: a transaction that commits late."""
        if customer.pk >= self.next_pk:
            self.next_pk = customer.pk + 1
        heapq.heappush(self._pending, (visible_at_us, next(self._seq), customer.pk, customer))

    def has_pending(self, pk: int) -> bool:
        return any(item[2] == pk for item in self._pending)

    def flush_due(self, at_us: int | None = None) -> int:
        """Commit every pending change whose time has come (all of them if ``at_us`` is huge)."""
        limit = now_us() if at_us is None else at_us
        done = 0
        while self._pending and self._pending[0][0] <= limit:
            *_, customer = heapq.heappop(self._pending)
            self.put(customer)
            done += 1
        return done

    def flush_all(self) -> int:
        return self.flush_due(2**62)

    def flush_pk(self, pk: int) -> None:
        keep = [item for item in self._pending if item[2] != pk]
        if len(keep) != len(self._pending):
            mine = sorted(item for item in self._pending if item[2] == pk)
            self._pending = keep
            heapq.heapify(self._pending)
            for *_, customer in mine:
                self.put(customer)

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    # -- reads ----------------------------------------------------------------------------------
    def modified_range(self, lo_us: int | None, hi_us: int | None) -> list[int]:
        """pks with ``lo_us <= modified_us < hi_us`` in (modified_us, pk) order."""
        start = 0 if lo_us is None else bisect.bisect_left(self.md_index, (lo_us, -1))
        stop = (
            len(self.md_index) if hi_us is None else bisect.bisect_left(self.md_index, (hi_us, -1))
        )
        return [pk for _, pk in self.md_index[start:stop]]

    def pk_range(self, lo: int | None, hi: int | None) -> list[int]:
        """pks with ``lo <= pk < hi`` in ascending order."""
        start = 0 if lo is None else bisect.bisect_left(self.pk_index, lo)
        stop = len(self.pk_index) if hi is None else bisect.bisect_left(self.pk_index, hi)
        return self.pk_index[start:stop]

    def random_pks(self, rng: random.Random, count: int) -> list[int]:
        count = min(count, len(self.pk_index))
        return rng.sample(self.pk_index, count)
