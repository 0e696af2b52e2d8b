"""Client edge cases with an in-process transport: what a real server rarely does on demand."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr

from omnisync.client import (
    AnswerLost,
    AuthenticationFailed,
    OmnitronClient,
    RetriesExhausted,
    Throttle,
    UnexpectedResponse,
)
from omnisync.client.errors import parse_retry_after
from omnisync.client.redaction import Redactor

Handler = Callable[[httpx.Request], httpx.Response]


def page(results: list[dict[str, Any]], next_url: str | None = None) -> httpx.Response:
    return httpx.Response(
        200,
        content=orjson.dumps(
            {"count": len(results), "next": next_url, "previous": None, "results": results}
        ),
    )


def make_client(handler: Handler, **options: Any) -> OmnitronClient:
    defaults: dict[str, Any] = {
        "token": SecretStr("tok-abcdef"),
        "retry_attempts": 4,
        "backoff_initial": 0.01,
        "backoff_max": 0.02,
        "backoff_jitter": 0.0,
        "throttle": Throttle(10_000, 8),
    }
    return OmnitronClient(
        "https://omnitron.test", transport=httpx.MockTransport(handler), **{**defaults, **options}
    )


def test_retry_after_is_honoured() -> None:
    calls: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(time.monotonic())
        if len(calls) == 1:
            return httpx.Response(429, headers={"Retry-After": "1"}, json={"detail": "throttled"})
        return page([])

    with make_client(handler) as client:
        assert client.count_customers() == 0
    assert calls[1] - calls[0] >= 0.95


def test_5xx_with_an_html_body_is_retried() -> None:
    answers = iter(
        [
            httpx.Response(502, text="<html>bad gateway</html>"),
            httpx.Response(500, text="Internal Server Error"),
            page([{"pk": 1}]),
        ]
    )
    with make_client(lambda _: next(answers)) as client:
        assert [r["pk"] for r in client.iter_customers()] == [1]


def test_a_success_that_is_not_json_is_fatal_not_retried() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, text="<html>maintenance</html>")

    with make_client(handler) as client, pytest.raises(UnexpectedResponse, match="not JSON"):
        client.get_customer(1)
    assert len(calls) == 1


def test_timeouts_are_retried_then_exhausted() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with (
        make_client(handler, retry_attempts=3) as client,
        pytest.raises(RetriesExhausted, match="timed out"),
    ):
        client.get_customer(1)


def test_a_401_triggers_exactly_one_new_login_per_request() -> None:
    logins: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/auth/login/":
            logins.append(request)
            return httpx.Response(200, json={"key": f"key-{len(logins)}"})
        return httpx.Response(401, json={"detail": "Invalid token."})

    with make_client(handler, token=None, username="u", password=SecretStr("pw-secret")) as client:
        with pytest.raises(AuthenticationFailed) as caught:
            client.get_customer(1)
    assert len(logins) == 2  # the first login, then one renewal after the 401
    assert "pw-secret" not in str(caught.value)
    assert orjson.loads(logins[0].content) == {"username": "u", "password": "pw-secret"}


def test_next_links_are_followed_on_our_own_base_url() -> None:
    seen: list[httpx.URL] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        if request.url.params.get("page") == "2":
            return page([{"pk": 2}])
        return page(
            [{"pk": 1}], "http://internal-host:8080/api/v1/customers/?limit=1000&page=2&sort=pk"
        )

    with make_client(handler) as client:
        assert [r["pk"] for r in client.iter_customers()] == [1, 2]
    assert all(url.host == "omnitron.test" and url.scheme == "https" for url in seen)


def test_no_more_requests_in_flight_than_the_concurrency_limit() -> None:
    lock = threading.Lock()
    in_flight, peak = 0, 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        time.sleep(0.02)
        with lock:
            in_flight -= 1
        return httpx.Response(200, json={"pk": 1})

    with make_client(handler, throttle=Throttle(10_000, 3)) as client:
        threads = [threading.Thread(target=client.get_customer, args=(1,)) for _ in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert peak == 3


def test_throttles_are_shared_per_process_and_base_url() -> None:
    assert Throttle.shared("https://a", 5, 2) is Throttle.shared("https://a", 5, 2)
    assert Throttle.shared("https://a", 5, 2) is not Throttle.shared("https://b", 5, 2)


def test_the_redactor_masks_secrets_and_authorization_headers() -> None:
    redact = Redactor(["hunter22", None, "ab"])
    assert redact("password hunter22 in text") == "password *** in text"
    assert redact("{'Authorization': 'Token 0123abcd'}") == "{'Authorization': 'Token ***'}"
    assert redact("ab stays") == "ab stays"


@pytest.mark.parametrize(
    ("header", "seconds"), [("3", 3.0), ("0", 0.0), ("soon", None), (None, None)]
)
def test_retry_after_parsing(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header) == seconds


# -- writes: never sent again blindly -----------------------------------------------------------


def patch_counter(failure: Callable[[httpx.Request], httpx.Response]) -> tuple[Handler, list[str]]:
    """A handler that fails the first PATCH with ``failure`` and answers the rest."""
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.method)
        if request.method == "PATCH" and sent.count("PATCH") == 1:
            return failure(request)
        return httpx.Response(200, json={"pk": 1, "erp_code": "E-1"})

    return handler, sent


def _raise(exc: type[httpx.TransportError]) -> Callable[[httpx.Request], httpx.Response]:
    def fail(request: httpx.Request) -> httpx.Response:
        raise exc("lost", request=request)

    return fail


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(lambda r: httpx.Response(502, text="<html>bad gateway</html>"), id="502"),
        pytest.param(lambda r: httpx.Response(500, json={"detail": "error"}), id="500"),
        pytest.param(lambda r: httpx.Response(504, text="gateway timeout"), id="504"),
        pytest.param(lambda r: httpx.Response(503, text="unavailable"), id="503-no-retry-after"),
        pytest.param(
            lambda r: httpx.Response(429, json={"detail": "slow"}), id="429-no-retry-after"
        ),
        pytest.param(_raise(httpx.ReadTimeout), id="read-timeout"),
        pytest.param(_raise(httpx.WriteTimeout), id="write-timeout"),
        pytest.param(_raise(httpx.RemoteProtocolError), id="reset"),
        pytest.param(_raise(httpx.ReadError), id="read-error"),
    ],
)
def test_a_patch_whose_answer_may_have_been_applied_is_never_sent_again(
    failure: Callable[[httpx.Request], httpx.Response],
) -> None:
    handler, sent = patch_counter(failure)
    with make_client(handler) as client, pytest.raises(AnswerLost, match="may have been applied"):
        client.patch_customer(1, {"erp_code": "E-1"})
    assert sent == ["PATCH"], "the client itself never sends a write again after such a failure"


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(_raise(httpx.ConnectError), id="connection-refused"),
        pytest.param(_raise(httpx.ConnectTimeout), id="connect-timeout"),
        pytest.param(
            lambda r: httpx.Response(429, headers={"Retry-After": "0"}, json={"detail": "x"}),
            id="429-retry-after",
        ),
        pytest.param(
            lambda r: httpx.Response(503, headers={"Retry-After": "0"}, text="down"),
            id="503-retry-after",
        ),
    ],
)
def test_a_patch_that_certainly_never_took_effect_is_retried(
    failure: Callable[[httpx.Request], httpx.Response],
) -> None:
    handler, sent = patch_counter(failure)
    with make_client(handler) as client:
        assert client.patch_customer(1, {"erp_code": "E-1"})["erp_code"] == "E-1"
    assert sent == ["PATCH", "PATCH"]


def test_reads_are_still_retried_after_any_transient_failure() -> None:
    answers = iter([httpx.Response(502, text="bad"), httpx.Response(200, json={"pk": 1})])
    with make_client(lambda _: next(answers)) as client:
        assert client.get_customer(1) == {"pk": 1}


def test_a_retry_budget_has_the_client_s_attempts() -> None:
    with make_client(lambda _: page([]), retry_attempts=3) as client:
        budget = client.retry_budget()
        assert [budget.another() for _ in range(3)] == [True, True, False]


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(httpx.Response(200, text="<html>welcome</html>"), id="html"),
        pytest.param(httpx.Response(200, content=b""), id="empty"),
        pytest.param(httpx.Response(200, json=[1, 2]), id="not-an-object"),
    ],
)
def test_a_patch_answered_with_something_other_than_the_customer_is_a_lost_answer(
    answer: httpx.Response,
) -> None:
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.method)
        return answer

    with make_client(handler) as client, pytest.raises(AnswerLost, match="may have been applied"):
        client.patch_customer(1, {"erp_code": "E-1"})
    assert sent == ["PATCH"]


def test_a_patch_whose_answer_cannot_be_decoded_is_a_lost_answer() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Encoding": "gzip"}, content=b"not gzip")

    with make_client(handler) as client, pytest.raises(AnswerLost):
        client.patch_customer(1, {"erp_code": "E-1"})
