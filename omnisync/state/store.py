"""The state store: watermarks, the run log, per-stream locks, backfill windows, the ledger.

SQLAlchemy 2 Core on any database URL (SQLite by default, PostgreSQL in production, MariaDB
works too); the schema is migrated with Alembic on start. Every statement uses bound parameters.

The lock (G5) is a row per stream with an owner, the time it was acquired and a heartbeat. A
second run waits for it up to a bound, then gives up naming the holder's run. A holder that died
is detected two ways: its heartbeat is older than the lease, or it ran in this very kernel and
PID namespace (not merely on a host of the same name: containers share names and pids) and its
process is gone, so a ``kill -9`` need not wait for the lease.

**One clock.** The acquisition time and every heartbeat are stamped by the state database's own
clock, in SQL (:func:`_database_now_us`), and a lease is judged expired by comparing that stamp
with the same clock, in the same database. No host's clock takes part: two hosts whose clocks
disagree by minutes still agree on whether a holder is alive. (SQLite is a file on one host: its
``'now'`` is that host's clock, the same for every process using it.)

**Fencing.** Holding the lock is proved, not assumed: ``locked()`` yields a :class:`Fence` (the
owner and the acquisition time), and every state change of a run (plan saved, window done,
watermark moved, plan closed or abandoned) runs in a transaction that first renews the lock row
*only if it is still this owner's*. On PostgreSQL and MariaDB that row stays locked until the
transaction ends; on SQLite the statement takes the database's write lock. A run that stalled past
its lease and was taken over therefore gets ``LockLost`` at its next state change and changes
nothing.

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
import datetime as dt
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# sqlalchemy.orm is loaded with this module, before any run starts a thread, never later by
# another library on another thread: a select() built while a thread was still importing it (GX
# imports it in the run's thread while a refused run records itself) raised "partially
# initialized module 'sqlalchemy.orm.exc'".
import sqlalchemy.orm  # noqa: F401
from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Connection,
    Engine,
    MetaData,
    String,
    Table,
    create_engine,
    delete,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from omnisync.state.schema import ledger, locks, runs, watermarks, windows

MIGRATIONS = Path(__file__).parent / "migrations"
#: the newest migration's revision. A database already at it is not handed to Alembic, whose
#: import would cost every run memory and time; a test holds this to the migrations' head.
SCHEMA_REVISION = "0006"
_ALEMBIC_VERSION = Table("alembic_version", MetaData(), Column("version_num", String(32)))
log = logging.getLogger("omnisync.state")


class StateError(Exception):
    """The state database cannot be used as configured (OMNISYNC_STATE_URL): fix the URL/server."""


class LockHeld(StateError):
    """Another run of the stream holds the lock: this run did nothing (not a failure)."""


class LockLost(StateError):
    """This run's lock was taken over (it stalled past its lease): it must change nothing more."""


def now_us() -> int:
    moment = dt.datetime.now(dt.UTC)
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


def to_us(moment: dt.datetime) -> int:
    delta = moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(us: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=us)


def iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


UNKNOWN_IDENTITY = "unknown"


def lease_clock() -> float:
    """Seconds on the clock a holder counts its lease on. Linux's CLOCK_BOOTTIME keeps counting
    while the host is suspended (CLOCK_MONOTONIC stops), so a holder that slept through its lease
    asks the database before its next change; elsewhere, the monotonic clock."""
    return time.clock_gettime(_BOOTTIME) if _BOOTTIME is not None else time.monotonic()


_BOOTTIME: int | None = getattr(time, "CLOCK_BOOTTIME", None)


def _process_identity() -> str:
    """What makes a pid meaningful: the kernel's boot and the PID namespace. Two containers with
    the same host name and pid differ here."""
    parts = []
    for path in ("/proc/sys/kernel/random/boot_id", "/proc/self/ns/pid"):
        try:
            parts.append(
                Path(path).read_text().strip() if "boot" in path else str(os.stat(path).st_ino)
            )
        except OSError:
            return UNKNOWN_IDENTITY  # every such host would look the same: trust no pid
    return uuid.uuid5(uuid.NAMESPACE_OID, "|".join(parts)).hex[:12]


