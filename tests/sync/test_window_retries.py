"""Which failures of a window are worth running it again: what may pass, not what stays."""

from __future__ import annotations

import errno
from typing import Any

import pyarrow as pa
import pytest
import stamina

from omnisync.client import AuthenticationFailed, ConfigurationError, RetriesExhausted
from omnisync.lake.errors import LakeDamaged, LakeError
from omnisync.sync.window import _worth_retrying


@pytest.mark.parametrize(
    ("error", "again"),
    [
        (LakeDamaged("customer_changes/x.parquet", "lake/x.parquet", "bad footer"), False),
        (LakeError("the lake's customers/ has 4 buckets"), False),
        (AuthenticationFailed("login refused"), False),
        (ConfigurationError("certificate cannot be verified", unsent=True), False),
        (OSError(errno.EIO, "input/output error"), True),  # an object store's hiccup
        (OSError(errno.EBUSY, "the object changed while it was read"), True),
        (TimeoutError("read timed out"), True),
        (RetriesExhausted("503 five times"), True),
        (pa.ArrowMemoryError("malloc failed"), True),
    ],
)
def test_a_window_is_run_again_only_after_a_failure_that_may_pass(
    error: Exception, again: bool
) -> None:
    assert _worth_retrying(error) is again


def test_ctrl_c_in_a_window_stops_the_run_instead_of_running_the_window_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found by a new user: Ctrl-C during a one-window sync (the window runs on the main thread,
    where the signal lands) was logged as "window failed, running it again:" with nothing after
    the colon, and the window read again from its start: stamina hands every exception to the
    retry predicate, KeyboardInterrupt included."""
    from omnisync.sync import window

    calls = []

    def interrupted(*args: object, **kwargs: object) -> None:
        calls.append(args)
        raise KeyboardInterrupt

    monkeypatch.setattr(window, "sync_window", interrupted)
    with pytest.raises(KeyboardInterrupt):
        window.sync_window_retrying(None, "plan", None, None)  # type: ignore[arg-type]
    assert len(calls) == 1, "run once, not again"
    assert window._worth_retrying(KeyboardInterrupt()) is False
    assert window._worth_retrying(SystemExit(1)) is False


def test_ctrl_c_while_windows_run_on_threads_starts_no_further_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found by a review: with several windows, Ctrl-C (on the main thread, waiting for them)
    left the thread pool, which waited for every window still queued: a 29-window sync took the
    signal and read all 29. Windows not started are cancelled; the running ones end."""
    import threading
    from types import SimpleNamespace

    from omnisync import orchestration
    from omnisync.sync import window

    started: list[int] = []
    both_running = threading.Event()
    go = threading.Event()
    lock = threading.Lock()

    def one_window(context: object, plan_id: str, lo: int, hi: int, first: object) -> None:
        with lock:
            started.append(lo)
            if len(started) == 2:
                both_running.set()
        assert go.wait(30), "released after the cancellation"

    def interrupted_wait(futures: object, return_when: object) -> None:
        assert both_running.wait(30)
        raise KeyboardInterrupt

    real_cancel = orchestration._cancel_unstarted

    def cancel_then_release(futures: list[object]) -> None:
        real_cancel(futures)  # type: ignore[arg-type]
        go.set()

    monkeypatch.setattr(window, "sync_window_retrying", one_window)
    monkeypatch.setattr(orchestration, "wait", interrupted_wait)
    monkeypatch.setattr(orchestration, "_cancel_unstarted", cancel_then_release)
    windows = [(i, i + 1) for i in range(12)]
    plan = SimpleNamespace(plan_id="p", windows=windows, first_pages={}, resumed=False)
    context = SimpleNamespace(settings=SimpleNamespace(window_concurrency=2))
    with pytest.raises(KeyboardInterrupt):
        orchestration.Local().run_windows(context, plan)  # type: ignore[arg-type]
    assert sorted(started) == [0, 1], "the two running windows, and no other"


def test_a_window_whose_client_was_closed_sends_nothing_and_is_not_run_again() -> None:
    """Found by a review: after a second Ctrl-C the run closed its client while window threads
    still ran; httpx's bare RuntimeError was worth a retry, and a stopping sync went on for
    469 s, each window retried against the closed client."""
    import httpx
    from pydantic import SecretStr

    from omnisync.client import ClientClosed, OmnitronClient

    sent: list[httpx.Request] = []
    client = OmnitronClient(
        "https://omnitron.example",
        token=SecretStr("t"),
        transport=httpx.MockTransport(lambda r: sent.append(r) or httpx.Response(200, json={})),
    )
    client.close()
    with pytest.raises(ClientClosed) as raised:
        client.send("PATCH", "/api/v1/customers/1/", json={"erp_code": "A"})
    assert raised.value.unsent and not sent
    assert _worth_retrying(raised.value) is False


