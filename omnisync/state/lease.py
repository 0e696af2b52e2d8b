"""The lease of a stream (G5): the per-stream lock, and the fencing that proves it is still held.

The lock is a row per stream with an owner, the time it was acquired and a heartbeat. A second
run waits for it up to a bound, then gives up naming the holder's run. A holder that died is
detected two ways: its heartbeat is older than the lease, or it ran in this very kernel and PID
namespace and its process is gone (:func:`~omnisync.state.process.process_gone`), so a
``kill -9`` need not wait for the lease.

**One clock.** The acquisition time and every heartbeat are stamped by the state database's own
clock, in SQL (:func:`_database_now_us`), and a lease is judged expired by comparing that stamp
with the same clock, in the same database. No host's clock takes part: two hosts whose clocks
disagree by minutes still agree on whether a holder is alive. (SQLite is a file on one host: its
``'now'`` is that host's clock, the same for every process using it.)

**Fencing.** Holding the lock is proved, not assumed: :meth:`Lease.locked` yields a
:class:`Fence` (the owner and the acquisition time), and every state change of a run (plan
saved, window done, watermark moved, plan closed or abandoned) runs in a transaction
(:func:`fenced`) that first renews the lock row *only if it is still this owner's*. On
PostgreSQL and MariaDB that row stays locked until the transaction ends; on SQLite the statement
takes the database's write lock. A run that stalled past its lease and was taken over therefore
gets ``LockLost`` at its next state change and changes nothing.

The lake cannot join a database transaction, so lake writes call :meth:`Fence.check` immediately
before each rename, replace or delete. The check counts on this process's lease clock
(:func:`lease_clock`: monotonic, and counting through a host's suspend) from the moment its last
successful renewal was *sent*: the database stamped that heartbeat no earlier, so
no other run can take the lock over before a full lease has passed on that clock. The check passes
only while at least half the lease remains; otherwise it renews first, synchronously, and a renewal
that fails, or that took so long that less than half the lease is left, raises ``LockLost``. What
remains is a process frozen between a passed check and the rename that follows it, for longer than
the half lease that was left (``docs/guarantees.md``, G5).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Engine,
    delete,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from omnisync.state.errors import LockHeld, LockLost, StateError
from omnisync.state.process import new_owner, process_gone
from omnisync.state.schema import locks, runs
from omnisync.state.times import from_us, iso

log = logging.getLogger("omnisync.state")

#: a lake write's check passes only while at least this share of the lease remains
CHECK_MARGIN = 0.5


def lease_clock() -> float:
    """Seconds on the clock a holder counts its lease on. Linux's CLOCK_BOOTTIME keeps counting
    while the host is suspended (CLOCK_MONOTONIC stops), so a holder that slept through its lease
    asks the database before its next change; elsewhere, the monotonic clock."""
    return time.clock_gettime(_BOOTTIME) if _BOOTTIME is not None else time.monotonic()


_BOOTTIME: int | None = getattr(time, "CLOCK_BOOTTIME", None)


@contextlib.contextmanager
def fenced(engine: Engine, fence: Fence | None) -> Iterator[Connection]:
    """A transaction that first proves ``fence`` still holds its lock (if one is given)."""
    sent = lease_clock()
    with engine.begin() as connection:
        if fence is not None:
            fence.touch(connection)
        yield connection
    if fence is not None:
        fence.renewed_at(sent)


class Lease:
    """The locks of streams, taken by this process as ``owner`` for ``seconds`` at a time."""

    def __init__(self, engine: Engine, seconds: float) -> None:
        self.engine = engine
        self.seconds = seconds
        self.owner = new_owner()

    def _database_now(self) -> ColumnElement[int]:
        return _database_now_us(self.engine.dialect.name)

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
                connection.execute(
                    update(runs)
                    .where(runs.c.run_id == row.run_id, runs.c.status == "running")
                    .values(
                        status="interrupted",
                        error=f"taken over by run {run_id or self.owner}: it was killed, or it "
                        "stalled past its lease and changed nothing after that",
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


@dataclass
class Fence:
    """Proof that a run holds its stream's lock: the owner and when it acquired it.

    ``renewed`` is this process's :func:`lease_clock` time at which its last successful renewal
    (or the acquisition) was sent; None when this process has not renewed it yet (a fence
    rebuilt from its identity in another process), so its first check asks the database."""

    lease: Lease
    stream: str
    owner: str
    acquired_us: int
    renewed: float | None = None
    lost: threading.Event = field(default_factory=threading.Event)
    #: one renewal at a time: threads that find the lease short wait for it, then see its result
    renewing: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def touch(self, connection: Connection) -> None:
        """Renew the lock row in ``connection``'s transaction, only if it is still ours (the
        row, or SQLite's write lock, then stays held until that transaction ends). The caller
        reports a committed renewal with :meth:`renewed_at`."""
        if self.lost.is_set():
            raise self._lost()
        renewed = connection.execute(
            update(locks)
            .where(
                locks.c.stream == self.stream,
                locks.c.owner == self.owner,
                locks.c.acquired_us == self.acquired_us,
            )
            .values(heartbeat_us=_database_now_us(connection.dialect.name))
        )
        if renewed.rowcount != 1:
            self.lost.set()
            raise self._lost()

    def renewed_at(self, sent: float) -> None:
        """A renewal sent at monotonic time ``sent`` committed."""
        if self.renewed is None or sent > self.renewed:
            self.renewed = sent

    def remaining(self) -> float:
        """Seconds of the lease left on this process's monotonic clock (negative: none)."""
        if self.renewed is None:
            return float("-inf")
        return self.renewed + self.lease.seconds - lease_clock()

    def renew_or_fail(self) -> None:
        """Renew the lock row now. Raises LockLost if it is no longer ours, and lets a database
        error through (the heartbeat tries again)."""
        with self.renewing:
            sent = lease_clock()
            with self.lease.engine.begin() as connection:
                self.touch(connection)
            self.renewed_at(sent)

    def check(self, force: bool = False) -> None:
        """Return only if no other run can have taken the lock over, with at least half the
        lease still ahead; raise LockLost otherwise.

        Counted on the monotonic clock from the last successful renewal; when less than half
        the lease remains (or when forced), it renews synchronously first. A renewal that fails
        (taken over, or the database unreachable) raises LockLost, and so does one that
        answered so late that less than half the lease remains."""
        if self.lost.is_set():
            raise self._lost()
        margin = self.lease.seconds * CHECK_MARGIN
        if not force and self.remaining() >= margin:
            return
        with self.renewing:
            # another thread may have renewed while this one waited for it
            if force or self.remaining() < margin:
                sent = lease_clock()
                try:
                    with self.lease.engine.begin() as connection:
                        self.touch(connection)
                except SQLAlchemyError as exc:
                    raise LockLost(
                        f"this run cannot prove it still holds the lock of stream "
                        f"{self.stream!r} (renewing it failed: {exc}); it changes nothing more"
                    ) from exc
                self.renewed_at(sent)
        if self.remaining() < margin:
            raise LockLost(
                f"this run cannot prove it still holds the lock of stream {self.stream!r}: "
                f"renewing it took more than half its lease of {self.lease.seconds:.0f} s; "
                "it changes nothing more"
            )

    def _lost(self) -> LockLost:
        return LockLost(
            f"this run lost the lock of stream {self.stream!r} (it stalled past its lease of "
            f"{self.lease.seconds:.0f} s and another run took over); it changed nothing more"
        )


def _database_now_us(dialect: str) -> ColumnElement[int]:
    """The database's current time in microseconds since the epoch (UTC), as SQL: the one
    clock leases are stamped and judged by. No value is bound into it."""
    if dialect == "postgresql":
        # clock_timestamp(): the moment of the statement itself, not of its transaction's start
        sql = "CAST(FLOOR(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000) AS BIGINT)"
    elif dialect in ("mysql", "mariadb"):
        # UTC on both sides: no session time zone or daylight saving step enters the difference
        sql = "TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6))"
    elif dialect == "sqlite":
        sql = "CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER)"
    else:
        raise StateError(f"the state database's dialect {dialect!r} has no known clock")
    return literal_column(sql, BigInteger)
