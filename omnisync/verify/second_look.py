"""Step 5 of a verification: the customers found to differ are read again, then classified.

A candidate not settled by a listing that has just read it is read again, by ``pk`` range with
no date filter: one Omnitron now has modified after the watermark is *behind*, one whose
difference is gone is dropped (*vanished*). So an edit made while verify runs never becomes a
reported difference.

Candidates that a whole listing of their ``pk`` range before the cut did not list (in the lake,
not in Omnitron's answer) can be settled together by one listing of everything at or after the
cut, when their ``pk`` ranges would take more than one request: such a customer was not before
the cut when its range was listed, so if it exists it was at or after the cut then, and still is
(a ``modified_date`` only grows): one missing from this listing too is gone. This holds only
for a pk range's listing: a candidate a ``modified_date`` range did not list may be anywhere
before the cut (its date is another), so it is read by its pk range like the rest.
"""

from __future__ import annotations

import numpy as np

from omnisync.client import CustomerQuery
from omnisync.sync.absence import Absence, ask_absent
from omnisync.verify.counts import Cut, LakeSide, ServerSide, Versions
from omnisync.verify.report import KINDS


def classify(server: int | None, lake: list[int], watermark_us: int) -> str | None:
    """What a customer's difference is, given Omnitron's version now and the lake's rows
    (None: there is no difference)."""
    if server is None:
        return "deleted" if lake else None
    if lake == [server]:
        return None
    if server > watermark_us:
        return "behind"
    if not lake:
        return "missing"
    if len(lake) > 1:
        return "duplicated"
    return "stale"


def _gone(server: ServerSide, pk: int) -> bool:
    """Whether Omnitron confirms ``pk`` absent by two answers (``absence.py``)."""
    answer, requests = ask_absent(server.client, pk)
    server.requests += requests - 1  # its URL is no list request
    return answer is Absence.GONE


def groups(lake: LakeSide, pks: list[int], page_size: int) -> list[list[int]]:
    """``pks`` (sorted) in neighbouring groups, each a pk range holding at most half a page of
    the lake's rows (one request each)."""
    found: list[list[int]] = []
    for pk in pks:
        if found and len(found[-1]) < page_size // 2:
            lo, hi = np.searchsorted(lake.pks, [found[-1][0], pk + 1])
            if hi - lo <= page_size // 2:
                found[-1].append(pk)
                continue
        found.append([pk])
    return found


def second_look(
    server: ServerSide,
    lake: LakeSide,
    cut: Cut,
    candidates: set[int],
    known: Versions,
    watermark_us: int,
    versions: dict[int, int],
    by_range: set[int] | None = None,
) -> tuple[dict[str, list[int]], int, int]:
    """Read every candidate again and classify it; returns (found by kind, behind, vanished),
    and puts Omnitron's version of each missing or stale customer in ``versions``. ``known``:
    the versions Omnitron's answers listed (a candidate not in it was listed by none);
    ``by_range``: the candidates a whole pk range's listing before the cut did not hold."""
    page_size = server.page_size
    now: Versions = {}
    ahead = sorted(candidates)
    absent = [pk for pk in ahead if pk not in known and pk in (by_range or ())]
    if cut.param is not None and len(groups(lake, absent, page_size)) > 1:
        now.update(server.read_all(cut.newer()))
        settled = set(absent)
        ahead = [pk for pk in ahead if pk not in settled]
    for group in groups(lake, ahead, page_size):
        query = CustomerQuery(pk_gte=group[0], pk_lt=group[-1] + 1, sort=None)
        now.update(server.read_all(query))
    found: dict[str, list[int]] = {kind: [] for kind in KINDS}
    behind = vanished = 0
    for pk in sorted(candidates):
        if pk not in now and pk in server.unreadable:
            vanished += 1  # listed, but its date cannot be read: not judged, never deleted
            continue
        kind = classify(now.get(pk), lake.versions_of(pk), watermark_us)
        if kind == "deleted" and server.pk_unreadable and not _gone(server, pk):
            vanished += 1  # a listed pk could not be read: it may be this one; not judged
            continue
        if kind == "behind":
            behind += 1
        elif kind is None:
            vanished += 1
        else:
            found[kind].append(pk)
            if kind in ("missing", "stale"):
                versions[pk] = now[pk]
    return found, behind, vanished