_IDENTITY = _process_identity()


def _safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparseable URL: show only its scheme
        return url.split("://", 1)[0] + "://..."


def process_gone(owner: str) -> bool:
    """True when ``owner`` (a :attr:`StateStore.owner`) names a process of this kernel and PID
    namespace that no longer exists; False while it lives, or when this host cannot tell."""
    parts = owner.split(":")
    if len(parts) != 4 or parts[0] != socket.gethostname() or parts[2] != _IDENTITY:
        return False  # another kernel or PID namespace: only the lease can tell
    if _IDENTITY == UNKNOWN_IDENTITY:
        return False  # this kernel or namespace could not be identified: only the lease can tell
    if not parts[1].isdigit():
        return False
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@dataclass(frozen=True)
class Window:
    lo_us: int
    hi_us: int
    status: str
    rows: int | None = None
    max_modified_us: int | None = None
    quarantined: int | None = None
    counts: dict[str, Any] | None = None


class StateStore:
    def __init__(self, url: str, lease_seconds: float = 60.0) -> None:
        self.url = url
        self.safe_url = _safe_url(url)
        self.lease_seconds = lease_seconds
        if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        try:
            self.engine: Engine = create_engine(
                url, pool_pre_ping=True, connect_args=_connect_args(url)
            )
        except (SQLAlchemyError, ValueError, ImportError) as exc:
            raise StateError(f"OMNISYNC_STATE_URL {self.safe_url} is not usable: {exc}") from None
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{_IDENTITY}:{uuid.uuid4().hex[:12]}"

    def migrate(self) -> None:
        """Create or upgrade the schema (Alembic). Raises StateError if the DB is unreachable."""
        if self._revisions() == {SCHEMA_REVISION}:
            return
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        try:
            with self.engine.begin() as connection:
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
        except OperationalError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise StateError(
                f"cannot reach the state database {self.safe_url} (OMNISYNC_STATE_URL): {reason}"
            ) from None

    def _revisions(self) -> set[str] | None:
        """The revisions Alembic recorded, or None when it cannot be read (no schema yet, or no
        database: ``migrate`` then says which)."""
        try:
            with self.engine.connect() as connection:
                return set(connection.execute(select(_ALEMBIC_VERSION.c.version_num)).scalars())
        except SQLAlchemyError:
            return None

    def dispose(self) -> None:
        self.engine.dispose()

    # -- watermarks ---------------------------------------------------------------------------
    def watermark(self, stream: str) -> dt.datetime | None:
        with self.engine.connect() as connection:
            value = connection.execute(
                select(watermarks.c.value_us).where(watermarks.c.stream == stream)
            ).scalar()
        return None if value is None else from_us(int(value))

    @contextlib.contextmanager
    def _writing(self, fence: Fence | None) -> Iterator[Connection]:
        """A transaction that first proves ``fence`` still holds its lock (if one is given)."""
        sent = lease_clock()
        with self.engine.begin() as connection:
            if fence is not None:
                fence.touch(connection)
            yield connection
        if fence is not None:
            fence.renewed_at(sent)

    def set_watermark(
        self, stream: str, value: dt.datetime, run_id: str, fence: Fence | None = None
    ) -> None:
        """Move the watermark (only forward: a late writer can never move it back)."""
        us = to_us(value)
        row = {"value_us": us, "value_iso": iso(value), "run_id": run_id, "updated_us": now_us()}
        with self._writing(fence) as connection:
            current = connection.execute(
                select(watermarks.c.value_us).where(watermarks.c.stream == stream).with_for_update()
            ).scalar()
            if current is None:
                connection.execute(insert(watermarks).values(stream=stream, **row))
            elif us > int(current):
                connection.execute(
                    update(watermarks).where(watermarks.c.stream == stream).values(**row)
                )

    def reset_watermark(self, stream: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(delete(watermarks).where(watermarks.c.stream == stream))

    # -- run log ------------------------------------------------------------------------------
    def start_run(
        self, run_id: str, stream: str, kind: str, watermark_before: dt.datetime | None
    ) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                insert(runs).values(
                    run_id=run_id,
                    stream=stream,
                    kind=kind,
                    started_us=now_us(),
                    status="running",
                    watermark_before_iso=iso(watermark_before),
                )
            )

    def finish_run(
        self,
        run_id: str,
        status: str,
        *,
        window: tuple[Any, Any] | None = None,
        watermark_before: dt.datetime | None = None,
        watermark_after: dt.datetime | None = None,
        counts: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        values: dict[str, Any] = {
            "status": status,
            "ended_us": now_us(),
            "error": error,
            "counts": json.dumps(counts or {}, default=str),
            "watermark_after_iso": iso(watermark_after),
        }
        if watermark_before is not None:
            values["watermark_before_iso"] = iso(watermark_before)
        if window is not None:
            values["window_lo_iso"], values["window_hi_iso"] = iso(window[0]), iso(window[1])
        with self.engine.begin() as connection:
            connection.execute(update(runs).where(runs.c.run_id == run_id).values(**values))

    def recent_runs(self, stream: str | None = None, limit: int = 10) -> list[dict[str, Any]]:
        query = select(runs).order_by(runs.c.started_us.desc()).limit(limit)
        if stream:
            query = query.where(runs.c.stream == stream)
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]

    def all_watermarks(self) -> list[dict[str, Any]]:
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(select(watermarks))]

    # -- backfill windows ---------------------------------------------------------------------
    def save_plan(
        self, stream: str, plan_id: str, bounds: list[tuple[int, int]], fence: Fence | None = None
    ) -> None:
        with self._writing(fence) as connection:
            for lo, hi in bounds:
                connection.execute(
                    insert(windows).values(
                        stream=stream, plan_id=plan_id, lo_us=lo, hi_us=hi, status="pending"
                    )
                )

    def open_plan(self, stream: str) -> tuple[str, list[Window]] | None:
        """The unfinished plan of ``stream``: windows still to extract, or extracted windows
        whose staged rows are not merged yet (a previous run stopped half-way)."""
        with self.engine.connect() as connection:
            plan_id = connection.execute(
                select(windows.c.plan_id)
                .where(windows.c.stream == stream, windows.c.status.in_(("pending", "done")))
                .limit(1)
            ).scalar()
        if plan_id is None:
            return None
        return str(plan_id), self.plan_windows(stream, str(plan_id))

    def plan_windows(self, stream: str, plan_id: str) -> list[Window]:
        """Every window of one plan, in order."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(windows)
                .where(windows.c.stream == stream, windows.c.plan_id == plan_id)
                .order_by(windows.c.lo_us)
            )
            return [
                Window(
                    r.lo_us,
                    r.hi_us,
                    r.status,
                    r.rows,
                    r.max_modified_us,
                    r.quarantined,
                    json.loads(r.counts) if r.counts else None,
                )
                for r in rows
            ]

    def finished_plans(self, stream: str, plan_ids: list[str]) -> set[str]:
        """Those of ``plan_ids`` the store knows and that are over (merged or abandoned): their
        staged files belong to no run. A plan it does not know is not among them."""
        if not plan_ids:
            return set()
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(windows.c.plan_id, windows.c.status).where(
                    windows.c.stream == stream, windows.c.plan_id.in_(plan_ids)
                )
            ).all()
        known = {str(r.plan_id) for r in rows}
        open_ = {str(r.plan_id) for r in rows if r.status in ("pending", "done")}
        return known - open_

    def close_plan(self, stream: str, plan_id: str, fence: Fence | None = None) -> None:
        """Every window's rows are merged into the snapshot: the plan is finished."""
        with self._writing(fence) as connection:
            connection.execute(
                update(windows)
                .where(windows.c.stream == stream, windows.c.plan_id == plan_id)
                .values(status="merged")
            )

    def complete_window(
        self,
        stream: str,
        plan_id: str,
        lo_us: int,
        rows: int,
        max_modified_us: int | None,
        quarantined: int = 0,
        counts: dict[str, Any] | None = None,
        fence: Fence | None = None,
    ) -> None:
        with self._writing(fence) as connection:
            connection.execute(
                update(windows)
                .where(
                    windows.c.stream == stream,
                    windows.c.plan_id == plan_id,
                    windows.c.lo_us == lo_us,
                )
                .values(
                    status="done",
                    rows=rows,
                    max_modified_us=max_modified_us,
                    quarantined=quarantined,
                    counts=json.dumps(counts or {}, sort_keys=True),
                )
            )

    def abandon_plans(
        self, stream: str, plan_id: str | None = None, fence: Fence | None = None
    ) -> None:
        """Give up the open plan(s) of ``stream`` (a full refresh, or a plan judged systemic-
        ally bad): the next run plans again from the watermark, which never moved for them."""
        condition = [windows.c.stream == stream, windows.c.status.in_(("pending", "done"))]
        if plan_id is not None:
            condition.append(windows.c.plan_id == plan_id)
        with self._writing(fence) as connection:
            connection.execute(update(windows).where(*condition).values(status="abandoned"))

    # -- the lock (G5) ------------------------------------------------------------------------
    def _database_now(self) -> ColumnElement[int]:
        return _database_now_us(self.engine.dialect.name)

    def _expired(self, row: Any) -> bool:
        """Whether the holder of lock ``row`` is dead. ``row.database_now`` is the database's
        clock, read in the same statement as the row: the heartbeat was stamped by that clock."""
        # The holder counts its own lease; a taker with a shorter one must not cut it short.
        lease_us = max(int(row.lease_us or 0), int(self.lease_seconds * 1e6))
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
            "lease_us": int(self.lease_seconds * 1e6),
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

    def lock_holder(self, stream: str) -> dict[str, Any] | None:
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
        row = self.lock_holder(stream)
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
            while not stop.wait(self.lease_seconds / 3):
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

    # -- write-back ledger --------------------------------------------------------------------
    def record_attempt(self, **values: Any) -> None:
        with self.engine.begin() as connection:
            connection.execute(insert(ledger).values(attempt_us=now_us(), **values))

    def ledger_rows(
        self, run_id: str | None = None, outcome: str | None = None
    ) -> list[dict[str, Any]]:
        """Ledger rows in attempt order, for one run and/or one outcome (filtered in SQL)."""
        query = select(ledger).order_by(ledger.c.id)
        if run_id:
            query = query.where(ledger.c.run_id == run_id)
        if outcome:
            query = query.where(ledger.c.outcome == outcome)
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]


