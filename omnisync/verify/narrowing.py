"""Narrowing the ranges whose counts differ, on two dimensions, down to the customers that differ.

Everything before the cut (see ``counts.py``) is compared by counts, as two binary trees over
the same customers: one of ``pk`` ranges, one of ``modified_date`` ranges. The root of both is
the whole older part (one count); each tree is split once even when the root is equal, because
a customer missing from the lake and another deleted from Omnitron cancel in the root but seldom
in both halves of both dimensions. Below that, a range is split only while its server count and
its lake count differ; when both fit one page, the range is listed (one request, its ``count``
and its rows together) and compared customer by customer: a pk on one side only, or another
``modified_date``, makes that pk a *candidate*. Only a range's right half is counted: the left
half's count is the parent's less the right's.

Where to split: at the median of the lake's pks (or modified_dates) in the range, so each half
holds half of the lake's rows; where the lake has too few rows to tell (customers missing from
it), at the median of a page of the server's answer for the range. Cost: each differing customer
costs about one request per level, and there are about log2(N / page) levels: O(d·log(N/page)),
two requests for a root that is equal. Ranges whose differences cancel in both dimensions are
invisible to counts: the exact comparisons (the rolling audit's slice, :meth:`Narrowing.audit`,
and ``--full``) see them.

On a date-only server the ``modified_date`` tree is not used: a bare date there is midnight in
a time zone the client does not know, so the lake's side of a date range cannot be counted
exactly. The pk tree and the exact comparisons are the same.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from omnisync.client import CustomerQuery, Page
from omnisync.state.times import from_us
from omnisync.verify.counts import Cut, ServerSide, Versions, versions_in


@dataclass
class OlderLake:
    """The lake's rows before the cut (the pks not listed after it): sorted by pk, and their
    modified_dates sorted on their own (with the pks in that order)."""

    pks: np.ndarray
    modified: np.ndarray
    by_modified_pks: np.ndarray
    by_modified: np.ndarray

    @classmethod
    def of(cls, pks: np.ndarray, modified: np.ndarray) -> OlderLake:
        order = np.argsort(modified, kind="stable")
        return cls(pks, modified, pks[order], modified[order])

    def pk_slice(self, lo: int | None, hi: int | None) -> slice:
        start = 0 if lo is None else int(np.searchsorted(self.pks, lo))
        end = len(self.pks) if hi is None else int(np.searchsorted(self.pks, hi))
        return slice(start, end)

    def modified_slice(self, lo: int | None, hi: int | None) -> slice:
        start = 0 if lo is None else int(np.searchsorted(self.by_modified, lo))
        end = len(self.by_modified) if hi is None else int(np.searchsorted(self.by_modified, hi))
        return slice(start, end)


Bounds = tuple[int | None, int | None]


def compare(server: Versions, pks: np.ndarray, modified: np.ndarray) -> set[int]:
    """The pks on which a listed range and the lake's rows of that range disagree."""
    lake: dict[int, int] = {}
    differ: set[int] = set()
    for pk, stamp in zip(pks.tolist(), modified.tolist(), strict=True):
        if pk in lake:
            differ.add(pk)  # two rows for one pk
        lake[pk] = stamp
    differ.update(pk for pk in server.keys() ^ lake.keys())
    differ.update(pk for pk in server.keys() & lake.keys() if server[pk] != lake[pk])
    return differ


