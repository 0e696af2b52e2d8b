"""The two sides that verify compares: what a reader of ``customers/`` sees, and what Omnitron
counts and lists.

**The lake side** reads the ``pk`` and ``modified_date`` columns of every Parquet file under
``customers/`` exactly as an analyst's reader finds them (hidden ``.``/``_`` files skipped, as
pyarrow, DuckDB and Spark skip them), never the state store's idea of what was written: a file
removed, truncated, rolled back or replaced behind omnisync's back changes these counts. A file
that cannot be read is itself a finding. Memory: two 64-bit integers per customer.

**The server side** asks only what the API documents (docs/omnitron-api.md): ``pk__gte``/``pk__lt``,
``modified_date__gte``/``__lt`` and the ``count`` of a list answer (asked with ``limit=1`` when
only the count is wanted). Every list request is counted, so the report can say what verify
cost. ``sort`` is never relied on and a capped ``limit`` changes nothing: a range is taken as
read whole only when its answer has no ``next`` and no more ``count`` than rows received.

**The cut.** The server is split once, by ``modified_date``, at a cut no later than the
watermark: the customers at or after it are listed whole (they are few: the newest page of the
lake, plus what changed since the watermark) and compared customer by customer; everything
before it is compared by counts. On a date-only server the cut is a bare date, which the server
reads as midnight in its own, unknown, time zone: the client never needs to know that instant,
because both parts are the server's own answers to the same date (its ``__gte`` listing and its
``__lt`` counts), and the lake is split by the pks listed, not by a time. The date is chosen
12 hours before the watermark's day so that, in any time zone, the cut is not after it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from omnisync.client import (
    CustomerQuery,
    DateFilterRejected,
    OmnitronClient,
    Page,
)
from omnisync.client.dates import WEST, parse_modified
from omnisync.client.paginator import Paginator
from omnisync.lake import LakeStorage
from omnisync.lake.errors import LakeDamaged, damage_in
from omnisync.state.times import to_us
from omnisync.sync import pk_spans

DATASET = "customers"

#: a server record reduced to what verify compares: pk -> modified_date (µs since the epoch)
Versions = dict[int, int]


@dataclass
class LakeSide:
    """Every row a reader of ``customers/`` sees, as sorted ``pks`` with their ``modified``
    (µs), plus the files that could not be read (path -> reason)."""

    pks: np.ndarray
    modified: np.ndarray
    files: int
    unreadable: dict[str, str] = field(default_factory=dict)

    @classmethod
    def read(cls, storage: LakeStorage, whole: bool = False) -> LakeSide:
        """``whole``: read every column of each file, not only ``pk`` and ``modified_date``, so
        that a file damaged in another column (which a sync's merge reads) is unreadable too."""
        pks: list[np.ndarray] = []
        stamps: list[np.ndarray] = []
        unreadable: dict[str, str] = {}
        files = [path for path in storage.files(DATASET) if _visible(path)]
        for path in files:
            try:
                pk, stamp = _keys_of(storage, path, whole)
            except _Unreadable as exc:
                unreadable[path] = str(exc)
                continue
            pks.append(pk.to_numpy())
            stamps.append(stamp.cast(pa.int64()).to_numpy())
        all_pks = np.concatenate(pks) if pks else np.zeros(0, dtype=np.int64)
        all_stamps = np.concatenate(stamps) if stamps else np.zeros(0, dtype=np.int64)
        order = np.argsort(all_pks, kind="stable")
        return cls(all_pks[order], all_stamps[order], len(files), unreadable)

    @staticmethod
    def still_unreadable(storage: LakeStorage, paths: list[str]) -> list[str]:
        """Those of ``paths`` that still exist and no reader can read, every column read: what a
        repair may remove (a file replaced since the report, or read whole now, is kept)."""
        broken = []
        for path in paths:
            if not storage.exists(path):
                continue
            try:
                _keys_of(storage, path, whole=True)
            except _Unreadable:
                broken.append(path)
        return broken

    def __len__(self) -> int:
        return len(self.pks)

    def versions_of(self, pk: int) -> list[int]:
        """Every modified_date the lake holds for ``pk`` (more than one is a duplicate)."""
        lo, hi = np.searchsorted(self.pks, [pk, pk + 1])
        return [int(v) for v in self.modified[lo:hi]]


def _visible(path: str) -> bool:
    """Whether readers see the file: they skip names (and folders) starting with ``.`` or ``_``."""
    return not any(part.startswith((".", "_")) for part in path.split("/")[1:])


@dataclass(frozen=True)
class Cut:
    """Where the server is split by ``modified_date``: ``param`` is what is sent (a datetime, or
    a date on date-only servers; None: nothing is before the cut)."""

    param: dt.date | dt.datetime | None
    datetimes: bool

    def newer(self) -> CustomerQuery:
        """The customers at or after the cut."""
        return CustomerQuery(modified_gte=self.param, sort=None)

    def older(self, **bounds: Any) -> CustomerQuery:
        """The customers before the cut, within ``bounds`` (CustomerQuery fields)."""
        return CustomerQuery(modified_lt=self.param, sort=None).with_(**bounds)


def choose_cut(at: dt.datetime | None, datetimes: bool) -> Cut:
    """The cut to send for an instant ``at`` (None: everything is listed). On a date-only server
    a bare date ``D`` is an instant between ``D - 14 h`` and ``D + 12 h`` (UTC): ``D`` is the
    day of ``at - 12 h``, so the cut is never later than ``at``."""
    if at is None:
        return Cut(None, datetimes)
    if datetimes:
        return Cut(at, datetimes)
    return Cut((at - WEST).astimezone(dt.UTC).date(), datetimes)


class ServerSide:
    """Omnitron's counts and listings, each list request counted in ``requests``."""

    def __init__(self, client: OmnitronClient, page_size: int) -> None:
        self.client = client
        self.page_size = page_size
        self.requests = 0
        #: pks Omnitron listed with a modified_date that cannot be read: present, so never
        #: "deleted" (the sync quarantines them; a repair must not take them out of the lake)
        self.unreadable: set[int] = set()
        #: whether an answer held a record whose pk cannot be read: absence from a listing is
        #: then no proof (that record may be the candidate), so "deleted" is asked pk by pk
        self.pk_unreadable = False
        #: None until a date filter was sent; then whether datetimes were accepted
        self.datetimes: bool | None = None

    def page(self, query: CustomerQuery, limit: int) -> Page:
        """One list answer (``count`` and up to ``limit`` rows)."""
        self.requests += 1
        page = next(self.client.list_customers(query, limit), None)
        if page is None:
            return Page(1, 0, [], False)
        self.pk_unreadable |= pk_spans.listed_pks(page.results) is None
        return page

    def count(self, query: CustomerQuery) -> int:
        return self.page(query, 1).count

    def detect_datetimes(self, at: dt.datetime) -> Page:
        """The first page of the customers at or after ``at``, asked with a datetime; on a
        date-only server (400 "Enter a valid date.") ``datetimes`` turns False and the caller
        asks with a date. The answer is the start of :meth:`read_all`, so the probe costs one
        request only on date-only servers."""
        try:
            page = self.page(CustomerQuery(modified_gte=at, sort=None), self.page_size)
        except DateFilterRejected:
            self.datetimes = False
            raise
        self.datetimes = True
        return page

    def list_customers(
        self,
        query: CustomerQuery,
        page_size: int | None = None,
        before_send: Callable[[], None] | None = None,
    ) -> Iterator[Page]:
        """The client's listing, each request counted (what the paginator reads through)."""
        self.requests += 1
        return self.client.list_customers(query, page_size, before_send)

    def read_all(self, query: CustomerQuery, first: Page | None = None) -> Versions:
        """Every customer matching ``query`` (pk -> modified_date µs; ``first``: its first
        answer, already received), read by the client's paginator: pk ranges within the
        query's own, each read whole on one page, so no page number is followed and no order is
        assumed. Records without a readable pk or modified_date are skipped (the sync
        quarantines them; they are not in the lake)."""
        found: Versions = {}
        for results in Paginator(self, self.page_size).pages(query, first):
            received = versions_in(results)
            found.update(received)
            pks = {pk_spans.readable_pk(record) for record in results}
            self.pk_unreadable |= None in pks
            self.unreadable.update(pk for pk in pks if pk is not None and pk not in received)
        return found

    def version(self, pk: int) -> int | None:
        """The current modified_date (µs) of customer ``pk``, or None if Omnitron has none."""
        page = self.page(CustomerQuery(pk_gte=pk, pk_lt=pk + 1, sort=None), 1)
        return versions_in(page.results).get(pk)


def versions_in(records: list[Any]) -> Versions:
    found: Versions = {}
    for record in records:
        if not isinstance(record, dict):
            continue
        pk = record.get("pk")
        stamp = parse_modified(record.get("modified_date"))
        if isinstance(pk, int) and not isinstance(pk, bool) and stamp is not None:
            found[pk] = to_us(stamp)
    return found


class _Unreadable(Exception):
    """A file of ``customers/`` whose content no reader can read (the message says why)."""


def _keys_of(
    storage: LakeStorage, path: str, whole: bool
) -> tuple[pa.ChunkedArray, pa.ChunkedArray]:
    """The pks and modified_dates of one file; :class:`_Unreadable` when its content cannot be
    read. A failure to read it now (a permission, a timeout, memory) is raised as it is: it says
    nothing of the file, and a repair must not remove a healthy file for it."""
    try:
        with storage.parquet_file(path) as parquet:
            table = parquet.read(columns=None if whole else ["pk", "modified_date"])
        if not {"pk", "modified_date"} <= set(table.schema.names):
            raise ValueError("it has no pk or no modified_date column")
        pk = table.column("pk").cast(pa.int64())
        stamp = table.column("modified_date").cast(pa.timestamp("us", tz="UTC"))
        if pk.null_count or stamp.null_count:
            raise ValueError("it has rows without a pk or a modified_date")
    except Exception as exc:
        if isinstance(exc, LakeDamaged) and exc.__cause__ is not None:
            cause: BaseException = exc.__cause__
        elif isinstance(exc, ValueError) or damage_in(exc):  # ArrowInvalid is a ValueError
            cause = exc
        else:
            raise
        raise _Unreadable(f"{type(cause).__name__}: {cause}"[:300]) from None
    return pk, stamp