#: a lake write's check passes only while at least this share of the lease remains
CHECK_MARGIN = 0.5


@dataclass
class Fence:
    """Proof that a run holds its stream's lock: the owner and when it acquired it.

    ``renewed`` is this process's :func:`lease_clock` time at which its last successful renewal
    (or the acquisition) was sent; None when this process has not renewed it yet (a fence
    rebuilt from its identity in another process), so its first check asks the database."""

    store: StateStore
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
        return self.renewed + self.store.lease_seconds - lease_clock()

    def renew_or_fail(self) -> None:
        """Renew the lock row now. Raises LockLost if it is no longer ours, and lets a database
        error through (the heartbeat tries again)."""
        with self.renewing:
            sent = lease_clock()
            with self.store.engine.begin() as connection:
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
        margin = self.store.lease_seconds * CHECK_MARGIN
        if not force and self.remaining() >= margin:
            return
        with self.renewing:
            # another thread may have renewed while this one waited for it
            if force or self.remaining() < margin:
                sent = lease_clock()
                try:
                    with self.store.engine.begin() as connection:
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
                f"renewing it took more than half its lease of {self.store.lease_seconds:.0f} s; "
                "it changes nothing more"
            )

    def _lost(self) -> LockLost:
        return LockLost(
            f"this run lost the lock of stream {self.stream!r} (it stalled past its lease of "
            f"{self.store.lease_seconds:.0f} s and another run took over); it changed nothing more"
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


def _connect_args(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        # Several threads share the engine; waits on SQLite's write lock are bounded.
        return {"check_same_thread": False, "timeout": 30}
    if url.startswith(("postgresql", "mysql", "mariadb")):
        return {"connect_timeout": 10}
    return {}
