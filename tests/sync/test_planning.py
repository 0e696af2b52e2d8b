"""Planning (G1): windows that cover the span exactly, on every server Omnitron's API allows."""

from __future__ import annotations

import datetime as dt
import itertools
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omnisync.sync import planning
from omnisync.sync.planning import balanced, plan_windows
from tests.client.fake_omnitron import BASE, FakeOmnitron, customers, offsets

DAY = dt.timedelta(days=1)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=customers(), date_only=st.booleans(), offset=offsets, target=st.integers(5, 80))
def test_planned_windows_cover_the_span_exactly_and_stay_near_the_target(
    rows: dict[int, dt.datetime], date_only: bool, offset: float, target: int
) -> None:
    server = FakeOmnitron(rows, order="newest-first", date_only=date_only, utc_offset_hours=offset)
    hi = BASE + 4 * DAY
    middle_of = planning._middle
    splits: list[bool] = []  # each span the planner halves

    def halved(a: dt.datetime, b: dt.datetime, datetimes: bool) -> dt.datetime | None:
        middle = middle_of(a, b, datetimes)
        splits.append(middle is not None)
        return middle

    for lo, first_pages in itertools.product((None, BASE + dt.timedelta(hours=7)), (None, {})):
        splits.clear()
        asked = len(server.requests)
        with server.client() as client, mock.patch.object(planning, "_middle", halved):
            windows = plan_windows(client, lo, hi, not date_only, target, first_pages, 1000)
        # exact datetime bounds: a halved span's upper half is the rest of its count, one
        # request a split; a date-only server's padded halves overlap, so both are counted, as
        # are the halves of an incremental's first page (open above, so not the span's count)
        per_split = 2 if date_only else 1
        open_above = lo is not None and first_pages is not None and splits[:1] == [True]
        extra = 1 if open_above and not date_only else 0
        assert len(server.requests) - asked == 1 + per_split * sum(splits) + extra
        assert windows[0][0] == lo and windows[-1][1] == hi
        assert all(a[1] == b[0] for a, b in itertools.pairwise(windows))
        if not date_only:
            for a, b in windows:
                inside = sum(1 for s in rows.values() if (a is None or s >= a) and s < b)
                assert (
                    inside <= target
                    or b - (a or b) <= dt.timedelta(seconds=1)
                    or (len({s for s in rows.values() if (a is None or s >= a) and s < b}) == 1)
                )
    counts = [r for r in server.requests if r.get("limit") == "1"]
    assert all("sort" not in r for r in counts), "planning never relies on sort"


def _parts(counts: list[int]) -> list[tuple[dt.datetime, dt.datetime, int]]:
    return [(BASE + i * DAY, BASE + (i + 1) * DAY, count) for i, count in enumerate(counts)]


def _fewest(counts: list[int], target: int) -> int:
    """The fewest runs ``counts`` can be cut into, each within ``target`` or a lone part."""
    fewest = [0] + [len(counts) + 1] * len(counts)
    for end in range(1, len(counts) + 1):
        for start in range(end):
            if end - start == 1 or sum(counts[start:end]) <= target:
                fewest[end] = min(fewest[end], fewest[start] + 1)
    return fewest[-1]


def _least_largest(counts: list[int], groups: int) -> int:
    """The least largest sum of ``counts`` cut into at most ``groups`` runs (every cut tried)."""
    if not counts:
        return 0
    if groups == 1:
        return sum(counts)
    return min(
        max(sum(counts[:cut]), _least_largest(counts[cut:], groups - 1))
        for cut in range(1, len(counts) + 1)
    )


@settings(max_examples=300, deadline=None)
@given(counts=st.lists(st.integers(0, 60), min_size=1, max_size=8), target=st.integers(1, 100))
def test_parts_are_joined_into_the_fewest_windows_with_the_least_largest(
    counts: list[int], target: int
) -> None:
    """A plan's parts are joined into as few windows as fit ``target`` (a part over it alone),
    cut where the largest of that many windows is the least: the largest sets a long sync's
    peak memory (joined as they came, parts [2, 13, 1] within 15 made
    windows of 15 and 1, not 2 and 14)."""
    windows = balanced(_parts(counts), target)
    assert windows[0][0] == BASE
    assert windows[-1][1] == BASE + len(counts) * DAY
    assert all(x[1] == y[0] for x, y in itertools.pairwise(windows)), "contiguous, in order"
    sizes = [count for _, _, count in windows]
    assert sum(sizes) == sum(counts)
    spans = [round((b - a) / DAY) for a, b, _ in windows]
    assert all(size <= target or span == 1 for size, span in zip(sizes, spans, strict=True))
    assert len(windows) == _fewest(counts, target)
    assert max(sizes) == _least_largest(counts, len(windows))
