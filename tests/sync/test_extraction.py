"""G1 for one window and for a plan, on every server the API document allows.

The document promises ``modified_date`` and ``pk`` range filters, ``count`` and ``next``; it says
nothing of ``sort``, of how far ``limit`` may be capped, or of the time zone in which a date-only
server reads a bare date. hypothesis tries many servers that differ in exactly those ways.
"""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omnisync.sync.extraction import extract_window, server_bounds, split_points
from omnisync.sync.planning import plan_windows
from tests.sync.fake_omnitron import FakeOmnitron

BASE = dt.datetime(2024, 3, 9, 20, 0, tzinfo=dt.UTC)
orders = st.sampled_from(["pk", "newest-first", "pk-descending", "random"])
offsets = st.sampled_from([-12.0, -5.0, 0.0, 3.0, 5.5, 14.0])


@st.composite
def customers(draw: st.DrawFn) -> dict[int, dt.datetime]:
    """Customers over three days, many sharing one modified_date (bulk updates)."""
    pks = draw(st.sets(st.integers(1, 5000), min_size=0, max_size=120))
    shared = BASE + dt.timedelta(minutes=draw(st.integers(0, 3000)))
    rows = {}
    for pk in sorted(pks):
        if draw(st.booleans()):
            rows[pk] = shared
        else:
            rows[pk] = BASE + dt.timedelta(seconds=draw(st.integers(0, 3 * 86_400)))
    return rows


def window_of(draw: st.DrawFn) -> tuple[dt.datetime | None, dt.datetime]:
    a = draw(st.integers(-3600, 3 * 86_400))
    b = draw(st.integers(a + 1, 3 * 86_400 + 7200))
    lo = None if draw(st.booleans()) else BASE + dt.timedelta(seconds=a)
    return lo, BASE + dt.timedelta(seconds=b)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=customers(),
    order=orders,
    cap=st.integers(1, 40),
    date_only=st.booleans(),
    offset=offsets,
    data=st.data(),
)
def test_a_window_yields_every_customer_in_it_once_whatever_the_server_order_cap_and_zone(
    rows: dict[int, dt.datetime],
    order: str,
    cap: int,
    date_only: bool,
    offset: float,
    data: st.DataObject,
) -> None:
    lo, hi = window_of(data.draw)
    server = FakeOmnitron(rows, order=order, cap=cap, date_only=date_only, utc_offset_hours=offset)  # type: ignore[arg-type]
    with server.client(page_size=50) as client:
        got = [r["pk"] for page in extract_window(client, lo, hi, not date_only) for r in page]
    want = sorted(pk for pk, stamp in rows.items() if (lo is None or stamp >= lo) and stamp < hi)
    assert sorted(got) == want
    assert len(got) == len(set(got)), "no version is yielded twice"
    assert all("page" not in request for request in server.requests), "no page is followed"


def test_a_server_that_ignores_sort_is_read_by_pk_ranges_and_remembered() -> None:
    rows = {pk: BASE + dt.timedelta(seconds=pk % 97) for pk in range(1, 1001)}
    server = FakeOmnitron(rows, order="newest-first", cap=100)
    with server.client(page_size=100) as client:
        got = [r["pk"] for page in extract_window(client, None, BASE + DAY, True) for r in page]
        assert client.sort_honoured is False
    assert sorted(got) == list(range(1, 1001))
    assert len(server.requests) < 3 * 1000 / 100, "splitting costs about two requests a page"


def test_a_server_that_honours_sort_costs_one_request_per_page() -> None:
    rows = dict.fromkeys(range(1, 1001), BASE)
    server = FakeOmnitron(rows, order="pk", cap=100)
    with server.client(page_size=100) as client:
        pages = list(extract_window(client, None, BASE + DAY, True))
    assert sum(len(p) for p in pages) == 1000
    assert len(server.requests) == 10  # one request per page: the last one has no next


def test_an_ordered_looking_page_from_an_unordered_server_is_caught_by_the_count() -> None:
    """With pages of two rows, a server ignoring sort answers in pk order now and then; the
    next range's count exposes the rows that claim skipped."""
    rows = {pk: BASE + dt.timedelta(seconds=(pk * 7919) % 1000) for pk in range(1, 301)}
    server = FakeOmnitron(rows, order="random", cap=2, seed=3)
    with server.client(page_size=2) as client:
        got = [r["pk"] for page in extract_window(client, None, BASE + DAY, True) for r in page]
    assert sorted(got) == list(range(1, 301))


@pytest.mark.parametrize("offset", [-12.0, -5.0, 0.0, 3.0, 14.0])
def test_date_bounds_contain_the_window_in_every_server_time_zone(offset: float) -> None:
    for minutes in range(0, 2 * 24 * 60, 37):
        lo = BASE + dt.timedelta(minutes=minutes)
        hi = lo + dt.timedelta(minutes=minutes % 500 + 1)
        gte, lt = server_bounds(lo, hi, datetimes=False)
        assert isinstance(gte, dt.date) and isinstance(lt, dt.date)
        server = FakeOmnitron({}, date_only=True, utc_offset_hours=offset)
        start, end = server._instant(gte.isoformat()), server._instant(lt.isoformat())
        assert start is not None and end is not None
        assert start <= lo and end >= hi


def test_split_points_always_shrink_the_range() -> None:
    assert split_points([], None, 10, 0) == [1]
    assert split_points([5], 5, 10, 1) == [6]
    cuts = split_points(list(range(100, 200)), 50, 1000, 100)
    assert all(50 < c < 200 for c in cuts) and cuts == sorted(set(cuts))


DAY = dt.timedelta(days=1)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=customers(), date_only=st.booleans(), offset=offsets, target=st.integers(5, 80))
def test_planned_windows_cover_the_span_exactly_and_stay_near_the_target(
    rows: dict[int, dt.datetime], date_only: bool, offset: float, target: int
) -> None:
    server = FakeOmnitron(rows, order="newest-first", date_only=date_only, utc_offset_hours=offset)
    hi = BASE + 4 * DAY
    for lo in (None, BASE + dt.timedelta(hours=7)):
        with server.client() as client:
            windows = plan_windows(client, lo, hi, not date_only, target)
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
    assert all("sort" not in r for r in server.requests), "planning never relies on sort"
