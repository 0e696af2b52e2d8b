"""Answering a parsed query from the store's indexes: the pks it matches, in result order.

A query bounds ``pk`` and ``modified_date`` with ranges (``sandbox/queries.py``). Each range is
counted in its index in O(log N), and the rows are read from the narrower one, so that the
sync's queries (a pk range of about a page inside a wide modified_date window, or the reverse)
cost O(log N + rows of the narrower range), never a scan of the store:

* one range only, no other filter, in that index's order (``sort=pk``, ``-pk`` or
  ``modified_date``): a :class:`Listing`, which counts in O(1) and reads only the page asked for;
* otherwise the narrower range is read and the rest is checked row by row: the other range and
  ``created_date`` from the stored integers, other filters and sorts on the decoded customer.

Order is that of the old whole-store scan: by the sort field, ties by pk ascending (``sort=pk``
when there is none or it names no field), or ties at random per request in ``shuffle_ties``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, overload

import orjson

from sandbox.index import SortedInts
from sandbox.queries import Query
from sandbox.records import FIELDS
from sandbox.store import PK_BITS, PK_MASK, Store

_LOWEST = -(1 << 80)
_HIGHEST = 1 << 80


@dataclass(frozen=True)
class Listing(Sequence[int]):
    """The pks at positions ``[start, stop)`` of an index, read only when sliced."""

    source: SortedInts
    start: int
    stop: int
    descending: bool = False
    packed: bool = False  # the index holds change keys: the pk is their low bits

    def __len__(self) -> int:
        return self.stop - self.start

    @overload
    def __getitem__(self, item: int) -> int: ...
    @overload
    def __getitem__(self, item: slice) -> list[int]: ...
    def __getitem__(self, item: int | slice) -> int | list[int]:
        if isinstance(item, int):
            found = self[item : item + 1] if item >= 0 else self[len(self) + item :][:1]
            if not found:
                raise IndexError(item)
            return found[0]
        first, last, step = item.indices(len(self))
        if step != 1:
            raise ValueError("a listing is sliced with step 1 only")
        if self.descending:
            values = self.source.between(self.stop - last, self.stop - first)
            values.reverse()
        else:
            values = self.source.between(self.start + first, self.start + last)
        return [v & PK_MASK for v in values] if self.packed else values


def sort_of(sort: str | None) -> tuple[str, bool]:
    """The field to sort on (``pk`` for ``id``, none or an unknown field) and whether it is
    descending, as DRF's ordering filter reads ``sort``."""
    sort = sort or "pk"
    descending = sort.startswith("-")
    name = sort.lstrip("-")
    if name not in FIELDS and name != "id":
        return "pk", False
    return ("pk" if name == "id" else name), descending


def _comparable(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict):
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    return value


def _key_of(store: Store, name: str) -> Callable[[int], Any]:
    rows = store.rows
    if name == "modified_date":
        return lambda pk: rows[pk][0]
    if name == "created_date":
        return lambda pk: rows[pk][1]
    if name == "pk":
        return lambda pk: pk
    decoded: dict[int, Any] = {}

    def field_key(pk: int) -> Any:
        # NULLs sort last ascending and first descending, as PostgreSQL does.
        if pk not in decoded:
            decoded[pk] = orjson.loads(rows[pk][2])[name]
        value = decoded[pk]
        return (value is None, _comparable(value))

    return field_key


def _range(lo: int | None, hi: int | None) -> tuple[int, int]:
    return (_LOWEST if lo is None else lo), (_HIGHEST if hi is None else hi)


def _positions(index: SortedInts, lo: int, hi: int) -> tuple[int, int]:
    """Where ``[lo, hi)`` starts and stops in ``index`` (empty when ``lo >= hi``)."""
    start = index.rank(lo)
    return start, max(start, index.rank(hi))


def _candidates(store: Store, query: Query) -> tuple[list[int], str]:
    """The pks in both ranges, read from the narrower index, and that index's order."""
    pk_lo, pk_hi = _range(query.pk_lo, query.pk_hi)
    md_lo, md_hi = _range(query.modified_lo, query.modified_hi)
    pk_start, pk_stop = _positions(store.pks, pk_lo, pk_hi)
    md_start, md_stop = _positions(store.changes, md_lo << PK_BITS, md_hi << PK_BITS)
    if pk_stop - pk_start <= md_stop - md_start:
        pks = store.pks.between(pk_start, pk_stop)
        if query.modified_lo is not None or query.modified_hi is not None:
            rows = store.rows
            pks = [pk for pk in pks if md_lo <= rows[pk][0] < md_hi]
        return pks, "pk"
    pks = [key & PK_MASK for key in store.changes.between(md_start, md_stop)]
    if query.pk_lo is not None or query.pk_hi is not None:
        pks = [pk for pk in pks if pk_lo <= pk < pk_hi]
    return pks, "modified_date"


def _listing(store: Store, query: Query, name: str, descending: bool) -> Listing | None:
    """The answer straight from one index, when no row needs checking; else None."""
    if query.predicates or query.created_lo is not None or query.created_hi is not None:
        return None
    by_pk = query.pk_lo is not None or query.pk_hi is not None
    by_md = query.modified_lo is not None or query.modified_hi is not None
    if name == "pk" and not by_md:
        lo, hi = _range(query.pk_lo, query.pk_hi)
        return Listing(store.pks, *_positions(store.pks, lo, hi), descending)
    if name == "modified_date" and not descending and not by_pk:
        lo, hi = _range(query.modified_lo, query.modified_hi)
        start, stop = _positions(store.changes, lo << PK_BITS, hi << PK_BITS)
        return Listing(store.changes, start, stop, packed=True)
    return None


def run_query(store: Store, query: Query, rng: random.Random | None) -> Sequence[int]:
    """pks matching ``query`` in result order. ``rng`` given means: shuffle ties."""
    name, descending = sort_of(query.sort)
    shuffle = rng is not None and name != "pk"
    if not shuffle and (listing := _listing(store, query, name, descending)) is not None:
        return listing
    pks, natural = _candidates(store, query)
    if query.created_lo is not None or query.created_hi is not None:
        rows = store.rows
        lo, hi = _range(query.created_lo, query.created_hi)
        pks = [pk for pk in pks if lo <= rows[pk][1] < hi]
    if query.predicates:
        customers = [c for c in map(store.customer, pks) if c is not None]
        for predicate in query.predicates:
            customers = [c for c in customers if predicate(c)]
        pks = [c.data["pk"] for c in customers]
    if shuffle:
        assert rng is not None
        rng.shuffle(pks)
        pks.sort(key=_key_of(store, name), reverse=descending)
    elif not (name == natural and not descending):
        if natural != "pk":
            pks.sort()
        if name == "pk":
            if descending:
                pks.reverse()  # pks are unique: descending is ascending reversed
        else:
            pks.sort(key=_key_of(store, name), reverse=descending)
    return pks
