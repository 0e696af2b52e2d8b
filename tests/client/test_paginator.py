"""The paginator (G1): a window read by pk ranges, on every server Omnitron's API allows.

The API promises (docs/omnitron-api.md) ``modified_date`` and ``pk`` range filters, ``count`` and ``next``; it says
nothing of ``sort``, of how far ``limit`` may be capped, or of the time zone in which a date-only
server reads a bare date. hypothesis tries many servers that differ in exactly those ways, and
that create, update and delete customers between the answers the paginator reads.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omnisync.client import CustomerQuery, OmnitronClient, Paginator
from omnisync.client.dates import DAY, server_bounds
from omnisync.client.paginator import Density, PkRange, carve, split_points
from tests.client.fake_omnitron import BASE, Change, FakeOmnitron, Order, customers, offsets

orders = st.sampled_from(["pk", "newest-first", "pk-descending", "random"])


def changed(
    client: OmnitronClient,
    lo: dt.datetime | None,
    hi: dt.datetime,
    datetimes: bool,
    in_flight: int = 1,
) -> Iterator[list[dict[str, Any]]]:
    return Paginator(client, in_flight=in_flight).changed(lo, hi, datetimes)


#: requests at once: one, and the next ranges asked before the answers to the ones before them
in_flights = st.sampled_from([1, 2, 3])


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
    in_flight=in_flights,
    data=st.data(),
)
def test_a_window_yields_every_customer_in_it_once_whatever_the_server_order_cap_and_zone(
    rows: dict[int, dt.datetime],
    order: str,
    cap: int,
    date_only: bool,
    offset: float,
    in_flight: int,
    data: st.DataObject,
) -> None:
    lo, hi = window_of(data.draw)
    server = FakeOmnitron(rows, order=order, cap=cap, date_only=date_only, utc_offset_hours=offset)  # type: ignore[arg-type]
    with server.client(page_size=50) as client:
        pages = changed(client, lo, hi, not date_only, in_flight)
        got = [r["pk"] for page in pages for r in page]
    want = sorted(pk for pk, stamp in rows.items() if (lo is None or stamp >= lo) and stamp < hi)
    assert sorted(got) == want
    assert len(got) == len(set(got)), "no version is yielded twice"
    assert all("page" not in request for request in server.requests), "no page is followed"


def test_a_server_that_ignores_sort_is_read_by_pk_ranges_cut_at_the_quantiles_of_a_page() -> None:
    rows = {pk: BASE + dt.timedelta(seconds=pk % 97) for pk in range(1, 1001)}
    server = FakeOmnitron(rows, order="newest-first", cap=100)
    with server.client(page_size=100) as client:
        got = [r["pk"] for page in changed(client, None, BASE + DAY, True) for r in page]
    assert sorted(got) == list(range(1, 1001))
    assert len(server.requests) < 2 * 1000 / 100, "splitting costs under two requests a page"


def _full_read_requests(
    rows: dict[int, dt.datetime], order: Order, cap: int, in_flight: int = 1
) -> int:
    server = FakeOmnitron(dict(rows), order=order, cap=cap)
    with server.client(page_size=1000) as client:
        pages = changed(client, None, BASE + 40 * DAY, True, in_flight)
        got = [r["pk"] for page in pages for r in page]
    assert sorted(got) == sorted(rows)
    return len(server.requests)


@pytest.mark.parametrize(("customers", "cap"), [(3_000, 100), (12_000, 1000)])
@pytest.mark.parametrize("order", ["newest-first", "pk-descending", "random", "heap"])
@pytest.mark.parametrize("in_flight", [1, 2])
def test_a_server_that_ignores_sort_costs_at_most_twice_the_requests_of_a_sorted_one(
    customers: int, cap: int, order: Order, in_flight: int
) -> None:
    """Whatever order a server answers in, a full read costs at most twice the list requests of
    a server that honours ``sort`` read one request at a time: pks with gaps, as a table with
    deleted rows has them. Asking the next ranges before the answers before them costs no
    more."""
    rng = random.Random(customers + cap)
    pks = rng.sample(range(1, 3 * customers), customers)
    rows = {pk: BASE + dt.timedelta(seconds=rng.randint(0, 30 * 86_400)) for pk in sorted(pks)}
    sorted_cost = _full_read_requests(rows, "pk", cap)
    assert _full_read_requests(rows, order, cap, in_flight) <= 2 * sorted_cost


@pytest.mark.parametrize(("page", "at_most"), [(100, 16), (1000, 1 + 12)])
@pytest.mark.parametrize("in_flight", [1, 2])
def test_a_server_that_honours_sort_costs_little_more_than_one_request_per_page(
    page: int, at_most: int, in_flight: int
) -> None:
    """The first answer sizes the walk; each piece aims a little below a page (74 of 100, 909
    of 1,000) so that it is read whole in one request."""
    rows = dict.fromkeys(range(1, 10 * page + 1), BASE)
    server = FakeOmnitron(rows, order="pk", cap=page)
    with server.client(page_size=page) as client:
        pages = list(changed(client, None, BASE + DAY, True, in_flight))
    assert sum(len(p) for p in pages) == 10 * page
    assert len(server.requests) <= at_most


def test_a_range_that_fits_one_page_is_one_request() -> None:
    server = FakeOmnitron(dict.fromkeys(range(1, 51), BASE), order="random", cap=50)
    with server.client(page_size=50) as client:
        assert sum(len(p) for p in changed(client, None, BASE + DAY, True)) == 50
    assert len(server.requests) == 1


def test_an_ordered_looking_page_from_an_unordered_server_hides_nothing() -> None:
    """With pages of two rows, a server ignoring sort answers in pk order now and then; such a
    page only sizes the next requests."""
    rows = {pk: BASE + dt.timedelta(seconds=(pk * 7919) % 1000) for pk in range(1, 301)}
    server = FakeOmnitron(rows, order="random", cap=2, seed=3)
    with server.client(page_size=2) as client:
        got = [r["pk"] for page in changed(client, None, BASE + DAY, True) for r in page]
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
    assert split_points([], None, 10) == [1]
    assert split_points([5], 5, 10) == [6]
    cuts = split_points(list(range(100, 200)), 50, 20)
    assert all(50 < c < 200 for c in cuts) and cuts == sorted(set(cuts))


@given(
    lo=st.one_of(st.none(), st.integers(0, 100)),
    width=st.one_of(st.none(), st.integers(2, 10_000)),
    rows=st.floats(0, 50_000),
    page=st.integers(1, 2000),
    per_row=st.floats(0.01, 1000),
    origin=st.integers(0, 200),
)
def test_a_carved_piece_is_always_smaller_than_its_range(
    lo: int | None, width: int | None, rows: float, page: int, per_row: float, origin: int
) -> None:
    hi = None if width is None else (lo or 0) + width
    if lo is None and hi is not None and origin >= hi - 1:
        origin = hi - 2
    part = PkRange(lo, hi, rows, origin)
    piece, rest = carve(part, Density(page, per_row))
    if rest is None:
        assert piece == part and (rows <= Density(page).target or (lo is None and origin is None))
    else:
        assert piece.lo == lo and rest.hi == hi and piece.hi == rest.lo
        assert (
            piece.hi is not None and (lo is None or lo < piece.hi) and (hi is None or piece.hi < hi)
        )


def _heap(pks: list[int], updated: list[int], stamp: dt.datetime) -> dict[int, dt.datetime]:
    """PostgreSQL's heap order: an updated row's new tuple sits after every other row."""
    rows = {pk: stamp for pk in pks if pk not in updated}
    rows.update({pk: stamp for pk in updated if pk in pks})
    return rows


@pytest.mark.parametrize("in_flight", [1, 2])
def test_customers_created_between_page_reads_cannot_hide_a_customer_a_page_skipped(
    in_flight: int,
) -> None:
    """A server that ignores sort answers in heap order: pk 5 was updated, so the first page
    (1-4, 6-11) looks ascending and skips it. Customers created meanwhile, inside the padded
    bounds of a date-only server, can make the rest of the range count exactly what a complete
    page would have left."""
    hi = BASE + DAY
    rows = _heap(list(range(1, 41)), [5], BASE)
    server = FakeOmnitron(
        rows,
        order="heap",
        cap=10,
        date_only=True,
        creates_per_answer=1,
        created_at=hi + dt.timedelta(hours=1),
    )
    with server.client(page_size=10) as client:
        got = [r["pk"] for page in changed(client, None, hi, False, in_flight) for r in page]
    assert sorted(got) == list(range(1, 41))
    assert len(got) == len(set(got))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pks=st.sets(st.integers(1, 400), min_size=1, max_size=150),
    data=st.data(),
    cap=st.integers(1, 30),
    creates=st.integers(0, 3),
    offset=offsets,
    created_low=st.booleans(),
    in_flight=in_flights,
)
def test_a_window_read_while_customers_are_created_loses_no_customer(
    pks: set[int],
    data: st.DataObject,
    cap: int,
    creates: int,
    offset: float,
    created_low: bool,
    in_flight: int,
) -> None:
    """Heap order, a date-only server in any zone, and customers created after every answer,
    with pks after the greatest or in the gaps (pk assignment order is not documented)."""
    ordered = sorted(pks)
    updated = data.draw(st.lists(st.sampled_from(ordered), max_size=10, unique=True))
    hi = BASE + DAY
    lo = data.draw(st.sampled_from([None, BASE - dt.timedelta(hours=5)]))
    server = FakeOmnitron(
        _heap(ordered, updated, BASE),
        order="heap",
        cap=cap,
        date_only=True,
        utc_offset_hours=offset,
        creates_per_answer=creates,
        creates_at_most=60,
        created_at=hi + dt.timedelta(minutes=30),
        created_pks=[pk for pk in range(1, 401) if pk not in pks] if created_low else [],
    )
    with server.client(page_size=cap) as client:
        got = [r["pk"] for page in changed(client, lo, hi, False, in_flight) for r in page]
    assert sorted(got) == ordered
    assert len(got) == len(set(got)), "no version is yielded twice"


def stamp_of(record: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromisoformat(record["modified_date"].replace("Z", "+00:00"))


@st.composite
def changes(draw: st.DrawFn, rows: dict[int, dt.datetime]) -> list[Change]:
    """Creates, updates (moving a modified_date into, within or out of any window) and deletes,
    on the customers there and on new pks among and after them."""
    known = sorted(rows) or [1]
    pks = st.one_of(st.sampled_from(known), st.integers(1, 5200))
    # Often a stamp already in use, so that an update tends to stay in the window.
    stamps = st.one_of(
        st.sampled_from(sorted(set(rows.values())) or [BASE]),
        st.integers(-3600, 3 * 86_400 + 7200).map(lambda s: BASE + dt.timedelta(seconds=s)),
    )
    kinds = st.sampled_from(["create", "update", "update", "delete"])
    return draw(st.lists(st.tuples(kinds, pks, stamps), max_size=40))  # type: ignore[arg-type]


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=customers(),
    order=st.sampled_from(["pk", "newest-first", "pk-descending", "random", "heap"]),
    cap=st.integers(1, 30),
    page_size=st.sampled_from([5, 50]),
    date_only=st.booleans(),
    offset=offsets,
    per_answer=st.integers(1, 4),
    in_flight=in_flights,
    data=st.data(),
)
def test_a_server_that_changes_between_page_reads_loses_no_customer_that_stayed_in_the_window(
    rows: dict[int, dt.datetime],
    order: str,
    cap: int,
    page_size: int,
    date_only: bool,
    offset: float,
    per_answer: int,
    in_flight: int,
    data: st.DataObject,
) -> None:
    """Every customer there from start to end whose every version was in the window is yielded;
    every record yielded is a version the customer really had, inside the window; none twice."""
    lo, hi = window_of(data.draw)
    server = FakeOmnitron(
        dict(rows),
        order=order,  # type: ignore[arg-type]
        cap=cap,
        date_only=date_only,
        utc_offset_hours=offset,
        seed=data.draw(st.integers(0, 1000)),
        changes=data.draw(changes(rows)),
        changes_per_answer=per_answer,
    )
    with server.client(page_size=page_size) as client:
        pages = changed(client, lo, hi, not date_only, in_flight)
        got = [record for page in pages for record in page]

    def inside(stamp: dt.datetime) -> bool:
        return (lo is None or stamp >= lo) and stamp < hi

    stayed = {
        pk for pk in rows if pk not in server.deleted and all(inside(s) for s in server.history[pk])
    }
    yielded = [(record["pk"], stamp_of(record)) for record in got]
    assert stayed <= {pk for pk, _ in yielded}
    assert all(inside(stamp) for _, stamp in yielded), "nothing outside the window"
    assert all(stamp in server.history.get(pk, ()) for pk, stamp in yielded), "only real versions"
    assert len(yielded) == len(set(yielded)), "no version is yielded twice"
    assert all("page" not in request for request in server.requests), "no page is followed"


@pytest.mark.parametrize("in_flight", [1, 2])
def test_updates_deletes_and_creates_between_reads_of_a_heap_ordered_server(
    in_flight: int,
) -> None:
    """Pages of ten from a server that ignores sort and answers in heap order. After the first
    answer pk 25 moves out of the window, pk 27 is updated inside it (its new tuple goes last,
    so the next pages look ascending but skip it), pk 29 is deleted and pk 100 is created in
    the window: every customer that stayed in the window is read, and what moved out is never
    read in its new version."""
    hi = BASE + DAY
    rows = dict.fromkeys(range(1, 41), BASE)
    server = FakeOmnitron(
        rows,
        order="heap",
        cap=10,
        changes=[
            ("update", 25, hi + dt.timedelta(hours=1)),
            ("update", 27, BASE + dt.timedelta(hours=2)),
            ("delete", 29, BASE),
            ("create", 100, BASE + dt.timedelta(hours=3)),
        ],
        changes_per_answer=4,
    )
    with server.client(page_size=10) as client:
        pages = changed(client, None, hi, True, in_flight)
        got = {r["pk"]: stamp_of(r) for page in pages for r in page}
    assert set(range(1, 41)) - {25, 29} <= set(got)
    assert got[27] in (BASE, BASE + dt.timedelta(hours=2))
    assert got.get(25, BASE) == BASE, "pk 25's version after hi is the next run's"
    assert set(got) <= set(range(1, 41)) | {100}


def test_a_pk_range_is_listed_whole_whatever_the_order_and_cap() -> None:
    rows = {pk: BASE + dt.timedelta(seconds=pk % 13) for pk in range(1, 200)}
    server = FakeOmnitron(rows, order="random", cap=3, seed=5)
    with server.client(page_size=50) as client:
        pages = Paginator(client).pages(CustomerQuery(pk_gte=40, pk_lt=120))
        got = [record["pk"] for page in pages for record in page]
    assert sorted(got) == list(range(40, 120))
    assert all(
        int(request.get("pk__gte", 40)) >= 40 and int(request.get("pk__lt", 120)) <= 120
        for request in server.requests
    ), "never outside the range asked"
