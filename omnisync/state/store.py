"""The state store: one engine on the state database, migrated on start, and the stores kept in
it, each in its own module: :mod:`~omnisync.state.watermarks`, :mod:`~omnisync.state.runs` (the
run log), :mod:`~omnisync.state.plans` (backfill windows), :mod:`~omnisync.state.lease` (the
per-stream lock and its fencing) and :mod:`~omnisync.state.ledger` (the write-back ledger).

SQLAlchemy 2 Core on any database URL (SQLite by default, PostgreSQL in production, MariaDB
works too); the schema (:mod:`~omnisync.state.schema`) is migrated with Alembic on start. Every
statement uses bound parameters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# sqlalchemy.orm is loaded with this module, before any run starts a thread, never later by
# another library on another thread: a select() built while a thread was still importing it (GX
# imports it in the run's thread while a refused run records itself) raised "partially
# initialized module 'sqlalchemy.orm.exc'".
import sqlalchemy.orm  # noqa: F401
from sqlalchemy import Column, Engine, MetaData, String, Table, create_engine, select
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from omnisync.state.errors import LockHeld, LockLost, StateError
from omnisync.state.lease import Fence, Lease
from omnisync.state.ledger import Ledger
from omnisync.state.plans import Plans, Window
from omnisync.state.process import process_gone
from omnisync.state.runs import Runs
from omnisync.state.times import from_us, iso, now_us, to_us
from omnisync.state.watermarks import Watermarks

MIGRATIONS = Path(__file__).parent / "migrations"
#: the newest migration's revision. A database already at it is not handed to Alembic, whose
#: import is about 12 MiB and 0.13 s of every run; a test holds this to the migrations' head.
SCHEMA_REVISION = "0006"
__all__ = [  # the old names, while callers move to their modules (removed next)
    "Fence",
    "LockHeld",
    "LockLost",
    "StateError",
    "Window",
    "from_us",
    "iso",
    "now_us",
    "process_gone",
    "to_us",
]
_ALEMBIC_VERSION = Table("alembic_version", MetaData(), Column("version_num", String(32)))


def _safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparseable URL: show only its scheme
        return url.split("://", 1)[0] + "://..."


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
        self.watermarks = Watermarks(self.engine)
        self.runs = Runs(self.engine)
        self.plans = Plans(self.engine)
        self.lease = Lease(self.engine, lease_seconds)
        self.ledger = Ledger(self.engine)

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

    # -- the old interface, delegating while callers move to the stores (removed next) ---------
    @property
    def owner(self) -> str:
        return self.lease.owner

    def watermark(self, stream: str) -> Any:
        return self.watermarks.get(stream)

    def set_watermark(self, *args: Any, **kwargs: Any) -> None:
        self.watermarks.set(*args, **kwargs)

    def reset_watermark(self, stream: str) -> None:
        self.watermarks.reset(stream)

    def all_watermarks(self) -> Any:
        return self.watermarks.all()

    def start_run(self, *args: Any, **kwargs: Any) -> None:
        self.runs.start(*args, **kwargs)

    def finish_run(self, *args: Any, **kwargs: Any) -> None:
        self.runs.finish(*args, **kwargs)

    def recent_runs(self, *args: Any, **kwargs: Any) -> Any:
        return self.runs.recent(*args, **kwargs)

    def save_plan(self, *args: Any, **kwargs: Any) -> None:
        self.plans.save(*args, **kwargs)

    def open_plan(self, stream: str) -> Any:
        return self.plans.open(stream)

    def plan_windows(self, *args: Any, **kwargs: Any) -> Any:
        return self.plans.windows(*args, **kwargs)

    def finished_plans(self, *args: Any, **kwargs: Any) -> Any:
        return self.plans.finished(*args, **kwargs)

    def close_plan(self, *args: Any, **kwargs: Any) -> None:
        self.plans.close(*args, **kwargs)

    def complete_window(self, *args: Any, **kwargs: Any) -> None:
        self.plans.complete_window(*args, **kwargs)

    def abandon_plans(self, *args: Any, **kwargs: Any) -> None:
        self.plans.abandon(*args, **kwargs)

    def try_lock(self, *args: Any, **kwargs: Any) -> Any:
        return self.lease.try_lock(*args, **kwargs)

    def lock_holder(self, stream: str) -> Any:
        return self.lease.holder(stream)

    def holder_alive(self, stream: str) -> Any:
        return self.lease.holder_alive(stream)

    def release(self, fence: Any) -> None:
        self.lease.release(fence)

    def refusal(self, *args: Any, **kwargs: Any) -> Any:
        return self.lease.refusal(*args, **kwargs)

    def locked(self, *args: Any, **kwargs: Any) -> Any:
        return self.lease.locked(*args, **kwargs)

    def record_attempt(self, **values: Any) -> None:
        self.ledger.record(**values)

    def ledger_rows(self, *args: Any, **kwargs: Any) -> Any:
        return self.ledger.rows(*args, **kwargs)


def _connect_args(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        # Several threads share the engine; waits on SQLite's write lock are bounded.
        return {"check_same_thread": False, "timeout": 30}
    if url.startswith(("postgresql", "mysql", "mariadb")):
        return {"connect_timeout": 10}
    return {}
