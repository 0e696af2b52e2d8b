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
        "print('alembic' in sys.modules, store.plans.open('s'))\n"
    )
    assert printed_by(script, store.url) == ["False", "None"]
    assert printed_by(script, f"sqlite:///{tmp_path}/new.db") == ["True", "None"]


def stream() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


def test_a_server_s_filters_are_remembered_per_url(store: StateStore) -> None:
    url = f"https://omnitron-{uuid.uuid4().hex[:8]}.example/"
    assert store.servers.datetime_filters(url) is None
    store.servers.remember(url, True)
    assert store.servers.datetime_filters(url.rstrip("/")) is True
    store.servers.remember(url, False)  # a later answer replaces it
    assert store.servers.datetime_filters(url) is False
    with store.engine.connect() as connection:
        keys = connection.execute(sqlalchemy.text("select url from omnisync_servers")).scalars()
        assert url.rstrip("/") in list(keys)


def test_watermarks_are_exact_and_only_move_forward(store: StateStore) -> None:
    name = stream()
    assert store.watermarks.get(name) is None
    store.watermarks.set(name, T, "r1")
    store.watermarks.set(name, T - dt.timedelta(days=1), "r2")
    assert store.watermarks.get(name) == T
    store.watermarks.set(name, T + dt.timedelta(microseconds=1), "r3")
    assert store.watermarks.get(name) == T + dt.timedelta(microseconds=1)


def test_only_one_of_two_racing_runs_gets_the_lock(store: StateStore) -> None:
    name = stream()
    other = StateStore(store.url, lease_seconds=2)
    entered: list[str] = []
    refused: list[str] = []
    barrier = threading.Barrier(2)

    def run(who: StateStore, label: str) -> None:
        barrier.wait()
        try:
            with who.lease.locked(name):
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
        with store.lease.locked(name):
            held.set()
            time.sleep(0.6)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(5)
    started = time.monotonic()
    with other.lease.locked(name, wait_seconds=5):
        row = other.lease.holder(name)
        assert row is not None and row["owner"] == other.lease.owner
        assert time.monotonic() - started >= 0.3, "the second run waited for the first"
    holder.join()


