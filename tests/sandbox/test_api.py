"""The sandbox answers like Omnitron's Customers API (docs/omnitron-api.md), over real HTTP."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator

import httpx
import pytest

from sandbox import SandboxServer
from sandbox.records import FIELDS
from tests.conftest import login, truth

DRF_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?Z$")


@pytest.fixture
def api(quiet_sandbox: SandboxServer) -> Iterator[httpx.Client]:
    client = httpx.Client(base_url=quiet_sandbox.url)
    client.headers.update(login(quiet_sandbox, client))
    yield client
    client.close()


def all_pages(client: httpx.Client, **params: object) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    url: str | None = "/api/v1/customers/"
    first = True
    while url:
        response = client.get(url, params=params if first else None)
        assert response.status_code == 200, response.text
        body = response.json()
        rows.extend(body["results"])
        url, first = body["next"], False
    return rows


# -- auth -------------------------------------------------------------------------------------
def test_requests_without_a_token_get_drf_401(quiet_sandbox: SandboxServer) -> None:
    response = httpx.get(f"{quiet_sandbox.url}/api/v1/customers/")
    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}
    assert response.headers["www-authenticate"] == "Token"


def test_an_unknown_token_is_invalid(quiet_sandbox: SandboxServer) -> None:
    response = httpx.get(
        f"{quiet_sandbox.url}/api/v1/customers/", headers={"Authorization": "Token nope"}
    )
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token."}


def test_login_with_wrong_password_is_400_non_field_error(quiet_sandbox: SandboxServer) -> None:
    response = httpx.post(
        f"{quiet_sandbox.url}/api/v1/auth/login/", json={"username": "sandbox", "password": "wrong"}
    )
    assert response.status_code == 400
    assert response.json() == {"non_field_errors": ["Unable to log in with provided credentials."]}
    missing = httpx.post(f"{quiet_sandbox.url}/api/v1/auth/login/", json={})
    assert missing.json() == {
        "username": ["This field is required."],
        "password": ["This field is required."],
    }


# -- listing ----------------------------------------------------------------------------------
def test_list_has_the_documented_shape_and_drf_formats(api: httpx.Client) -> None:
    body = api.get("/api/v1/customers/", params={"limit": 50}).json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == 3000 and body["previous"] is None
    assert body["next"].endswith("/api/v1/customers/?limit=50&page=2")
    for row in body["results"]:
        assert list(row) == list(FIELDS)
        for name in ("modified_date", "created_date"):
            assert DRF_DATETIME.match(row[name]), row[name]
        assert row["date_joined"] is None or DRF_DATETIME.match(row["date_joined"])


def test_datetimes_drop_microseconds_only_when_zero(quiet_sandbox: SandboxServer) -> None:
    stamps = [row["modified_date"] for row in truth(quiet_sandbox)]
    whole = [s for s in stamps if "." not in s]
    assert whole, "the seed has whole-second timestamps"
    assert all(re.match(r".*\.\d{6}Z$", s) for s in stamps if s not in whole)


def test_following_next_reads_every_customer_once(api: httpx.Client) -> None:
    rows = all_pages(api, limit=700)
    pks = [row["pk"] for row in rows]
    assert sorted(pks) == list(range(1, 3001)) and len(set(pks)) == 3000


def test_limit_is_capped_by_the_server(make_sandbox: object) -> None:
    server = make_sandbox(customers=300, max_limit=100)  # type: ignore[operator]
    client = httpx.Client(base_url=server.url, headers=login(server))
    body = client.get("/api/v1/customers/", params={"limit": 1000}).json()
    assert len(body["results"]) == 100 and body["count"] == 300


def test_a_page_past_the_end_is_invalid_page(api: httpx.Client) -> None:
    for page in ("99", "0", "abc"):
        response = api.get("/api/v1/customers/", params={"limit": 1000, "page": page})
        assert response.status_code == 404
        assert response.json() == {"detail": "Invalid page."}


def test_an_empty_result_still_has_a_first_page(api: httpx.Client) -> None:
    body = api.get("/api/v1/customers/", params={"pk__gt": 10**9}).json()
    assert body == {"count": 0, "next": None, "previous": None, "results": []}


def test_previous_links_back(api: httpx.Client) -> None:
    body = api.get("/api/v1/customers/", params={"limit": 10, "page": 3}).json()
    assert body["previous"].endswith("?limit=10&page=2")
    second = api.get("/api/v1/customers/", params={"limit": 10, "page": 2}).json()
    assert second["previous"].endswith("?limit=10")


# -- filters and sort -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("params", "keep"),
    [
        (
            {"modified_date__gte": "2024-03-01T12:00:00Z"},
            lambda r: r["modified_date"] >= "2024-03-01T12:00:00",
        ),
        ({"modified_date__lt": "2019-01-01"}, lambda r: r["modified_date"] < "2019-01-01"),
        (
            {"modified_date__date": "2025-06-01"},
            lambda r: r["modified_date"].startswith("2025-06-01"),
        ),
        (
            {"created_date__gt": "2025-01-01T00:00:00+00:00"},
            lambda r: r["created_date"] > "2025-01-01T00:00:00Z",
        ),
        ({"pk__gte": 100, "pk__lt": 200}, lambda r: 100 <= r["pk"] < 200),
        ({"id": 42}, lambda r: r["pk"] == 42),
        ({"email__startswith": "ayse"}, lambda r: r["email"].startswith("ayse")),
        ({"erp_code": "null"}, lambda r: r["erp_code"] is None),
        ({"is_active": "false"}, lambda r: r["is_active"] is False),
        ({"gender": "female"}, lambda r: r["gender"] == "female"),
        ({"user_type": "guest"}, lambda r: r["user_type"] == "guest"),
        ({"channel": [2, 3]}, lambda r: r["channel"] in (2, 3)),
        (
            {"extra_field": '{"loyalty_tier": "gold"}'},
            lambda r: r["extra_field"].get("loyalty_tier") == "gold",
        ),
        ({"date_of_birth": "1983-01-07"}, lambda r: r["date_of_birth"] == "1983-01-07"),
    ],
)
def test_filters_select_what_the_document_says(
    api: httpx.Client, quiet_sandbox: SandboxServer, params: dict[str, object], keep: object
) -> None:
    expected = sorted(r["pk"] for r in truth(quiet_sandbox) if keep(r))  # type: ignore[operator]
    got = sorted(r["pk"] for r in all_pages(api, limit=1000, **params))
    assert got == expected
    assert expected, f"the seed should have matches for {params}"


def test_a_bad_filter_value_is_400_naming_the_parameter(api: httpx.Client) -> None:
    assert api.get("/api/v1/customers/", params={"pk__gt": "x"}).json() == {
        "pk__gt": ["Enter a number."]
    }
    body = api.get("/api/v1/customers/", params={"gender": "robot"}).json()
    assert body == {"gender": ["Select a valid choice. robot is not one of the available choices."]}
    assert (
        api.get("/api/v1/customers/", params={"modified_date__gte": "yesterday"}).status_code == 400
    )


@pytest.mark.parametrize(
    "sort", ["pk", "-pk", "email", "-modified_date", "erp_code", "-created_date"]
)
def test_sort_orders_by_any_field_with_pk_breaking_ties(
    api: httpx.Client, quiet_sandbox: SandboxServer, sort: str
) -> None:
    name, descending = sort.lstrip("-"), sort.startswith("-")
    rows = truth(quiet_sandbox)
    rows.sort(key=lambda r: r["pk"])

    def key(row: dict[str, object]) -> tuple[bool, object]:
        value = row[name]
        if name.endswith("_date") and isinstance(value, str):
            return False, dt.datetime.fromisoformat(value)
        return value is None, value or ""

    rows.sort(key=key, reverse=descending)
    got = [r["pk"] for r in all_pages(api, limit=1000, sort=sort)]
    assert got == [r["pk"] for r in rows]


# -- single customers -------------------------------------------------------------------------
def test_detail_and_not_found(api: httpx.Client) -> None:
    assert api.get("/api/v1/customers/5/").json()["pk"] == 5
    missing = api.get("/api/v1/customers/999999/")
    assert missing.status_code == 404 and missing.json() == {"detail": "Not found."}


def test_other_methods_are_405(api: httpx.Client) -> None:
    response = api.delete("/api/v1/customers/5/")
    assert response.status_code == 405
    assert response.json() == {"detail": 'Method "DELETE" not allowed.'}
    assert api.put("/api/v1/customers/", json={}).status_code == 405


@pytest.fixture
def writable(make_sandbox: object) -> Iterator[httpx.Client]:
    server = make_sandbox(customers=50)  # type: ignore[operator]
    client = httpx.Client(base_url=server.url, headers=login(server))
    yield client
    client.close()


def test_create_sets_both_dates_and_answers_the_document_shape(writable: httpx.Client) -> None:
    body = {
        "email": "test@test.com",
        "channel": 1,
        "channel_code": "1231",
        "gender": "male",
        "user_type": "registered",
        "is_active": False,
        "erp_code": "er_code",
        "email_allowed": True,
        "sms_allowed": True,
        "call_allowed": True,
        "phone_number": "05555555555",
        "attributes": {},
        "extra_field": {},
        "date_of_birth": "2001-01-01",
    }
    response = writable.post("/api/v1/customers/", json=body)
    assert response.status_code == 201
    created = response.json()
    assert list(created) == list(FIELDS)
    assert created["pk"] == 51 and created["first_name"] == "" and created["date_joined"] is None
    assert created["modified_date"] == created["created_date"]
    assert {k: created[k] for k in body} == body


def test_create_validation_errors_are_drf_bodies(writable: httpx.Client) -> None:
    missing = writable.post("/api/v1/customers/", json={})
    assert missing.status_code == 400
    assert missing.json() == {
        f: ["This field is required."] for f in ("email", "channel", "channel_code")
    }
    bad = writable.post(
        "/api/v1/customers/", json={"email": "nope", "channel": 1, "channel_code": "x"}
    )
    assert bad.json() == {"email": ["Enter a valid email address."]}
    first = writable.get("/api/v1/customers/1/").json()
    dup = writable.post(
        "/api/v1/customers/",
        json={
            "email": "a@b.co",
            "channel": first["channel"],
            "channel_code": first["channel_code"],
        },
    )
    assert dup.status_code == 400
    assert dup.json() == {
        "non_field_errors": ["The fields channel, channel_code must make a unique set."]
    }


def test_patch_updates_and_moves_modified_date(writable: httpx.Client) -> None:
    before = writable.get("/api/v1/customers/7/").json()
    after = writable.patch("/api/v1/customers/7/", json={"erp_code": "ERP-7"}).json()
    assert after["erp_code"] == "ERP-7"
    assert after["modified_date"] > before["modified_date"]
    assert after["created_date"] == before["created_date"]
    assert writable.get("/api/v1/customers/7/").json() == after


def test_changing_the_channel_is_406_customer_100_3(writable: httpx.Client) -> None:
    current = writable.get("/api/v1/customers/3/").json()
    other = 3 if current["channel"] != 3 else 1
    for method in ("PATCH", "PUT"):
        response = writable.request(
            method,
            "/api/v1/customers/3/",
            json={"email": "x@y.com", "channel": other, "channel_code": "c", "extra_field": {}},
        )
        assert response.status_code == 406
        assert response.json() == {
            "non_field_errors": "channel:channel_name These field cannot be updated",
            "error_code": "customer_100_3",
        }


def test_put_requires_the_mandatory_fields(writable: httpx.Client) -> None:
    response = writable.put("/api/v1/customers/3/", json={"email": "test2@test.com"})
    assert response.status_code == 400
    assert response.json() == {
        f: ["This field is required."] for f in ("channel", "channel_code", "extra_field")
    }
    current = writable.get("/api/v1/customers/3/").json()
    ok = writable.put(
        "/api/v1/customers/3/",
        json={
            "email": "test2@test.com",
            "channel": current["channel"],
            "channel_code": "1231",
            "is_active": True,
            "extra_field": {},
        },
    )
    assert ok.status_code == 200 and ok.json()["email"] == "test2@test.com"
