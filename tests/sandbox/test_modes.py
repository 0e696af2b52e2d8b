"""Each test mode of the sandbox does what the tests of the sync rely on, over real HTTP."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from sandbox import SandboxServer
from sandbox.seed import seed_customers
from tests.conftest import login, truth

Make = Callable[..., SandboxServer]


def client_for(server: SandboxServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers=login(server), timeout=10)


def test_date_only_mode_rejects_datetimes_and_accepts_dates(make_sandbox: Make) -> None:
    server = make_sandbox(date_only_filters=True)
    client = client_for(server)
    bad = client.get("/api/v1/customers/", params={"modified_date__gte": "2024-01-01T10:00:00Z"})
    assert bad.status_code == 400
    assert bad.json() == {"modified_date__gte": ["Enter a valid date."]}
    good = client.get("/api/v1/customers/", params={"modified_date__gte": "2024-01-01"})
    assert good.status_code == 200
    assert all(r["modified_date"] >= "2024-01-01" for r in good.json()["results"])


def test_tokens_expire_after_n_requests(make_sandbox: Make) -> None:
    server = make_sandbox(token_max_requests=3)
    client = client_for(server)
    assert [client.get("/api/v1/customers/1/").status_code for _ in range(4)] == [
        200,
        200,
        200,
        401,
    ]
    assert client.get("/api/v1/customers/1/").json() == {"detail": "Invalid token."}
    client.headers.update(login(server))
    assert client.get("/api/v1/customers/1/").status_code == 200


def test_queued_faults_come_back_in_order(make_sandbox: Make) -> None:
    server = make_sandbox(faults={"retry_after_seconds": 2, "slow_seconds": 0.3})
    client = client_for(server)
    server.admin.post("faults/next", json={"kinds": ["429", "500", "502", "503", "drop", "slow"]})
    throttled = client.get("/api/v1/customers/")
    assert throttled.status_code == 429 and throttled.headers["retry-after"] == "2"
    assert client.get("/api/v1/customers/").status_code == 500
    html = client.get("/api/v1/customers/")
    assert html.status_code == 502 and html.text.startswith("<html>")
    assert client.get("/api/v1/customers/").status_code == 503
    with pytest.raises(httpx.RemoteProtocolError):
        client.get("/api/v1/customers/")
    started = time.monotonic()
    assert client.get("/api/v1/customers/").status_code == 200
    assert time.monotonic() - started >= 0.3
    assert client.get("/api/v1/customers/").status_code == 200
    stats = server.admin.get("stats").json()
    assert stats["faults_injected"] == dict.fromkeys(
        ("429", "500", "502", "503", "drop", "slow"), 1
    )


def test_random_faults_hit_about_the_configured_share(make_sandbox: Make) -> None:
    server = make_sandbox(faults={"rate": 0.3, "kinds": ["500", "503"]})
    client = client_for(server)
    codes = [client.get("/api/v1/customers/1/").status_code for _ in range(200)]
    failed = sum(code >= 500 for code in codes)
    assert 30 <= failed <= 90


def test_admin_routes_are_never_faulted(make_sandbox: Make) -> None:
    server = make_sandbox(faults={"rate": 1.0})
    assert all(server.admin.get("stats").status_code == 200 for _ in range(20))


def test_live_writers_modify_and_create_while_clients_read(make_sandbox: Make) -> None:
    server = make_sandbox(customers=200, writers_per_second=200, writer_create_share=0.5)
    before = {r["pk"]: r for r in truth(server)}

    def created_and_modified() -> bool:
        after = {r["pk"]: r for r in truth(server)}
        return len(after) > len(before) and any(after[pk] != row for pk, row in before.items())

    # Driven by the writers' own progress, not by how much of it a sleep allows on a slow host.
    deadline = time.monotonic() + 60
    while not created_and_modified() and time.monotonic() < deadline:
        time.sleep(0.05)
    server.admin.post("quiesce")
    assert created_and_modified()


def test_bulk_update_gives_more_customers_one_timestamp_than_fit_on_a_page(
    make_sandbox: Make,
) -> None:
    server = make_sandbox(customers=3000, max_limit=1000)
    result = server.admin.post("modify", json={"count": 2500, "same_timestamp": True}).json()
    assert len(result["modified_dates"]) == 1
    client = client_for(server)
    body = client.get(
        "/api/v1/customers/", params={"modified_date": result["modified_dates"][0], "limit": 1000}
    ).json()
    assert body["count"] == 2500 and len(body["results"]) == 1000


def test_bulk_update_at_start(make_sandbox: Make) -> None:
    server = SandboxServer(customers=500, bulk_update=300).start()
    try:
        stamps = [r["modified_date"] for r in truth(server)]
        assert max(stamps.count(s) for s in set(stamps)) == 300
    finally:
        server.stop()


def test_shuffled_fields_come_in_a_new_order_with_the_same_values(make_sandbox: Make) -> None:
    server = make_sandbox(customers=30, shuffle_fields=True)
    client = client_for(server)
    params = {"sort": "pk", "limit": 30}
    answers = [client.get("/api/v1/customers/", params=params).json()["results"] for _ in range(3)]
    orders = {tuple(tuple(record) for record in results) for results in answers}
    assert len(orders) == 3, "each answer orders each customer's fields anew"
    assert answers[0] == answers[1] == answers[2] == truth(server)  # the values are the same
    detail = client.get("/api/v1/customers/1/").json()
    assert next(iter(detail)) == "pk", "details are as before"


def test_shuffled_ties_come_back_in_a_new_order_each_request(make_sandbox: Make) -> None:
    server = make_sandbox(customers=500, shuffle_ties=True)
    stamp = server.admin.post("modify", json={"count": 200, "same_timestamp": True}).json()
    client = client_for(server)
    params = {"sort": "modified_date", "modified_date": stamp["modified_dates"][0], "limit": 50}
    orders = {
        tuple(r["pk"] for r in client.get("/api/v1/customers/", params=params).json()["results"])
        for _ in range(5)
    }
    assert len(orders) > 1
    unique = {
        tuple(
            r["pk"]
            for r in client.get("/api/v1/customers/", params={"sort": "pk"}).json()["results"]
        )
        for _ in range(3)
    }
    assert len(unique) == 1, "a unique sort key is never shuffled"


def test_late_commits_appear_after_their_modified_date(make_sandbox: Make) -> None:
    server = make_sandbox(customers=100)
    change = server.admin.post("modify", json={"count": 1, "late_seconds": 0.6}).json()
    pk, stamp = change["pks"][0], change["modified_dates"][0]
    client = client_for(server)
    visible = client.get("/api/v1/customers/", params={"modified_date__gte": stamp}).json()
    assert visible["count"] == 0
    assert server.admin.get("stats").json()["pending"] == 1
    time.sleep(0.7)
    later = client.get("/api/v1/customers/", params={"modified_date__gte": stamp}).json()
    assert [r["pk"] for r in later["results"]] == [pk]
    assert later["results"][0]["modified_date"] == stamp


def test_modes_switch_at_run_time(make_sandbox: Make) -> None:
    server = make_sandbox()
    client = client_for(server)
    params = {"modified_date__gte": "2024-01-01T10:00:00Z"}
    assert client.get("/api/v1/customers/", params=params).status_code == 200
    server.set_modes(date_only_filters=True)
    assert client.get("/api/v1/customers/", params=params).status_code == 400
    bad = server.admin.patch("modes", json={"max_limit": 0})
    assert bad.status_code == 400


# -- the seed ---------------------------------------------------------------------------------
def test_the_seed_is_deterministic_and_realistic() -> None:
    first = [c.data for c in seed_customers(5000, seed=11)]
    assert first == [c.data for c in seed_customers(5000, seed=11)]
    assert first != [c.data for c in seed_customers(5000, seed=12)]
    names = "".join(r["first_name"] + r["last_name"] for r in first)
    assert all(ch in names for ch in "çğıİöşü")
    phones = [r["phone_number"] for r in first if r["phone_number"]]
    assert any(p.startswith("05") for p in phones) and any(p.startswith("+90 5") for p in phones)
    emails = [r["email"] for r in first]
    assert len(set(emails)) < len(emails), "some customers share an email"
    assert 0.15 < sum(r["erp_code"] is None for r in first) / len(first) < 0.35
    assert any(r["extra_field"] for r in first) and any(r["attributes"] for r in first)
    assert any("@" not in r["email"] or r["email"].endswith("@") for r in first)
    assert any((r["date_of_birth"] or "") > "2030" for r in first)


def test_a_bare_date_means_midnight_in_the_servers_time_zone(make_sandbox: Make) -> None:
    """As Django with USE_TZ: at UTC+3, modified_date__gte=D is D 00:00 Istanbul, 21:00Z the day
    before; datetimes are unaffected."""
    server = make_sandbox(customers=2000, utc_offset_hours=3)
    client = client_for(server)
    day = "2024-01-05"
    answer = client.get(
        "/api/v1/customers/", params={"modified_date__gte": day, "sort": "modified_date"}
    )
    first = answer.json()["results"][0]["modified_date"]
    assert first >= "2024-01-04T21:00:00"
    rows = truth(server)
    expected = sum(1 for r in rows if r["modified_date"] >= "2024-01-04T21:00:00")
    assert answer.json()["count"] == expected
    exact = client.get("/api/v1/customers/", params={"modified_date__gte": "2024-01-05T00:00:00Z"})
    assert exact.json()["count"] == sum(1 for r in rows if r["modified_date"] >= day)


def test_ignore_sort_answers_newest_first_whatever_is_asked(make_sandbox: Make) -> None:
    server = make_sandbox(customers=300, ignore_sort=True)
    client = client_for(server)
    results = client.get("/api/v1/customers/", params={"sort": "pk", "limit": 50}).json()["results"]
    stamps = [r["modified_date"] for r in results]
    assert stamps == sorted(stamps, reverse=True)
    assert [r["pk"] for r in results] != sorted(r["pk"] for r in results)


def test_added_fields_appear_in_lists_and_details(make_sandbox: Make) -> None:
    server = make_sandbox(customers=20, added_fields={"loyalty_points": 12.10, "segment": "vip"})
    client = client_for(server)
    listed = client.get("/api/v1/customers/").json()["results"][0]
    assert listed["loyalty_points"] == 12.1 and listed["segment"] == "vip"
    assert client.get("/api/v1/customers/1/").json()["segment"] == "vip"
    assert "segment" not in truth(server)[0], "the ground truth is the stored customer"


def test_a_lost_answer_applies_the_patch_then_loses_its_answer(make_sandbox: Make) -> None:
    server = make_sandbox(lost_answers={"timeout_seconds": 1.0})
    client = httpx.Client(base_url=server.url, headers=login(server), timeout=0.5)
    answers = [
        {"kind": "502"},
        {"kind": "reset", "edit": True},
        {"kind": "timeout"},
    ]
    server.admin.post("lost_answers/next", json={"answers": answers}).raise_for_status()
    proxy = client.patch("/api/v1/customers/1/", json={"erp_code": "A"})
    assert proxy.status_code == 502 and proxy.text.startswith("<html>")
    with pytest.raises(httpx.RemoteProtocolError):
        client.patch("/api/v1/customers/2/", json={"erp_code": "B"})
    with pytest.raises(httpx.ReadTimeout):
        client.patch("/api/v1/customers/3/", json={"erp_code": "C"})
    assert client.patch("/api/v1/customers/4/", json={"erp_code": "D"}).status_code == 200
    codes = {r["pk"]: r["erp_code"] for r in truth(server)}
    assert [codes[pk] for pk in (1, 2, 3, 4)] == ["A", "PERSON-2", "C", "D"]
    stats = server.admin.get("stats").json()
    assert stats["lost_answers"] == {"1": "502", "2": "reset", "3": "timeout"}
    assert stats["person_edits"] == {"2": "PERSON-2"}
    assert stats["patches"] == {"1": 1, "2": 1, "3": 1, "4": 1}


def test_a_refused_patch_is_answered_even_when_an_answer_is_due_to_be_lost(
    make_sandbox: Make,
) -> None:
    server = make_sandbox()
    client = client_for(server)
    server.admin.post("lost_answers/next", json={"answers": [{"kind": "502"}]})
    assert client.patch("/api/v1/customers/1/", json={"channel": 99}).status_code == 406


def test_queued_faults_can_wait_for_a_method(make_sandbox: Make) -> None:
    server = make_sandbox()
    client = client_for(server)
    server.admin.post("faults/next", json={"kinds": ["500"], "methods": ["patch"]})
    assert client.get("/api/v1/customers/1/").status_code == 200
    assert client.patch("/api/v1/customers/1/", json={"erp_code": "X"}).status_code == 500
    assert truth(server)[0]["erp_code"] != "X", "a fault in front of the API applies nothing"


def test_the_admin_delete_removes_customers_from_lists_details_and_truth(
    make_sandbox: Make,
) -> None:
    server = make_sandbox(customers=50)
    client = client_for(server)
    assert server.admin.post("delete", json={"pks": [3, 7, 999]}).json() == {"pks": [3, 7]}
    assert client.get("/api/v1/customers/3/").status_code == 404
    listed = client.get("/api/v1/customers/", params={"pk__gte": 1, "pk__lt": 10, "limit": 50})
    assert listed.json()["count"] == 7
    assert {r["pk"] for r in listed.json()["results"]} == {1, 2, 4, 5, 6, 8, 9}
    assert {r["pk"] for r in truth(server)} == set(range(1, 51)) - {3, 7}
    random = server.admin.post("delete", json={"count": 5}).json()["pks"]
    assert len(random) == 5 and len(truth(server)) == 43


@pytest.mark.parametrize(
    "body",
    [None, {}, {"pks": []}, {"pks": ["3"]}, {"count": 0}, {"pks": [3], "count": 1}, [3]],
    ids=["no-body", "empty", "no-pks", "text-pk", "zero-count", "both", "a-list"],
)
def test_an_admin_delete_that_names_no_customer_is_refused_and_deletes_nothing(
    make_sandbox: Make, body: object
) -> None:
    server = make_sandbox(customers=20)
    answer = (
        server.admin.post("delete", json=body)
        if body is not None
        else (server.admin.post("delete"))
    )
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert '{"pks": [<pk>, ...]}' in detail and '{"count": N}' in detail, detail
    assert len(truth(server)) == 20


def test_live_writers_delete_customers_while_clients_read(make_sandbox: Make) -> None:
    server = make_sandbox(
        customers=300, writers_per_second=300, writer_create_share=0.0, writer_delete_share=0.5
    )
    before = {r["pk"] for r in truth(server)}
    client = client_for(server)
    # Read until the writers have deleted something: no sleep-then-assert.
    while len(before - {r["pk"] for r in truth(server)}) < 3:
        assert client.get("/api/v1/customers/", params={"limit": 1}).status_code == 200
    server.admin.post("quiesce")
    after = {r["pk"] for r in truth(server)}
    assert after < before, "deleted, and nothing created"
    listed = client.get("/api/v1/customers/", params={"limit": 1000}).json()
    assert listed["count"] == len(after)


def test_customers_are_created_between_the_page_reads_of_a_client(make_sandbox: Make) -> None:
    server = make_sandbox(customers=20, creates_per_list=2)
    client = client_for(server)
    counts = [client.get("/api/v1/customers/").json()["count"] for _ in range(3)]
    assert counts == [20, 22, 24]
    server.admin.post("quiesce")
    assert client.get("/api/v1/customers/").json()["count"] == 26
    assert client.get("/api/v1/customers/").json()["count"] == 26
