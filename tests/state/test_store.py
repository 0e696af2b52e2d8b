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

from omnisync.state import LockHeld, LockLost, StateError, StateStore
from omnisync.state.store import MIGRATIONS, SCHEMA_REVISION
from tests.fresh_interpreter import printed_by

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


def test_the_schema_revision_is_the_newest_migration() -> None:
    """A new migration must move ``SCHEMA_REVISION`` too, or databases would never get it."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_current_head() == SCHEMA_REVISION


def test_a_current_schema_is_not_handed_to_alembic(store: StateStore, tmp_path: Path) -> None:
    """Alembic is imported only when there is something to migrate: a database at the newest
    revision is read with one query, and a new database is still created."""
    script = (
        "import sys\n"
        "from omnisync.state import StateStore\n"
        "store = StateStore(sys.argv[1]); store.migrate()\n"
        "print('alembic' in sys.modules, store.open_plan('s'))\n"
    )
    assert printed_by(script, store.url) == ["False", "None"]
    assert printed_by(script, f"sqlite:///{tmp_path}/new.db") == ["True", "None"]


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
    assert "is busy" in refused[0] and "did nothing" in refused[0]


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
        row = other.lock_holder(name)
        assert row is not None and row["owner"] == other.owner
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
        holder = store.lock_holder(name)
        assert holder is not None and holder["owner"] == store.owner


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


def test_a_run_that_lost_its_lock_can_change_nothing(store: StateStore) -> None:
    """G5 fencing: a holder that stalled past its lease and was taken over is refused at every
    state change, in the same statement that would have made it."""
    name = stream()
    stalled = StateStore(store.url, lease_seconds=0.2)
    old = stalled.try_lock(name, run_id="stalled-run")
    assert old is not None
    stalled.save_plan(name, "plan-1", [(0, 10), (10, 20)], fence=old)
    time.sleep(0.3)  # no heartbeat: the lease (0.2 s) has certainly expired
    new = StateStore(store.url, lease_seconds=0.2).try_lock(name, run_id="new-run")
    assert new is not None, "the expired lease is taken over"
    attempts = {
        "window done": lambda: stalled.complete_window(name, "plan-1", 0, 5, 1, fence=old),
        "watermark": lambda: stalled.set_watermark(name, T, "stalled-run", fence=old),
        "plan closed": lambda: stalled.close_plan(name, "plan-1", fence=old),
        "plan saved": lambda: stalled.save_plan(name, "plan-2", [(0, 1)], fence=old),
        "plans abandoned": lambda: stalled.abandon_plans(name, fence=old),
        "check": lambda: old.check(force=True),
    }
    for what, attempt in attempts.items():
        with pytest.raises(LockLost):
            attempt()
        assert what
    assert store.watermark(name) is None
    assert [w.status for w in store.plan_windows(name, "plan-1")] == ["pending", "pending"]
    assert store.open_plan(name) is not None and store.open_plan(name)[0] == "plan-1"  # type: ignore[index]
    store.set_watermark(name, T, "new-run", fence=new)
    assert store.watermark(name) == T, "the new holder's changes go through"
    holder = store.lock_holder(name)
    assert holder is not None and holder["run_id"] == "new-run"


def test_a_pid_is_trusted_only_in_the_same_kernel_and_pid_namespace(store: StateStore) -> None:
    """Two containers may share a host name and pids: a holder whose pid looks dead here but
    ran in another PID namespace keeps its lock until its lease expires."""
    import socket

    name = stream()
    dead_pid = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    beat = int(time.time() * 1e6)
    with store.engine.begin() as connection:
        connection.execute(
            sqlalchemy.text(
                "insert into omnisync_locks (stream, owner, acquired_us, heartbeat_us) "
                "values (:s, :o, :t, :t)"
            ),
            {"s": name, "o": f"{socket.gethostname()}:{dead_pid}:othernamespace:abc", "t": beat},
        )
    assert store.try_lock(name) is None, "another namespace's pid says nothing"
    assert store.holder_alive(name) is not None