def _median(values: np.ndarray) -> int | None:
    """A split point with values on both sides (the median of the distinct values), or None."""
    distinct = np.unique(values)
    return int(distinct[len(distinct) // 2]) if len(distinct) >= 2 else None


class Narrowing:
    """The two trees' descent; ``candidates`` collects the pks found to differ."""

    def __init__(self, server: ServerSide, cut: Cut, lake: OlderLake, page_size: int) -> None:
        self.server = server
        self.cut = cut
        self.lake = lake
        self.page = page_size
        self.candidates: set[int] = set()
        self.ranges_listed = 0
        #: Omnitron's versions (before the cut) of the candidates, as their ranges listed them
        self.listed: Versions = {}
        #: the candidates a whole listing of a pk range found (a pk absent from such a listing
        #: is before the cut nowhere; one absent from a modified_date range may be elsewhere)
        self.by_range: set[int] = set()

    # -- pk ranges ----------------------------------------------------------------------------
    def _pk_query(self, lo: int | None, hi: int | None) -> CustomerQuery:
        return self.cut.older(pk_gte=lo, pk_lt=hi)

    def _held(self, query: CustomerQuery, lake_count: int, sample: bool) -> tuple[int, Page | None]:
        """A range's server count, asked with a whole page when the lake's side of it fits one:
        if the range then differs, its answer is already the listing (no second request). With
        ``sample`` (its parent differs), a larger range is asked with a whole page too, for the
        same one request: the customers it happens to list are compared (:meth:`_sampled`)."""
        if lake_count <= self.page or sample:
            answer = self.server.page(query, self.page)
            self._sampled(answer.results)
            return answer.count, answer if lake_count <= self.page else None
        return self.server.count(query), None

    def _sampled(self, results: list[dict[str, object]]) -> None:
        """Positive evidence from a part of a range's answer: a customer listed that the lake's
        older rows do not hold, or hold at another version (or twice), is a candidate, with
        Omnitron's version. Nothing is concluded about the customers not listed."""
        for pk, stamp in versions_in(results).items():
            lo, hi = np.searchsorted(self.lake.pks, [pk, pk + 1])
            if hi - lo != 1 or int(self.lake.modified[lo]) != stamp:
                self.candidates.add(pk)
                self.listed[pk] = stamp

    def _found_by_pk(self) -> tuple[np.ndarray, np.ndarray]:
        """The pks, sorted, of the differences already found: those the lake's older rows hold
        (deleted, stale or duplicated) and those Omnitron listed (missing or stale)."""
        found = np.fromiter(self.candidates, dtype=np.int64, count=len(self.candidates))
        in_lake = self.lake.pks[np.isin(self.lake.pks, found)]  # a duplicate counts its rows
        in_server = np.sort(np.fromiter(self.listed.keys(), dtype=np.int64))
        return in_lake, in_server

    def by_pk(self, total: int) -> None:
        """Descend the pk tree from the root, whose server count is ``total``."""
        pending: list[tuple[Bounds, int, bool, Page | None]] = [((None, None), total, True, None)]
        while pending:
            (lo, hi), count, root, answer = pending.pop()
            rows = self.lake.pk_slice(lo, hi)
            lake_count = rows.stop - rows.start
            in_lake, in_server = self._found_by_pk()
            expected = lake_count - _within(in_lake, lo, hi) + _within(in_server, lo, hi)
            if count == expected and not root:
                continue  # every difference its count shows is found already
            mid: int | None = None
            if answer is None and count <= self.page and lake_count <= self.page and not root:
                answer = self.server.page(self._pk_query(lo, hi), self.page)
            if answer is not None:
                if _whole(answer.count, answer.has_next, len(answer.results)):
                    self._leaf(answer.results, self.lake.pks[rows], self.lake.modified[rows], True)
                    continue
                self._sampled(answer.results)
                mid = _median(np.array(sorted(_pks(answer.results)), dtype=np.int64))
            if mid is None:
                mid = _median(self.lake.pks[rows])
            if mid is None:
                answer = self.server.page(self._pk_query(lo, hi), self.page)
                if _whole(answer.count, answer.has_next, len(answer.results)):
                    self._leaf(answer.results, self.lake.pks[rows], self.lake.modified[rows], True)
                    continue
                self._sampled(answer.results)
                mid = _median(np.array(sorted(_pks(answer.results)), dtype=np.int64))
                if mid is None:  # one pk cannot be split further: list it as it is
                    self._read_whole(self._pk_query(lo, hi), rows, by_pk=True)
                    continue
            right_rows = self.lake.pk_slice(mid, hi)
            right, held = self._held(
                self._pk_query(mid, hi), right_rows.stop - right_rows.start, count != expected
            )
            pending.append(((mid, hi), right, False, held))
            pending.append(((lo, mid), count - right, False, None))

    # -- modified_date ranges -----------------------------------------------------------------
    def _modified_query(self, lo: int | None, hi: int | None) -> CustomerQuery:
        query = self.cut.older()
        if lo is not None:
            query = query.with_(modified_gte=from_us(lo))
        cut = self.cut.param
        if hi is not None and (not isinstance(cut, dt.datetime) or from_us(hi) < cut):
            query = query.with_(modified_lt=from_us(hi))
        return query

    def _explained(self) -> tuple[np.ndarray, np.ndarray]:
        """The modified_dates, sorted, of the differences already found: the candidates' lake
        rows, and their versions in Omnitron."""
        found = np.fromiter(self.candidates, dtype=np.int64, count=len(self.candidates))
        in_lake = np.sort(self.lake.by_modified[np.isin(self.lake.by_modified_pks, found)])
        in_server = np.sort(np.fromiter(self.listed.values(), dtype=np.int64))
        return in_lake, in_server

    def by_modified(self, total: int) -> None:
        """Descend the modified_date tree from the root (datetime filters only). Differences the
        pk tree already found are accounted for: a range descends only for differences its
        counts do not explain yet, so a customer is not paid for twice."""
        pending: list[tuple[Bounds, int, bool, Page | None]] = [((None, None), total, True, None)]
        while pending:
            (lo, hi), count, root, answer = pending.pop()
            rows = self.lake.modified_slice(lo, hi)
            lake_count = rows.stop - rows.start
            in_lake, in_server = self._explained()
            expected = lake_count - _within(in_lake, lo, hi) + _within(in_server, lo, hi)
            if count == expected and not root:
                continue
            mid: int | None = None
            if answer is None and (
                (count <= self.page and lake_count <= self.page and not root)
                or _median(self.lake.by_modified[rows]) is None
            ):
                answer = self.server.page(self._modified_query(lo, hi), self.page)
            if answer is not None:
                if _whole(answer.count, answer.has_next, len(answer.results)):
                    self._leaf(
                        answer.results,
                        self.lake.by_modified_pks[rows],
                        self.lake.by_modified[rows],
                        False,
                    )
                    continue
                self._sampled(answer.results)
                sample = np.array(sorted(_stamps(answer.results)), dtype=np.int64)
                mid = _median(sample)
                if mid is None:
                    mid = _median(self.lake.by_modified[rows])
                if mid is None:  # one instant shared by more than a page: list it by pk
                    self._read_whole(self._modified_query(lo, hi), rows, by_pk=False)
                    continue
            else:
                mid = _median(self.lake.by_modified[rows])
            assert mid is not None
            right_rows = self.lake.modified_slice(mid, hi)
            right, held = self._held(
                self._modified_query(mid, hi), right_rows.stop - right_rows.start, count != expected
            )
            pending.append(((mid, hi), right, False, held))
            pending.append(((lo, mid), count - right, False, None))

    # -- the rolling audit --------------------------------------------------------------------
    def audit(self, start: int | None, rows: int) -> dict[str, int | None]:
        """Compare exactly the slice of about ``rows`` of the lake's older customers from pk
        ``start`` on: Omnitron's customers of that pk range are listed whole and compared one
        by one, so differences that cancel in every count are seen there. Returns the slice
        (``to`` None: it reached the end, and the next slice starts from the beginning)."""
        first = 0 if start is None else int(np.searchsorted(self.lake.pks, start))
        if first >= len(self.lake.pks):
            start, first = None, 0
        last = first + max(1, rows)
        end = int(self.lake.pks[last]) if last < len(self.lake.pks) else None
        chunk = self.lake.pk_slice(start, end)
        self._read_whole(self._pk_query(start, end), chunk, by_pk=True)
        return {"from": start, "to": end, "compared": chunk.stop - chunk.start}

    # -- leaves -------------------------------------------------------------------------------
    def _leaf(
        self, results: list[dict[str, object]], pks: np.ndarray, stamps: np.ndarray, by_pk: bool
    ) -> None:
        self._compared(versions_in(results), pks, stamps, by_pk)

    def _compared(self, listed: Versions, pks: np.ndarray, stamps: np.ndarray, by_pk: bool) -> None:
        self.ranges_listed += 1
        order = np.argsort(pks, kind="stable")
        differ = compare(listed, pks[order], stamps[order])
        self.candidates |= differ
        if by_pk:
            self.by_range |= differ
        self.listed.update((pk, listed[pk]) for pk in differ if pk in listed)

    def _read_whole(self, query: CustomerQuery, rows: slice, by_pk: bool) -> None:
        listed = self.server.read_all(query)
        pks = self.lake.pks[rows] if by_pk else self.lake.by_modified_pks[rows]
        stamps = self.lake.modified[rows] if by_pk else self.lake.by_modified[rows]
        self._compared(listed, pks, stamps, by_pk)


def _within(values: np.ndarray, lo: int | None, hi: int | None) -> int:
    """How many of ``values`` (sorted) lie in ``[lo, hi)``."""
    start = 0 if lo is None else int(np.searchsorted(values, lo))
    end = len(values) if hi is None else int(np.searchsorted(values, hi))
    return end - start


def _whole(count: int, has_next: bool, received: int) -> bool:
    """Whether one answer holds its whole range (a capped ``limit`` shows as a ``next``)."""
    return not has_next and count <= received


def _pks(results: list[dict[str, object]]) -> list[int]:
    return list(versions_in(results))


def _stamps(results: list[dict[str, object]]) -> list[int]:
    return list(versions_in(results).values())
