"""The fence of a stream's lease (G5): the proof, checked before every change, that a run still
holds its stream's lock (:class:`~omnisync.state.lease.Lease` takes and releases it).

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
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, ColumnElement, Connection, Engine, literal_column, update
from sqlalchemy.exc import SQLAlchemyError

from omnisync.state.errors import LockLost, LockUnproven, StateError
from omnisync.state.schema import locks

if TYPE_CHECKING:
    from omnisync.state.lease import Lease

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
    #: rebuilt from the lock's identity away from the run that holds it (a Dask worker): the
    #: holder's release and its lost lease reach this fence only through the database, so each
    #: check asks it
    asks_database: bool = False
    lost: threading.Event = field(default_factory=threading.Event)
    #: set when this run leaves the lock: a thread still running changes nothing afterwards
    released: threading.Event = field(default_factory=threading.Event)
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
            .values(heartbeat_us=database_now_us(connection.dialect.name))
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
        the lease remains (or when forced, or for a fence that :attr:`asks_database`), it renews
        synchronously first. A renewal that fails
        (taken over, or the database unreachable) raises LockLost, and so does one that
        answered so late that less than half the lease remains."""
        if self.lost.is_set():
            raise self._lost()
        force = force or self.asks_database
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
                    if self.asks_database:  # not the holder: a blip here is worth a retry
                        raise LockUnproven(
                            f"cannot ask the state database whether this run still holds the "
                            f"lock of stream {self.stream!r} ({exc}); this change was not made, "
                            "and the window runs again"
                        ) from exc
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
        if self.released.is_set():
            return LockLost(
                f"this run released the lock of stream {self.stream!r} (it is ending); it "
                "changes nothing more"
            )
        return LockLost(
            f"this run lost the lock of stream {self.stream!r} (it stalled past its lease of "
            f"{self.lease.seconds:.0f} s and another run took over); it changed nothing more"
        )


def database_now_us(dialect: str) -> ColumnElement[int]:
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
