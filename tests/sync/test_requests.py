"""What an incremental sync asks of Omnitron: every HTTP request, the login included, counted by
kind as it leaves the client, against the sandbox over real HTTP (docs/performance.md)."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from omnisync.orchestration import Local
from omnisync.sync import open_run
from omnisync.sync.run import run_sync
from sandbox import SandboxServer
from tests.sync.sandbox_runs import assert_lake_matches_truth, settings_for, wait_for_server_clock

Make = Callable[..., SandboxServer]
SERVERS: dict[str, dict[str, Any]] = {
    "sorted": {},
    "sort-ignored": {"ignore_sort": True},
    "date-only": {"date_only_filters": True, "utc_offset_hours": 3},
}


class Counting(httpx.HTTPTransport):
    """A transport that counts what goes through it: ``login``, ``count`` (a list asked with
    ``limit=1``), ``list`` (a page), ``read`` (one customer) or the method and path."""

    def __init__(self) -> None:
        super().__init__()
        self.kinds: Counter[str] = Counter()
        self.sent: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/auth/login/"):
            kind = "login"
        elif path.endswith("/customers/"):
            kind = "count" if request.url.params.get("limit") == "1" else "list"
        elif "/customers/" in path and request.method == "GET":
            kind = "read"
        else:
            kind = f"{request.method} {path}"
        self.kinds[kind] += 1
        self.sent.append(f"{request.method} {request.url.path}?{request.url.query.decode()}")
        return super().handle_request(request)


@pytest.mark.parametrize("modes", SERVERS.values(), ids=SERVERS.keys())
def test_an_incremental_whose_changes_fit_one_page_makes_at_most_three_requests(
    make_sandbox: Make, tmp_path: Path, modes: dict[str, Any]
) -> None:
    """1,000 changes on a lake of 3,000 customers: the login, the count of every customer (the
    deletion check's ``S``, and the server's clock), and one page of what changed since the
    watermark (the window, and the deletion check's ``M``)."""
    server = make_sandbox(customers=3000, max_limit=2000, **modes)
    settings = settings_for(server, tmp_path, lag_seconds=0, page_size=2000, window_rows=5000)
    full = run_sync(settings, False, Local())
    assert isinstance(full, dict) and full["read"] == 3000
    server.admin.post("modify", json={"count": 1000})
    wait_for_server_clock(server, 0)
    counting = Counting()
    with open_run(settings, uuid.uuid4().hex, validate=False, transport=counting) as context:
        outcome = run_sync(settings, False, Local(), context=context)
    assert isinstance(outcome, dict)
    print(dict(counting.kinds), *counting.sent, sep="\n")
    assert outcome["read"] >= 1000 and outcome["windows"] == 1
    assert outcome["deleted"] == 0
    assert sum(counting.kinds.values()) <= 3, counting.sent
    assert_lake_matches_truth(server, str(tmp_path / "lake"))


@pytest.mark.parametrize("modes", SERVERS.values(), ids=SERVERS.keys())
def test_an_incremental_of_a_few_pages_reads_its_changes_once(
    make_sandbox: Make, tmp_path: Path, modes: dict[str, Any]
) -> None:
    """1,000 changes on pages of 300: planning's page is not the whole answer, so the rest of
    what changed since the watermark is read in pk ranges, once. The window reads nothing
    again, and the deletion check asks nothing: ``S`` is the run's first count, ``M`` is in
    those answers. Every request is the login, that one count, or a list open above."""
    server = make_sandbox(customers=3000, max_limit=300, **modes)
    settings = settings_for(
        server, tmp_path, lag_seconds=0, page_size=300, window_rows=5000, chunk_rows=2000
    )
    run_sync(settings, False, Local())
    server.admin.post("modify", json={"count": 1000})
    wait_for_server_clock(server, 0)
    counting = Counting()
    outcome = _incremental(settings, counting)
    print(dict(counting.kinds), *counting.sent, sep="\n")
    assert outcome["read"] >= 1000 and outcome["windows"] == 1 and outcome["deleted"] == 0
    assert counting.kinds["count"] == 1, counting.sent
    assert set(counting.kinds) == {"login", "count", "list"}, counting.sent
    lists = [
        line
        for line in counting.sent
        if line.startswith("GET /api/v1/customers/?") and not line.endswith("?limit=1")
    ]
    assert len(lists) == counting.kinds["list"], counting.sent
    # each open above (what changed since the watermark), none the window's bounded query
    assert all("modified_date__gte" in line for line in lists), counting.sent
    assert not [line for line in lists if "modified_date__lt" in line], counting.sent
    assert_lake_matches_truth(server, str(tmp_path / "lake"))
    # Deletions are still found from those answers.
    server.admin.post("modify", json={"count": 1000})
    assert server.admin.post("delete", json={"pks": [7, 1200, 2999]}).json()["pks"]
    wait_for_server_clock(server, 0)
    again = _incremental(settings, Counting())
    assert again["deleted"] == 3
    assert_lake_matches_truth(server, str(tmp_path / "lake"))


def _incremental(settings: Any, counting: Counting) -> dict[str, Any]:
    with open_run(settings, uuid.uuid4().hex, validate=False, transport=counting) as context:
        outcome = run_sync(settings, False, Local(), context=context)
    assert isinstance(outcome, dict)
    return outcome


def test_customers_deleted_before_a_one_page_incremental_are_found_from_its_answers(
    make_sandbox: Make, tmp_path: Path
) -> None:
    """``S`` and ``M`` taken from planning's answers still find deletions: customers deleted
    before the run (and one modified, then deleted) leave the lake in that run."""
    server = make_sandbox(customers=3000, max_limit=2000)
    settings = settings_for(server, tmp_path, lag_seconds=0, page_size=2000, window_rows=5000)
    run_sync(settings, False, Local())
    server.admin.post("modify", json={"pks": [5, 6, 7]})
    assert server.admin.post("delete", json={"pks": [7, 1200, 2999]}).json()["pks"]
    wait_for_server_clock(server, 0)
    outcome = _incremental(settings, Counting())
    assert outcome["deleted"] == 3
    assert_lake_matches_truth(server, str(tmp_path / "lake"))


def test_a_server_that_stops_taking_datetimes_is_asked_again_with_dates(
    make_sandbox: Make, tmp_path: Path
) -> None:
    """The filters a run recorded are used without asking; when the server's answer contradicts
    them (400 to a datetime), the run asks again with dates and records that for the next."""
    from omnisync.state import StateStore

    server = make_sandbox(customers=1500, max_limit=2000)
    settings = settings_for(server, tmp_path, lag_seconds=0, page_size=2000, window_rows=5000)
    run_sync(settings, False, Local())
    server.admin.patch("modes", json={"date_only_filters": True})
    server.admin.post("modify", json={"count": 50})
    wait_for_server_clock(server, 0)
    counting = Counting()
    outcome = _incremental(settings, counting)
    assert counting.sent.count("GET /api/v1/customers/?limit=1") == 2, counting.sent
    assert outcome["read"] >= 50 and outcome["deleted"] == 0
    store = StateStore(settings.state_url.get_secret_value())
    assert store.servers.datetime_filters(server.url) is False
    store.dispose()
    server.admin.post("modify", json={"count": 50})
    wait_for_server_clock(server, 0)
    again = Counting()
    _incremental(settings, again)
    assert sum(again.kinds.values()) <= 3, again.sent
    assert_lake_matches_truth(server, str(tmp_path / "lake"))


def test_a_plan_left_open_on_a_server_that_then_stops_taking_datetimes_is_finished(
    make_sandbox: Make, tmp_path: Path
) -> None:
    """A resumed plan's window is the first to meet the refusal: the run records the server as
    date-only and runs its steps again with dates, instead of failing every run after."""
    from omnisync.sync import sync_window
    from tests.sync.steps import plan_for

    server = make_sandbox(customers=2000, seed=4)
    settings = settings_for(server, tmp_path, lag_seconds=0, window_rows=400)
    with open_run(settings, "interrupted") as context:
        context.snapshot.ensure_current()  # as a run does before it plans
        plan = plan_for(context)
        assert len(plan.windows) > 2 and context.datetimes
        sync_window(context, plan.plan_id, *plan.windows[0])  # then the process died
    server.admin.patch("modes", json={"date_only_filters": True})
    server.admin.post("modify", json={"count": 30})
    wait_for_server_clock(server, 0)
    outcome = run_sync(settings, False, Local())
    assert isinstance(outcome, dict) and outcome["resumed_plan"]
    assert_lake_matches_truth(server, settings.lake)


def test_a_refused_datetime_is_known_to_the_client_too(make_sandbox: Make, tmp_path: Path) -> None:
    """After a refusal the run's client answers "dates only" as well: a full refresh that asks
    the client again must not get the probe's earlier, cached "datetimes"."""
    server = make_sandbox(customers=50)
    settings = settings_for(server, tmp_path, lag_seconds=0)
    with open_run(settings, uuid.uuid4().hex, validate=False) as context:
        assert context.client.datetime_filters_supported is True
        context.filters_rejected()
        assert context.client.datetime_filters_supported is False
        assert context.datetimes is False
        assert context.store.servers.datetime_filters(server.url) is False


@pytest.mark.parametrize("changes", [200, 1000], ids=["one page", "a few pages"])
def test_a_retried_window_reads_what_planning_read_so_a_deletion_is_not_cancelled(
    make_sandbox: Make, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, changes: int
) -> None:
    """Found by a review. The deletion check takes ``S`` and ``M`` from planning's answers; a
    window that failed once and read its range again could miss a customer created in it that
    a live writer then modified (its new version is after the upper bound): counted in ``S``,
    in neither ``M`` nor the lake, it cancelled a deleted customer in the check's sum. The retry
    reads the same answers as the first attempt."""
    import stamina

    from omnisync.sync import window as window_step

    server = make_sandbox(customers=3000, max_limit=300)
    settings = settings_for(
        server, tmp_path, lag_seconds=0, page_size=300, window_rows=5000, chunk_rows=2000
    )
    run_sync(settings, False, Local())
    server.admin.post("modify", json={"count": changes})
    created = server.admin.post("create", json={"count": 1}).json()["pks"][0]
    assert server.admin.post("delete", json={"pks": [7]}).json()["pks"]
    wait_for_server_clock(server, 0)
    real, attempts = window_step.sync_window, []

    def failing_once(*args: Any, **kwargs: Any) -> Any:
        attempts.append(1)
        if len(attempts) == 1:
            server.admin.post("modify", json={"pks": [created]})  # after planning read it
            raise TimeoutError("the lake's disk did not answer")
        return real(*args, **kwargs)

    monkeypatch.setattr(window_step, "sync_window", failing_once)
    with stamina.set_testing(True, attempts=3):
        outcome = _incremental(settings, Counting())
    assert len(attempts) == 2
    assert outcome["deleted"] == 1, outcome


def test_an_incremental_decodes_its_pages_once_as_typed_records(
    make_sandbox: Make, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by a review: planning asked whether its page was complete before decoding it, and
    ``complete`` decoded the slow exact-dict view of every record, beside the typed view the
    window reads (about 8 ms a page of 1,000, against 2 ms)."""
    from omnisync.client import pages

    server = make_sandbox(customers=3000, max_limit=2000)
    settings = settings_for(server, tmp_path, lag_seconds=0, page_size=2000, window_rows=5000)
    run_sync(settings, False, Local())
    server.admin.post("modify", json={"count": 1000})
    wait_for_server_clock(server, 0)
    decoded: list[int] = []
    exact = pages.loads_exact
    monkeypatch.setattr(pages, "loads_exact", lambda raw: decoded.append(len(raw)) or exact(raw))
    outcome = _incremental(settings, Counting())
    assert outcome["read"] >= 1000 and not decoded
