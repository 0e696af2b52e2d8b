"""A Dask worker's run contexts (``omnisync/sync/context.py``): opened once per run from the
same factory as the flow's, and closed when later runs come, so that a worker the cluster keeps
for days holds the connections of its last runs only."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from omnisync.state import LockLost, StateStore
from omnisync.sync import context as context_module
from omnisync.sync.context import STREAM, _WorkerRuns, worker_context
from sandbox import SandboxServer
from tests.sync.sandbox_runs import settings_for


def test_a_worker_keeps_its_last_two_runs_contexts_and_closes_older_ones(
    make_sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    server = make_sandbox(customers=50)
    settings = settings_for(server, tmp_path, lag_seconds=0)
    worker = _WorkerRuns()
    first = worker.context(settings, "run-a", None)
    assert worker.context(settings, "run-a", None) is first, "once per run"
    second = worker.context(settings, "run-b", None)
    assert worker.context(settings, "run-a", None) is first, "a straggler of run-a still works"
    assert not first.client._http.is_closed
    third = worker.context(settings, "run-c", None)
    assert first.client._http.is_closed, "the oldest run's client was closed"
    assert not second.client._http.is_closed and not third.client._http.is_closed
    assert second.client.count_customers() == 50


def test_a_worker_asks_with_dates_once_the_flow_knows_the_server_refuses_datetimes(
    make_sandbox: Callable[..., SandboxServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker opened its context from what the state recorded (datetimes); the flow then
    saw the server refuse them: the window it sends next says so, and the worker follows."""
    server = make_sandbox(customers=50)
    settings = settings_for(server, tmp_path, lag_seconds=0)
    monkeypatch.setattr(context_module, "_worker_runs", _WorkerRuns())  # this test's worker
    opened = worker_context(settings, "run-a", None, datetimes=True)
    opened.datetimes = True  # as a run recorded it before the server changed
    again = worker_context(settings, "run-a", None, datetimes=False)
    assert again is opened and opened.datetimes is False
    assert opened.client.datetime_filters_supported is False


def test_a_worker_writes_nothing_to_the_lake_once_the_flow_released_its_lock(
    make_sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    """Found by a review: a worker rebuilt the flow's fence from its identity and, once its
    first check had passed, answered from its own clock for half a lease. The flow's release
    (a failed window, Ctrl-C) deletes the lock row, so the next run could take the lock while a
    window still running on a worker wrote to the lake: a change-log part that the next run's
    compaction had already merged would be logged twice."""
    server = make_sandbox(customers=50)
    settings = settings_for(server, tmp_path, lag_seconds=0)
    store = StateStore(settings.state_url.get_secret_value())
    store.migrate()
    worker = _WorkerRuns()
    with store.lease.locked(STREAM, run_id="run-a") as fence:
        context = worker.context(settings, "run-a", (fence.owner, fence.acquired_us))
        context.storage.write_bytes("x/while-held.txt", b"ok")
    with pytest.raises(LockLost):
        context.storage.write_bytes("x/after-release.txt", b"late")
    assert not (Path(settings.lake) / "x" / "after-release.txt").exists()
    assert (Path(settings.lake) / "x" / "while-held.txt").exists()


def test_a_worker_that_cannot_ask_the_database_changes_nothing_and_its_window_is_retried(
    tmp_path: Path,
) -> None:
    """From a review: a worker's fence asks the database at each check, and a database that did
    not answer raised LockLost, which no window retries: one blip failed the run. It is refused
    as unproven, and the window runs again (its retry asks again; its files are replaced)."""
    from omnisync.lake import LakeStorage
    from omnisync.state import Fence, LockUnproven
    from omnisync.sync.window import _worth_retrying

    unreachable = StateStore("postgresql+psycopg://omnisync:pw-xyz@127.0.0.1:1/x")
    fence = Fence(unreachable.lease, STREAM, "owner", 1, asks_database=True)
    lake = LakeStorage(str(tmp_path / "lake"), guard=fence.check)
    with pytest.raises(LockUnproven) as raised:
        lake.write_bytes("x/unproven.txt", b"late")
    assert not (tmp_path / "lake" / "x" / "unproven.txt").exists()
    assert _worth_retrying(raised.value) and "pw-xyz" not in str(raised.value)
    assert not isinstance(raised.value, LockLost)
    assert "this change was not made" in str(raised.value)
    # at run time, not a setting to fix: exit 1, as a lost lock (a review: it exited 2)
    import typer

    from omnisync.commands.user_errors import user_errors

    with pytest.raises(typer.Exit) as ended, user_errors():
        raise raised.value
    assert ended.value.exit_code == 1
