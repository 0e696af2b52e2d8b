"""Answers from the indexes are the answers of a scan of every customer.

The reference below is the sandbox's earlier way of answering: walk every customer in pk order,
keep those matching every filter, then sort stably by the sort field. The store is changed
between queries (updates that tie modified_dates, deletions, creations) so that the indexes are
checked after incremental maintenance, not only as built.
"""

from __future__ import annotations

import random
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.listing import run_query, sort_of
from sandbox.queries import Query, parse_query
from sandbox.records import Customer, drf_datetime
from sandbox.seed import seed_customers
from sandbox.store import Store

SORTS = [None, "pk", "-pk", "id", "-id", "modified_date", "-modified_date", "created_date"]
SORTS += ["-created_date", "email", "-first_name", "phone_number", "extra_field", "bogus"]
OTHER_FILTERS = [
    [],
    [("channel", "1")],
    [("channel", "2"), ("channel", "3")],
    [("is_active", "false")],
    [("erp_code", "null")],
    [("gender", "female"), ("sms_allowed", "true")],
]


def _inside(value: int, lo: int | None, hi: int | None) -> bool:
    return (lo is None or value >= lo) and (hi is None or value < hi)


def _reference(store: Store, query: Query) -> list[int]:
    customers = [store.by_pk[pk] for pk in sorted(store.rows)]
    kept = [
        c
        for c in customers
        if _inside(c.pk, query.pk_lo, query.pk_hi)
        and _inside(c.modified_us, query.modified_lo, query.modified_hi)
        and _inside(c.created_us, query.created_lo, query.created_hi)
        and all(predicate(c) for predicate in query.predicates)
    ]
    name, descending = sort_of(query.sort)

    def key(c: Customer) -> Any:
        if name == "modified_date":
            return c.modified_us
        if name == "created_date":
            return c.created_us
        if name == "pk":
            return c.pk
        value = c.data[name]
        if isinstance(value, dict):
            value = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        return (value is None, "" if value is None else value)

    kept.sort(key=key, reverse=descending)
    return [c.pk for c in kept]


def _changed_store(seed: int) -> Store:
    """Seeded customers, then updated (several to one instant), deleted and created."""
    store = Store(seed_customers(150, seed))
    rng = random.Random(seed)
    stamps = sorted(store.rows[pk][0] for pk in store.rows)
    shared = stamps[len(stamps) // 2]
    for pk in rng.sample(sorted(store.rows), 30):
        stamp = shared if rng.random() < 0.5 else rng.choice(stamps) + 1
        store.update(pk, {"first_name": rng.choice(["Ali", "Ece", ""])}, stamp)
    for pk in rng.sample(sorted(store.rows), 15):
        store.delete(pk)
    for _ in range(10):
        store.create(
            {"channel": 1, "channel_code": f"new-{rng.random()}", "email": "n@example.com"},
            shared,
        )
    return store


STORES = {seed: _changed_store(seed) for seed in (1, 2)}


@st.composite
def queries(draw: st.DrawFn) -> tuple[int, list[tuple[str, str]]]:
    seed = draw(st.sampled_from(sorted(STORES)))
    store = STORES[seed]
    pks = sorted(store.rows)
    stamps = sorted({row[0] for row in store.rows.values()})
    params: list[tuple[str, str]] = []
    for lookup in draw(st.sets(st.sampled_from(["gte", "gt", "lt", "lte"]), max_size=2)):
        params.append((f"pk__{lookup}", str(draw(st.sampled_from(pks)) + draw(st.integers(-1, 1)))))
    for field in ("modified_date", "created_date"):
        for lookup in draw(st.sets(st.sampled_from(["gte", "lt", "lte", "exact"]), max_size=2)):
            us = draw(st.sampled_from(stamps)) + draw(st.sampled_from([0, 0, 1, -1]))
            params.append((f"{field}__{lookup}", drf_datetime(us)))
    params += draw(st.sampled_from(OTHER_FILTERS))
    sort = draw(st.sampled_from(SORTS))
    if sort is not None:
        params.append(("sort", sort))
    return seed, params


@settings(max_examples=300, deadline=None)
@given(asked=queries())
def test_an_answer_from_the_indexes_is_the_answer_of_a_full_scan(
    asked: tuple[int, list[tuple[str, str]]],
) -> None:
    seed, params = asked
    store = STORES[seed]
    query = parse_query(params, date_only=False)
    expected = _reference(store, query)
    answer = run_query(store, query, None)
    assert len(answer) == len(expected)
    assert list(answer[0 : len(answer)]) == expected
    for start in (0, 1, 7):
        assert list(answer[start : start + 5]) == expected[start : start + 5]


@settings(max_examples=100, deadline=None)
@given(asked=queries())
def test_shuffled_ties_keep_the_sort_and_the_set(
    asked: tuple[int, list[tuple[str, str]]],
) -> None:
    seed, params = asked
    store = STORES[seed]
    query = parse_query(params, date_only=False)
    expected = _reference(store, query)
    answer = list(run_query(store, query, random.Random(3)))
    assert sorted(answer) == sorted(expected)
    name, _ = sort_of(query.sort)
    if name in ("pk", "modified_date", "created_date"):
        column = {"pk": None, "modified_date": 0, "created_date": 1}[name]

        def value(pk: int) -> int:
            return pk if column is None else store.rows[pk][column]

        assert [value(pk) for pk in answer] == [value(pk) for pk in expected]


def test_a_stored_body_is_kept_at_its_own_size() -> None:
    """orjson returns its whole output buffer; the store must not keep one per customer."""
    import sys

    store = Store(seed_customers(50, 4))
    for _, _, body in store.rows.values():
        assert sys.getsizeof(body) <= len(body) + 64
