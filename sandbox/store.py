"""The in-memory customer store.

The hot path (listing pages) is served from memory, from two sorted indexes (``sandbox/index.py``)
kept up to date on every write: ``pks``, and ``changes``, which holds ``(modified_us, pk)`` packed
in one integer (:func:`change_key`) so that it sorts by modified_date, then pk. A count or a page
of either is O(log N + page).

Each customer is kept compactly, as one tuple ``(modified_us, created_us, body)``, where ``body``
is its JSON response, encoded once when it is written: a page is spliced from bodies, and a
customer's fields are decoded only for the rare filter or sort on them (``customer()``). A
million customers fit in a few hundred bytes each beyond their JSON, where a dict per customer
took several kilobytes.

Every write bumps ``version`` so that cached query results are never served stale. Late commits
wait in ``pending`` until their visibility time; until then no request can see them, although
their ``modified_date`` is already in the past.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import orjson

from sandbox.index import SortedInts
from sandbox.records import Customer, now_us

PK_BITS = 32
PK_MASK = (1 << PK_BITS) - 1
Row = tuple[int, int, bytes]  # modified_us, created_us, JSON body


def change_key(modified_us: int, pk: int) -> int:
    """``(modified_us, pk)`` as one integer with the same order (pks are below ``2**32``)."""
    return (modified_us << PK_BITS) + pk


def _unique_key(channel: Any, channel_code: Any) -> str:
    return f"{channel}\x00{channel_code}"


class CustomerView(Mapping[int, Customer]):
    """``store.by_pk``: each customer decoded from its stored body when asked for."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def __getitem__(self, pk: int) -> Customer:
        customer = self._store.customer(pk)
        if customer is None:
            raise KeyError(pk)
        return customer

    def __contains__(self, pk: object) -> bool:
        return pk in self._store.rows

    def __iter__(self) -> Iterator[int]:
        return iter(self._store.pks)

    def __len__(self) -> int:
        return len(self._store.rows)


class Store:
    def __init__(self, customers: Iterable[Customer] = ()) -> None:
        self.rows: dict[int, Row] = {}
        self._unique: dict[str, int] = {}
        for customer in customers:
            data = customer.data
            pk = data["pk"]
            self._check_pk(pk)
            self.rows[pk] = (customer.modified_us, customer.created_us, customer.blob)
            self._unique[_unique_key(data["channel"], data["channel_code"])] = pk
        self.pks = SortedInts(self.rows)
        self.changes = SortedInts(change_key(row[0], pk) for pk, row in self.rows.items())
        self.by_pk = CustomerView(self)
        self.version = 0
        self.next_pk = (self.pks[-1] + 1) if self.pks else 1
        self._pending: list[
            tuple[int, int, int, Customer]
        ] = []  # (visible_at_us, seq, pk, version)
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self.rows)

    @staticmethod
    def _check_pk(pk: int) -> None:
        if not 0 < pk <= PK_MASK:
            raise ValueError(f"pk {pk} is outside 1..{PK_MASK}")

    # -- reads ----------------------------------------------------------------------------------
    def customer(self, pk: int) -> Customer | None:
        """The customer ``pk`` with its fields decoded, or None."""
        row = self.rows.get(pk)
        if row is None:
            return None
        return Customer(orjson.loads(row[2]), row[0], row[1], row[2])

    def body(self, pk: int) -> bytes:
        return self.rows[pk][2]

    def owner(self, channel: Any, channel_code: Any) -> int | None:
        """The pk holding ``(channel, channel_code)``, unique across customers, or None."""
        return self._unique.get(_unique_key(channel, channel_code))

    def random_pks(self, rng: random.Random, count: int) -> list[int]:
        count = min(count, len(self.pks))
        return rng.sample(self.pks, count)

    # -- writes ---------------------------------------------------------------------------------
    def put(self, customer: Customer) -> None:
        """Make ``customer`` visible now, replacing any earlier version of the same pk."""
        data = customer.data
        pk = data["pk"]
        self._check_pk(pk)
        old = self.rows.get(pk)
        if old is not None:
            self.changes.remove(change_key(old[0], pk))
            self._forget_unique(pk, old)
        else:
            self.pks.add(pk)
            self.next_pk = max(self.next_pk, pk + 1)
        self.rows[pk] = (customer.modified_us, customer.created_us, customer.blob)
        self.changes.add(change_key(customer.modified_us, pk))
        self._unique[_unique_key(data["channel"], data["channel_code"])] = pk
        self.version += 1

    def _forget_unique(self, pk: int, row: Row) -> None:
        data = orjson.loads(row[2])
        key = _unique_key(data["channel"], data["channel_code"])
        if self._unique.get(key) == pk:
            del self._unique[key]

    def delete(self, pk: int) -> bool:
        """Remove ``pk`` (an admin's delete, or a merge of two customers); its pending late
        commits go with it. False if there was no such customer."""
        self._pending = [item for item in self._pending if item[2] != pk]
        heapq.heapify(self._pending)
        old = self.rows.pop(pk, None)
        if old is None:
            return False
        self.changes.remove(change_key(old[0], pk))
        self.pks.remove(pk)
        self._forget_unique(pk, old)
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
