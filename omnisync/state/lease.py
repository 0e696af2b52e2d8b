"""The lease of a stream (G5): the per-stream lock, and the fencing that proves it is still held.

The lock is a row per stream with an owner, the time it was acquired and a heartbeat. A second
run waits for it up to a bound, then gives up naming the holder's run. A holder that died is
detected two ways: its heartbeat is older than the lease, or it ran in this very kernel and PID
namespace and its process is gone (:func:`~omnisync.state.process.process_gone`), so a
``kill -9`` need not wait for the lease.

**One clock.** The acquisition time and every heartbeat are stamped by the state database's own
clock, in SQL (:func:`~omnisync.state.fence.database_now_us`), and a lease is judged expired by
comparing that stamp with the same clock, in the same database. No host's clock takes part: two
hosts whose clocks disagree by minutes still agree on whether a holder is alive. (SQLite is a
file on one host: its ``'now'`` is that host's clock, the same for every process using it.)

**Fencing.** :meth:`Lease.locked` yields a :class:`~omnisync.state.fence.Fence`, the proof that
the lock is still held, which every state change and every lake write checks
(``omnisync/state/fence.py``). The lease and the fence are the only modules that touch the lock
table or the database's clock (``docs/guarantees.md``, G5).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from omnisync.state.errors import LockHeld, LockLost
from omnisync.state.fence import Fence, database_now_us, lease_clock
from omnisync.state.process import new_owner, process_gone, why_taken_over
from omnisync.state.schema import locks, runs
from omnisync.state.times import from_us, iso

log = logging.getLogger("omnisync.state")


class Lease:
    """The locks of streams, taken by this process as ``owner`` for ``seconds`` at a time."""

    def __init__(self, engine: Engine, seconds: float) -> None:
        self.engine = engine
        self.seconds = seconds
        self.owner = new_owner()

    def _database_now(self) -> ColumnElement[int]:
        return database_now_us(self.engine.dialect.name)

    def _expired(self, row: Any) -> bool:
        """Whether the holder of lock ``row`` is dead. ``row.database_now`` is the database's
        clock, read in the same statement as the row: the heartbeat was stamped by that clock."""
        # The holder counts its own lease; a taker with a shorter one must not cut it short.
        lease_us = max(int(row.lease_us or 0), int(self.seconds * 1e6))
        if int(row.database_now) - int(row.heartbeat_us) > lease_us:
            return True
        return process_gone(row.owner)

    def _lock_row(self, connection: Connection, stream: str) -> Any:
        """The lock row of ``stream`` with the database's clock beside it, or None."""
        return connection.execute(
            select(locks, self._database_now().label("database_now")).where(
                locks.c.stream == stream
            )
        ).first()

    def try_lock(self, stream: str, run_id: str | None = None) -> Fence | None:
        """Take the stream's lock if it is free or its holder is dead; None if it is held."""
        now = self._database_now()
        values = {
            "owner": self.owner,
            "acquired_us": now,
            "heartbeat_us": now,
            "lease_us": int(self.seconds * 1e6),
        }
        mine = select(locks.c.acquired_us).where(
            locks.c.stream == stream, locks.c.owner == self.owner
        )
        sent = lease_clock()
        try:
            with self.engine.begin() as connection:
                connection.execute(insert(locks).values(stream=stream, run_id=run_id, **values))
                acquired = int(connection.execute(mine).scalar_one())
            return Fence(self, stream, self.owner, acquired, renewed=sent)
        except IntegrityError:
            pass
        with self.engine.begin() as connection:
            row = self._lock_row(connection, stream)
            if row is None:
                return None  # released meanwhile: the caller tries again
            if not self._expired(row):
                return None
            sent = lease_clock()
            taken = connection.execute(
                update(locks)
                .where(
                    locks.c.stream == stream,
                    locks.c.owner == row.owner,
                    locks.c.acquired_us == row.acquired_us,
                    locks.c.heartbeat_us == row.heartbeat_us,
                )
                .values(run_id=run_id, **values)
            )
            if taken.rowcount != 1:
                return None  # the holder renewed, or another run took it first
            if row.run_id is not None and row.run_id != run_id:
                # The dead holder's own run, whatever stream it records under (a
                # reconciliation records under ``erp`` and locks ``erp-writeback``).
                why = why_taken_over(row.owner)
                connection.execute(
                    update(runs)
                    .where(runs.c.run_id == row.run_id, runs.c.status == "running")
                    .values(
                        status="interrupted",
                        error=f"taken over by run {run_id or self.owner}: {why}",
                    )
                )
            acquired = int(connection.execute(mine).scalar_one())
        return Fence(self, stream, self.owner, acquired, renewed=sent)

    def holder(self, stream: str) -> dict[str, Any] | None:
        """The lock row of ``stream`` (owner, run_id, acquired_us, heartbeat_us), or None."""
        with self.engine.connect() as connection:
            row = connection.execute(select(locks).where(locks.c.stream == stream)).first()
        return None if row is None else dict(row._mapping)

    def holder_alive(self, stream: str) -> dict[str, Any] | None:
        """The lock row of ``stream`` if its holder is alive (a run is working), else None."""
        with self.engine.connect() as connection:
            row = self._lock_row(connection, stream)
        if row is None or self._expired(row):
            return None
        found = dict(row._mapping)
        del found["database_now"]
        return found

    def release(self, fence: Fence) -> None:
        """Leave the lock. The fence refuses every change from now on, first: its check
        answers from this process's clock, and a window or merge thread may still be running
        (Ctrl-C) while the next run takes the lock."""
        fence.released.set()
        fence.lost.set()
        with self.engine.begin() as connection:
            connection.execute(
                delete(locks).where(
                    locks.c.stream == fence.stream,
                    locks.c.owner == fence.owner,
                    locks.c.acquired_us == fence.acquired_us,
                )
            )

    def refusal(self, stream: str, waited: float) -> LockHeld:
        """The LockHeld to raise when ``stream`` is busy, naming the holder's run."""
        row = self.holder(stream)
        run_id = None if row is None else row.get("run_id")
        started = None if row is None else iso(from_us(int(row["acquired_us"])))
        holder = f"run {run_id}" if run_id else (row["owner"] if row else "another run")
        return LockHeld(
            f"stream {stream!r} is busy: {holder} has held it since {started or '?'}; "
            f"this run did nothing (waited {waited:.0f} s, OMNISYNC_LOCK_WAIT_SECONDS)"
        )

    @contextlib.contextmanager
    def locked(
        self, stream: str, wait_seconds: float = 0.0, run_id: str | None = None
    ) -> Iterator[Fence]:
        """Hold the stream's lock for the block and yield its fence; raise LockHeld if it is not
        free in time. A heartbeat thread renews it; if it finds the lock taken over, the fence
        is marked lost and the run's next state change raises LockLost."""
        deadline = time.monotonic() + wait_seconds
        while (fence := self.try_lock(stream, run_id)) is None:
            if time.monotonic() >= deadline:
                raise self.refusal(stream, wait_seconds)
            time.sleep(min(1.0, max(0.05, wait_seconds / 20)))
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(self.seconds / 3):
                try:
                    fence.renew_or_fail()
                except LockLost:
                    log.warning("lost the lock of stream %r: another run took it over", stream)
                    return
                except SQLAlchemyError as exc:
                    # not proof of a loss: the next beat tries again, and a lake write that
                    # finds too little of the lease left renews itself or stops
                    log.warning("could not renew the lock of stream %r: %s", stream, exc)

        beater = threading.Thread(target=beat, name=f"lock-heartbeat-{stream}", daemon=True)
        beater.start()
        try:
            yield fence
        finally:
            stop.set()
            beater.join(timeout=5)
            self.release(fence)