def test_a_client_closed_while_a_request_starts_is_stopping_not_a_bare_runtime_error() -> None:
    """The closed-client check and the request are two steps: a ``close()`` from another thread
    between them made httpx raise a bare RuntimeError (retried, then unclassified: an ERP
    write-back's row said nothing of why). It is the same refusal, nothing sent."""
    import httpx
    from pydantic import SecretStr

    from omnisync.client import ClientClosed, OmnitronClient

    sent: list[httpx.Request] = []
    client = OmnitronClient(
        "https://omnitron.example",
        token=SecretStr("t"),
        transport=httpx.MockTransport(lambda r: sent.append(r) or httpx.Response(200, json={})),
    )
    request = client._http.request

    def closed_meanwhile(*args: Any, **kwargs: Any) -> httpx.Response:
        client._http.close()  # another thread's close, just after the check
        return request(*args, **kwargs)

    client._http.request = closed_meanwhile  # type: ignore[method-assign]
    with pytest.raises(ClientClosed) as raised:
        client.send("PATCH", "/api/v1/customers/1/", json={"erp_code": "A"})
    assert raised.value.unsent and not sent
    assert _worth_retrying(raised.value) is False


def test_a_client_closed_while_its_answer_is_read_does_not_say_the_request_was_not_sent() -> None:
    """Found by a review: httpx's stream errors are RuntimeErrors too, and come after the request
    left (the answer being read when another thread closes the client). Such a write may have
    been applied: it is the run stopping, but not "not sent"."""
    import httpx
    from pydantic import SecretStr

    from omnisync.client import ClientClosed, OmnitronClient

    client = OmnitronClient(
        "https://omnitron.example",
        token=SecretStr("t"),
        transport=httpx.MockTransport(lambda r: httpx.Response(200, json={})),
    )

    def closed_while_answered(*args: Any, **kwargs: Any) -> httpx.Response:
        client._http.close()
        raise httpx.StreamClosed()

    client._http.request = closed_while_answered  # type: ignore[method-assign]
    with pytest.raises(ClientClosed) as raised:
        client.send("PATCH", "/api/v1/customers/1/", json={"erp_code": "A"})
    assert not raised.value.unsent
    assert "not sent" not in str(raised.value)
    assert _worth_retrying(raised.value) is False


def test_a_window_that_fails_closes_its_pages_before_it_is_run_again(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """A failed window's pages were left to the garbage collector (its traceback held them
    through the retry), and their requests asked ahead went on: each attempt's pages are
    closed when it fails, before the window runs again."""
    from omnisync.client import paginator
    from omnisync.orchestration import Local
    from omnisync.sync import window
    from omnisync.sync.run import run_sync
    from sandbox import SandboxServer
    from tests.sync.sandbox_runs import settings_for

    made: list[Any] = []
    changed = paginator.Paginator.changed

    def kept(self: Any, *args: Any, **kwargs: Any) -> Any:
        made.append(changed(self, *args, **kwargs))
        return made[-1]

    real_type = window._type_chunk
    failures: list[bool] = []

    def fails_once(*args: Any, **kwargs: Any) -> Any:
        if not failures:
            failures.append(all(pages.gi_frame is not None for pages in made))
            raise TimeoutError("read timed out")  # worth running the window again
        return real_type(*args, **kwargs)

    monkeypatch.setattr(paginator.Paginator, "changed", kept)
    monkeypatch.setattr(window, "_type_chunk", fails_once)
    with SandboxServer(customers=400, seed=3) as server:
        settings = settings_for(server, tmp_path, lag_seconds=0, chunk_rows=100, page_size=100)
        with stamina.set_testing(True, attempts=3, cap=True):  # the window's retry, at once
            outcome = run_sync(settings, False, Local())
    assert isinstance(outcome, dict) and outcome["read"] == 400, outcome
    assert failures == [True], "the first attempt failed while its pages were open"
    assert len(made) >= 2, "the window ran again"
    assert made[0].gi_frame is None, "the failed attempt's pages were closed"
