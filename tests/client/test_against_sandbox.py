"""The client against the sandbox over real HTTP, with the sandbox's faults switched on."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import SecretStr

from omnisync.client import (
    AuthenticationFailed,
    CustomerQuery,
    DateFilterRejected,
    NotAcceptable,
    NotFound,
    OmnitronClient,
    RetriesExhausted,
    Throttle,
    ValidationFailed,
)
from sandbox import SandboxServer
from tests.conftest import truth

Make = Callable[..., SandboxServer]
PASSWORD = "sandbox"


def client_for(server: SandboxServer, **options: Any) -> OmnitronClient:
    defaults: dict[str, Any] = {
        "username": "sandbox",
        "password": SecretStr(PASSWORD),
        "page_size": 100,
        "max_rps": 1000,
        "concurrency": 4,
        "retry_attempts": 10,
        "retry_max_seconds": 30,
        "timeout_seconds": 5,
        "backoff_initial": 0.01,
        "backoff_max": 0.05,
        "backoff_jitter": 0.01,
        "throttle": Throttle(1000, 4),
    }
    return OmnitronClient(server.url, **{**defaults, **options})


def test_lists_every_customer_through_every_fault_kind(make_sandbox: Make) -> None:
    server = make_sandbox(
        customers=1500,
        faults={"rate": 0.3, "retry_after_seconds": 0, "slow_seconds": 0.05, "seed": 3},
    )
    server.admin.post("faults/next", json={"kinds": ["429", "500", "502", "503", "drop", "slow"]})
    with client_for(server) as client:
        rows = list(client.iter_customers(CustomerQuery(sort="pk")))
    assert [r["pk"] for r in rows] == [r["pk"] for r in truth(server)]
    assert rows == truth(server)
    injected = server.admin.get("stats").json()["faults_injected"]
    assert set(injected) == {"429", "500", "502", "503", "drop", "slow"}, injected


def test_a_token_that_expires_is_renewed_by_logging_in_again(make_sandbox: Make) -> None:
    server = make_sandbox(customers=1000, token_max_requests=3)
    with client_for(server) as client:
        pks = [r["pk"] for r in client.iter_customers()]
    assert len(pks) == 1000


def test_a_fixed_token_works_without_login(make_sandbox: Make) -> None:
    server = make_sandbox(customers=50, app={"static_token": "fixed-token-123"})
    with client_for(
        server, username=None, password=None, token=SecretStr("fixed-token-123")
    ) as client:
        assert client.count_customers() == 50


def test_wrong_password_is_authentication_failed_without_the_password(make_sandbox: Make) -> None:
    server = make_sandbox(customers=10)
    with client_for(server, password=SecretStr("hunter2-wrong")) as client:
        with pytest.raises(AuthenticationFailed) as caught:
            client.count_customers()
    assert "OMNITRON_PASSWORD" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_a_server_that_caps_limit_is_still_read_completely(make_sandbox: Make) -> None:
    server = make_sandbox(customers=450, max_limit=100)
    with client_for(server, page_size=1000) as client:
        pages = client.list_customers()
        sizes = [len(page.results) for page in pages]
    assert sizes == [100, 100, 100, 100, 50]


def test_invalid_page_after_the_result_set_shrinks_ends_the_listing(make_sandbox: Make) -> None:
    server = make_sandbox(customers=300)
    with client_for(server, page_size=10) as client:
        query = CustomerQuery(filters={"is_active": True}, sort="pk")
        pages = client.list_customers(query)
        first = next(pages)
        assert first.count > 20
        later = [r["pk"] for r in client.iter_customers(query.with_(pk_gt=first.results[-1]["pk"]))]
        for pk in later:
            client.patch_customer(pk, {"is_active": False})
        assert list(pages) == []
        assert pages.shrunk


def test_date_only_servers_are_detected(make_sandbox: Make) -> None:
    strict = make_sandbox(customers=20, date_only_filters=True)
    lenient = make_sandbox(customers=20)
    with client_for(strict) as client:
        assert client.datetime_filters_supported is False
        with pytest.raises(DateFilterRejected):
            client.count_customers(
                CustomerQuery(modified_gte=dt.datetime(2024, 1, 1, 10, tzinfo=dt.UTC))
            )
        assert client.count_customers(CustomerQuery(modified_gte=dt.date(2024, 1, 1))) >= 0
    with client_for(lenient) as client:
        assert client.datetime_filters_supported is True


def test_modified_date_range_filters_match_the_ground_truth(quiet_sandbox: SandboxServer) -> None:
    lo = dt.datetime(2023, 5, 1, 12, 30, 15, 250_000, tzinfo=dt.UTC)
    hi = dt.datetime(2024, 2, 1, tzinfo=dt.UTC)
    with client_for(quiet_sandbox) as client:
        got = [
            r["pk"]
            for r in client.iter_customers(
                CustomerQuery(modified_gte=lo, modified_lt=hi, sort="modified_date")
            )
        ]

    def stamp(row: dict[str, Any]) -> dt.datetime:
        return dt.datetime.fromisoformat(row["modified_date"])

    rows = sorted(
        (r for r in truth(quiet_sandbox) if lo <= stamp(r) < hi), key=lambda r: (stamp(r), r["pk"])
    )
    assert got == [r["pk"] for r in rows]


def test_single_customer_calls_and_their_typed_errors(make_sandbox: Make) -> None:
    server = make_sandbox(customers=20)
    with client_for(server) as client:
        customer = client.get_customer(4)
        patched = client.patch_customer(4, {"erp_code": "E-4"})
        assert patched["erp_code"] == "E-4"
        assert patched["modified_date"] > customer["modified_date"]
        put = client.put_customer(
            4,
            {
                "email": "new@example.com",
                "channel": customer["channel"],
                "channel_code": customer["channel_code"],
                "extra_field": {},
            },
        )
        assert put["email"] == "new@example.com"
        with pytest.raises(NotFound):
            client.get_customer(99_999)
        with pytest.raises(ValidationFailed) as invalid:
            client.patch_customer(4, {"email": "not-an-email"})
        assert invalid.value.errors == {"email": ["Enter a valid email address."]}
        with pytest.raises(NotAcceptable) as refused:
            client.patch_customer(4, {"channel": 3 if customer["channel"] != 3 else 1})
        assert refused.value.error_code == "customer_100_3"


def test_persistent_failures_end_in_retries_exhausted(make_sandbox: Make) -> None:
    server = make_sandbox(
        customers=5, faults={"rate": 1.0, "kinds": ["503"], "retry_after_seconds": 0}
    )
    with client_for(server, retry_attempts=3) as client:
        with pytest.raises(RetriesExhausted) as caught:
            client.get_customer(1)
    assert "503" in str(caught.value) and "3 attempts" in str(caught.value)


def test_an_unreachable_server_ends_in_retries_exhausted() -> None:
    client = OmnitronClient(
        "http://127.0.0.1:9",
        username="u",
        password=SecretStr("p4ss"),
        retry_attempts=2,
        backoff_initial=0.01,
        backoff_max=0.01,
        backoff_jitter=0,
        timeout_seconds=1,
        throttle=Throttle(100, 1),
    )
    with client, pytest.raises(RetriesExhausted, match="connection refused"):
        client.count_customers()


def test_the_request_rate_is_limited(make_sandbox: Make) -> None:
    server = make_sandbox(customers=5)
    with client_for(server, throttle=Throttle(20, 2)) as client:
        client.get_customer(1)  # logs in
        started = time.monotonic()
        for _ in range(20):
            client.get_customer(1)
        elapsed = time.monotonic() - started
    # 20 requests at 20/s cannot take less than about a second, however fast the machine; how
    # close to it they come is measured by the benchmarks, not asserted here.
    assert elapsed >= 0.9


def test_no_secret_reaches_logs_or_errors(
    make_sandbox: Make, caplog: pytest.LogCaptureFixture
) -> None:
    server = make_sandbox(
        customers=300,
        token_max_requests=2,
        faults={"rate": 0.3, "retry_after_seconds": 0, "slow_seconds": 0.01},
        app={"users": {"sandbox": "s3cret-Pa55word"}},
    )
    caplog.set_level(logging.DEBUG)
    with client_for(server, password=SecretStr("s3cret-Pa55word")) as client:
        rows = list(client.iter_customers())
        assert len(rows) == 300
        tokens = list(server.state.tokens)
        text = repr(client)
        for call in (
            lambda: client.get_customer(10**6),
            lambda: client.patch_customer(1, {"email": "x"}),
        ):
            with pytest.raises(Exception) as caught:
                call()
            text += str(caught.value) + repr(caught.value)
    text += caplog.text
    assert "s3cret-Pa55word" not in text
    for token in tokens:
        assert token not in text


def test_a_wrong_fixed_token_names_the_setting_to_fix(make_sandbox: Make) -> None:
    server = make_sandbox(customers=10, app={"static_token": "fixed-token-123"})
    with client_for(
        server, username=None, password=None, token=SecretStr("wrong-token-456")
    ) as client:
        with pytest.raises(AuthenticationFailed) as caught:
            client.count_customers()
    message = str(caught.value)
    assert message.startswith("Omnitron refused OMNITRON_TOKEN (401 on GET /api/v1/customers/")
    assert "check OMNITRON_TOKEN" in message and "wrong-token-456" not in message
