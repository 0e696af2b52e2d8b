"""Narrowing down deleted customers (G9) on every server Omnitron's API allows
(docs/omnitron-api.md): only a pk the server confirms absent is ever reported, whatever the order,
the cap, and customers created while it reads."""

from __future__ import annotations

import datetime as dt

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omnisync.sync.deletions import _Budget, narrow
from tests.client.fake_omnitron import FakeOmnitron

BASE = dt.datetime(2024, 3, 9, 20, 0, tzinfo=dt.UTC)
orders = st.sampled_from(["pk", "newest-first", "random", "heap"])


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pks=st.sets(st.integers(1, 3000), max_size=300),
    data=st.data(),
    cap=st.integers(2, 60),
    order=orders,
    creates=st.integers(0, 2),
    created_low=st.booleans(),
    budget=st.one_of(st.none(), st.integers(4, 40)),
)
def test_only_customers_the_server_no_longer_holds_are_found_deleted(
    pks: set[int],
    data: st.DataObject,
    cap: int,
    order: str,
    creates: int,
    created_low: bool,
    budget: int | None,
) -> None:
    lake = sorted(pks)
    deleted = (
        set(data.draw(st.lists(st.sampled_from(lake), unique=True, max_size=30))) if lake else set()
    )
    server = FakeOmnitron(
        {pk: BASE for pk in lake if pk not in deleted},
        order=order,  # type: ignore[arg-type]
        cap=cap,
        creates_per_answer=creates,
        creates_at_most=40,
        created_at=BASE,
        created_pks=sorted(set(range(1, 3001)) - pks) if created_low else [],
    )
    with server.client(page_size=cap) as client:
        spent = _Budget(client, budget)
        found, left = narrow(
            spent, np.array(lake, dtype=np.int64), np.array([], dtype=np.int64), [(None, None)], cap
        )
    assert set(found) <= deleted, "a customer the server holds is never reported deleted"
    assert len(found) == len(set(found))
    assert budget is None or spent.used <= budget
    if budget is None and not creates:
        assert set(found) == deleted and left == []


def test_three_deleted_among_100k_customers_cost_a_few_requests_not_a_read() -> None:
    lake = list(range(1, 100_001))
    deleted = {17, 50_000, 99_999}
    server = FakeOmnitron({pk: BASE for pk in lake if pk not in deleted}, order="random", cap=1000)
    with server.client(page_size=1000) as client:
        spent = _Budget(client, None)
        found, left = narrow(
            spent,
            np.array(lake, dtype=np.int64),
            np.array([], dtype=np.int64),
            [(None, None)],
            1000,
        )
    assert sorted(found) == sorted(deleted) and left == []
    print(f"{spent.used} requests for 3 deletions among 100,000 customers")
    assert spent.used <= 3 * 2 * 8, "about two requests a level per deletion, not 100 pages"