def test_the_lock_of_a_killed_process_is_taken_over(store: StateStore) -> None:
    name = stream()
    code = (
        f"from omnisync.state import StateStore; s = StateStore({store.url!r}); "
        f"assert s.lease.try_lock({name!r}); import os; os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert store.lease.holder(name) is not None
    with store.lease.locked(name, wait_seconds=0):
        holder = store.lease.holder(name)
        assert holder is not None and holder["owner"] == store.lease.owner


def test_a_takeover_marks_the_dead_holders_own_run_interrupted(store: StateStore) -> None:
    """A reconciliation records under ``erp`` but locks ``erp-writeback``: killed, its run is
    found by the lock row's run_id, not by the stream, and marked taken over."""
    name = stream()
    killed, successor = uuid.uuid4().hex, uuid.uuid4().hex
    code = (
        f"from omnisync.state import StateStore; s = StateStore({store.url!r}); "
        f"s.runs.start({killed!r}, {name + '-log'!r}, 'write-back', None); "
        f"assert s.lease.try_lock({name + '-writeback'!r}, run_id={killed!r}); "
        "import os; os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert store.runs.recent(name + "-log")[0]["status"] == "running"
    with store.lease.locked(name + "-writeback", wait_seconds=0, run_id=successor):
        (run,) = store.runs.recent(name + "-log")
    assert run["run_id"] == killed and run["status"] == "interrupted", run
    assert run["error"] == f"taken over by run {successor}: its process was gone (killed)"


def test_a_stale_lease_is_taken_over(store: StateStore) -> None:
    name = stream()
    stalled = uuid.uuid4().hex
    store.runs.start(stalled, name, "incremental", None)
    with store.engine.begin() as connection:
        connection.execute(
            sqlalchemy.text(
                "insert into omnisync_locks (stream, owner, acquired_us, heartbeat_us, run_id) "
                "values (:s, 'elsewhere:1:x', 0, 0, :r)"
            ),
            {"s": name, "r": stalled},
        )
    assert store.lease.try_lock(name, run_id="b" * 32)
    (run,) = store.runs.recent(name)
    assert run["status"] == "interrupted"
    assert run["error"] == (
        f"taken over by run {'b' * 32}: it was killed on another host, or it stalled past its "
        "lease and changed nothing after that"
    ), "a holder on another host cannot be known dead: its lease ran out"


def test_run_log_and_backfill_windows_round_trip(store: StateStore) -> None:
    name = stream()
    run = uuid.uuid4().hex
    store.runs.start(run, name, "incremental", None)
    store.runs.finish(run, "succeeded", window=(None, T), watermark_after=T, counts={"read": 3})
    assert store.runs.recent(name)[0]["status"] == "succeeded"
    store.plans.save(name, "p1", [(0, 10), (10, 20)])
    store.plans.complete_window(name, "p1", 0, 5, 7)
    plan = store.plans.open(name)
    assert plan is not None and [w.status for w in plan[1]] == ["done", "pending"]
    store.plans.complete_window(name, "p1", 10, 1, 15)
    plan = store.plans.open(name)
    assert plan is not None, "extracted but not merged: still open"
    store.plans.close(name, "p1")
    assert store.plans.open(name) is None


def test_an_unreachable_database_is_one_clear_error() -> None:
    with pytest.raises(StateError, match="OMNISYNC_STATE_URL") as caught:
        StateStore("postgresql+psycopg://omnisync:s3cr3t@127.0.0.1:1/x").migrate()
    assert "s3cr3t" not in str(caught.value)


def test_a_run_that_released_its_lock_changes_nothing_more(
    store: StateStore, tmp_path: Path
) -> None:
    """Found by a review: leaving the lock deleted its row, but the fence still answered from
    this process's clock, so a window thread still running after Ctrl-C (or a merge) could write
    to the lake after the release, while a new run may already hold the lock."""
    from omnisync.lake import LakeStorage

    name = stream()
    with store.lease.locked(name, run_id="ending-run") as fence:
        fence.check()
    lake = LakeStorage(str(tmp_path / "lake"), guard=fence.check)
    with pytest.raises(LockLost, match="released"):
        lake.write_bytes("x/after-release.txt", b"late")
    assert not (tmp_path / "lake" / "x" / "after-release.txt").exists()
    with pytest.raises(LockLost, match="released"):
        store.watermarks.set(name, T, "ending-run", fence=fence)
    assert store.watermarks.get(name) is None


def test_a_run_that_lost_its_lock_can_change_nothing(store: StateStore) -> None:
    """G5 fencing: a holder that stalled past its lease and was taken over is refused at every
    state change, in the same statement that would have made it."""
    name = stream()
    stalled = StateStore(store.url, lease_seconds=0.2)
    old = stalled.lease.try_lock(name, run_id="stalled-run")
    assert old is not None
    stalled.plans.save(name, "plan-1", [(0, 10), (10, 20)], fence=old)
    time.sleep(0.3)  # no heartbeat: the lease (0.2 s) has certainly expired
    new = StateStore(store.url, lease_seconds=0.2).lease.try_lock(name, run_id="new-run")
    assert new is not None, "the expired lease is taken over"
    attempts = {
        "window done": lambda: stalled.plans.complete_window(name, "plan-1", 0, 5, 1, fence=old),
        "watermark": lambda: stalled.watermarks.set(name, T, "stalled-run", fence=old),
        "plan closed": lambda: stalled.plans.close(name, "plan-1", fence=old),
        "plan saved": lambda: stalled.plans.save(name, "plan-2", [(0, 1)], fence=old),
        "plans abandoned": lambda: stalled.plans.abandon(name, fence=old),
        "check": lambda: old.check(force=True),
    }
    for what, attempt in attempts.items():
        with pytest.raises(LockLost):
            attempt()
        assert what
    assert store.watermarks.get(name) is None
    assert [w.status for w in store.plans.windows(name, "plan-1")] == ["pending", "pending"]
    assert store.plans.open(name) is not None and store.plans.open(name)[0] == "plan-1"  # type: ignore[index]
    store.watermarks.set(name, T, "new-run", fence=new)
    assert store.watermarks.get(name) == T, "the new holder's changes go through"
    holder = store.lease.holder(name)
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
    assert store.lease.try_lock(name) is None, "another namespace's pid says nothing"
    assert store.lease.holder_alive(name) is not None


def make_dead(store: StateStore, name: str, leases: int = 10) -> None:
    """Age the heartbeat of ``name`` by ``leases`` leases, as the database's clock counts: a
    holder that stopped renewing that long ago (no waiting, and no host's clock involved)."""
    with store.engine.begin() as connection:
        connection.execute(
            sqlalchemy.text(
                "update omnisync_locks set heartbeat_us = heartbeat_us - :age where stream = :s"
            ),
            {"age": int(leases * store.lease.seconds * 1e6), "s": name},
        )


@pytest.mark.parametrize("offset", [300, -300], ids=["5-min-ahead", "5-min-behind"])
def test_a_taker_whose_clock_is_five_minutes_off_judges_a_holder_by_the_database_clock(
    store: StateStore, offset: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """G5: a live holder is not taken over by a taker whose clock runs 5 minutes ahead, and a
    dead one still is by a taker whose clock runs 5 minutes behind (and the other way round):
    leases are stamped and judged by the state database's clock only."""
    from omnisync.state import deletions, ledger, runs, times, watermarks

    live, dead = stream(), stream()
    live_fence = StateStore(store.url, lease_seconds=2).lease.try_lock(live, run_id="live-run")
    dead_fence = StateStore(store.url, lease_seconds=2).lease.try_lock(dead, run_id="dead-run")
    assert live_fence is not None and dead_fence is not None
    make_dead(store, dead)

    real_time, real_now_us = time.time, times.now_us
    monkeypatch.setattr(time, "time", lambda: real_time() + offset)
    for module in (times, deletions, ledger, runs, watermarks):  # every host clock they take
        monkeypatch.setattr(module, "now_us", lambda: real_now_us() + offset * 1_000_000)
    taker = StateStore(store.url, lease_seconds=2)

    assert taker.lease.try_lock(live, run_id="taker") is None, "a live holder is not taken over"
    assert taker.lease.holder_alive(live) is not None
    live_fence.check(force=True)  # still the live holder's
    taken = taker.lease.try_lock(dead, run_id="taker")
    assert taken is not None, "a dead holder is taken over"
    assert taker.lease.holder_alive(dead) is not None
    with pytest.raises(LockLost):
        dead_fence.check(force=True)
    taken.check(force=True)


def test_a_check_renews_when_less_than_half_the_lease_is_left(store: StateStore) -> None:
    """A lake write's check renews the lease synchronously once less than half of it is left
    (counted on the monotonic clock from the last renewal sent), and only then."""
    name = stream()
    fence = store.lease.try_lock(name)
    assert fence is not None and fence.renewed is not None

    def heartbeat() -> int:
        row = store.lease.holder(name)
        assert row is not None
        return int(row["heartbeat_us"])

    first = heartbeat()
    fence.check()
    assert heartbeat() == first, "more than half the lease left: no round trip"
    fence.renewed -= store.lease.seconds * 0.6  # as if 60% of the lease went by since
    fence.check()
    assert heartbeat() > first, "less than half left: renewed before answering"
    assert fence.remaining() > store.lease.seconds / 2


def test_a_check_cannot_pass_once_the_lease_could_have_been_taken_over(
    store: StateStore,
) -> None:
    """A holder whose last renewal is a full lease old on its own monotonic clock (it was
    frozen) proves the lock again before any lake change, and is refused once taken over."""
    name = stream()
    fence = store.lease.try_lock(name)
    assert fence is not None and fence.renewed is not None
    fence.renewed -= store.lease.seconds * 1.5
    fence.check()  # nobody took it: renewed, and the change may go on
    assert fence.remaining() > store.lease.seconds / 2

    fence.renewed -= store.lease.seconds * 1.5
    make_dead(store, name)
    taker = StateStore(store.url, lease_seconds=store.lease.seconds).lease.try_lock(name)
    assert taker is not None
    with pytest.raises(LockLost, match="lost the lock"):
        fence.check()
    with pytest.raises(LockLost):
        fence.check()


def test_a_renewal_that_fails_stops_the_change(tmp_path: Path) -> None:
    """When the lease runs short and the database cannot be asked, the check fails closed."""
    store = StateStore(f"sqlite:///{tmp_path}/state.db", lease_seconds=2)
    store.migrate()
    fence = store.lease.try_lock(stream())
    assert fence is not None and fence.renewed is not None
    (tmp_path / "state.db").rename(tmp_path / "moved.db")
    (tmp_path / "state.db").mkdir()  # the database file is now a directory: unusable
    store.engine.dispose()
    fence.renewed -= store.lease.seconds * 0.6
    with pytest.raises(LockLost, match="cannot prove"):
        fence.check()


def test_a_fence_rebuilt_in_another_process_proves_itself_first(store: StateStore) -> None:
    """A window task on another worker rebuilds the fence from its owner and acquisition time;
    it has renewed nothing yet, so its first check asks the database."""
    from omnisync.state import Fence

    name = stream()
    fence = store.lease.try_lock(name)
    assert fence is not None
    rebuilt = Fence(store.lease, name, fence.owner, fence.acquired_us)
    assert rebuilt.remaining() < 0
    rebuilt.check()
    assert rebuilt.remaining() > store.lease.seconds / 2
    make_dead(store, name)
    assert StateStore(store.url, lease_seconds=store.lease.seconds).lease.try_lock(name) is not None
    with pytest.raises(LockLost):
        Fence(store.lease, name, fence.owner, fence.acquired_us).check()


def test_a_taker_with_a_shorter_lease_waits_for_the_holder_s_own_lease(store: StateStore) -> None:
    """A deployment with a long lease and a run by hand with the default: the holder counts its
    own lease, so the taker must not judge it dead by a shorter one."""
    name = stream()
    holder = StateStore(store.url, lease_seconds=600).lease.try_lock(name, run_id="long-lease")
    assert holder is not None

    def age_heartbeat(seconds: int) -> None:
        with store.engine.begin() as connection:
            connection.execute(
                sqlalchemy.text(
                    "update omnisync_locks set heartbeat_us = heartbeat_us - :age where stream = :s"
                ),
                {"age": seconds * 1_000_000, "s": name},
            )

    age_heartbeat(5)  # renewed 5 s ago: dead by a 2 s lease, alive by its own 600 s
    taker = StateStore(store.url, lease_seconds=2)
    assert taker.lease.try_lock(name, run_id="short-lease") is None
    holder.check(force=True)  # still the holder's
    age_heartbeat(700)
    assert taker.lease.try_lock(name, run_id="short-lease") is not None
