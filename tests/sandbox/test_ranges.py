"""The sync's queries over real HTTP: a pk range inside a modified_date window, whichever of the
two is narrower, counted and paged as a scan of every customer would answer them."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from sandbox import SandboxServer
from tests.conftest import login, truth

LIST = "/api/v1/customers/"


@pytest.fixture
def api(quiet_sandbox: SandboxServer) -> Iterator[httpx.Client]:
    client = httpx.Client(base_url=quiet_sandbox.url)
    client.headers.update(login(quiet_sandbox, client))
    yield client
    client.close()


@pytest.mark.parametrize(
    ("pk_range", "window"),
    [
        ((1000, 1040), ("2017-01-01T00:00:00Z", "2025-06-01T00:00:00Z")),  # narrow pk range
        ((1, 3001), ("2024-03-01T00:00:00Z", "2024-03-20T00:00:00Z")),  # narrow window
        ((200, 2800), ("2019-01-01T00:00:00Z", "2023-01-01T00:00:00Z")),  # both wide
    ],
)
def test_a_pk_range_in_a_modified_date_window_counts_and_pages_like_a_scan(
    quiet_sandbox: SandboxServer,
    api: httpx.Client,
    pk_range: tuple[int, int],
    window: tuple[str, str],
) -> None:
    lo, hi = pk_range
    expected = [
        row["pk"]
        for row in truth(quiet_sandbox)
        if lo <= row["pk"] < hi and window[0] <= row["modified_date"] < window[1]
    ]
    assert expected, "the case must select some customers"
    params = {
        "pk__gte": lo,
        "pk__lt": hi,
        "modified_date__gte": window[0],
        "modified_date__lt": window[1],
        "sort": "pk",
        "limit": 25,
    }
    first = api.get(LIST, params=params).json()
    assert first["count"] == len(expected)
    seen: list[int] = [row["pk"] for row in first["results"]]
    url = first["next"]
    while url:
        page = api.get(url).json()
        seen += [row["pk"] for row in page["results"]]
        url = page["next"]
    assert seen == expected


@pytest.mark.parametrize(
    "crossed",
    [
        {"pk__gte": 50, "pk__lt": 10},
        {"modified_date__gte": "2024-01-02", "modified_date__lt": "2024-01-01"},
        {"pk__gt": 9, "pk__lte": 9, "sort": "-pk"},
        {"modified_date__gte": "2024-01-02", "modified_date__lt": "2024-01-01", "sort": "email"},
    ],
)
def test_a_range_whose_bounds_cross_is_an_empty_first_page(
    api: httpx.Client, crossed: dict[str, object]
) -> None:
    response = api.get(LIST, params=crossed)
    assert response.status_code == 200
    assert response.json() == {"count": 0, "next": None, "previous": None, "results": []}
