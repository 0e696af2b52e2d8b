"""The state store on SQLite, PostgreSQL and MariaDB: migrations, watermarks, locks (G5)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy

from omnisync.state import LockHeld, StateError, StateStore

T = dt.datetime(2026, 5, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> StateStore:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/state.db"
    else:
        url = request.getfixturevalue(
            "postgres_url" if request.param == "postgresql" else "mariadb_url"
        )
    store = StateStore(url, lease_seconds=2)
    store.migrate()
    store.migrate()  # idempotent
    return store


def stream() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


def test_watermarks_are_exact_and_only_move_forward(store: StateStore) -> None:
    name = stream()
    assert store.watermark(name) is None
    store.set_watermark(name, T, "r1")
    store.set_watermark(name, T - dt.timedelta(days=1), "r2")
    assert store.watermark(name) == T
    store.set_watermark(name, T + dt.timedelta(microseconds=1), "r3")
    assert store.watermark(name) == T + dt.timedelta(microseconds=1)


def test_only_one_of_two_racing_runs_gets_the_lock(store: StateStore) -> None:
    name = stream()
    other = StateStore(store.url, lease_seconds=2)
    entered: list[str] = []
    refused: list[str] = []
    barrier = threading.Barrier(2)

    def run(who: StateStore, label: str) -> None:
        barrier.wait()
        try:
            with who.locked(name):
                entered.append(label)
                threading.Event().wait(0.5)
        except LockHeld as exc:
            refused.append(str(exc))

    threads = [
        threading.Thread(target=run, args=(s, label)) for s, label in ((store, "a"), (other, "b"))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(entered) == 1 and len(refused) == 1
    assert "being synced by" in refused[0] and "did nothing" in refused[0]


def test_a_waiting_run_gets_the_lock_when_the_first_ends(store: StateStore) -> None:
    name = stream()
    other = StateStore(store.url)
    held = threading.Event()

    def hold() -> None:
        with store.locked(name):
            held.set()
            time.sleep(0.6)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(5)
    started = time.monotonic()
    with other.locked(name, wait_seconds=5):
        assert other.lock_holder(name) == other.owner
        assert time.monotonic() - started >= 0.3, "the second run waited for the first"
    holder.join()


def test_the_lock_of_a_killed_process_is_taken_over(store: StateStore) -> None:
    name = stream()
    code = (
        f"from omnisync.state import StateStore; s = StateStore({store.url!r}); "
        f"assert s.try_lock({name!r}); import os; os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert store.lock_holder(name) is not None
    with store.locked(name, wait_seconds=0):
        assert store.lock_holder(name) == store.owner


def test_a_stale_lease_is_taken_over(store: StateStore) -> None:
    name = stream()
    with store.engine.begin() as connection:
        connection.execute(
            sqlalchemy.text(
                "insert into omnisync_locks (stream, owner, acquired_us, heartbeat_us) "
                "values (:s, 'elsewhere:1:x', 0, 0)"
            ),
            {"s": name},
        )
    assert store.try_lock(name)


def test_run_log_and_backfill_windows_round_trip(store: StateStore) -> None:
    name = stream()
    run = uuid.uuid4().hex
    store.start_run(run, name, "incremental", None)
    store.finish_run(run, "succeeded", window=(None, T), watermark_after=T, counts={"read": 3})
    assert store.recent_runs(name)[0]["status"] == "succeeded"
    store.save_plan(name, "p1", [(0, 10), (10, 20)])
    store.complete_window(name, "p1", 0, 5, 7)
    plan = store.open_plan(name)
    assert plan is not None and [w.status for w in plan[1]] == ["done", "pending"]
    store.complete_window(name, "p1", 10, 1, 15)
    plan = store.open_plan(name)
    assert plan is not None, "extracted but not merged: still open"
    store.close_plan(name, "p1")
    assert store.open_plan(name) is None


def test_an_unreachable_database_is_one_clear_error() -> None:
    with pytest.raises(StateError, match="OMNISYNC_STATE_URL") as caught:
        StateStore("postgresql+psycopg://omnisync:s3cr3t@127.0.0.1:1/x").migrate()
    assert "s3cr3t" not in str(caught.value)
