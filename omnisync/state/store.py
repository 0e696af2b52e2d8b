"""The state store: one engine on the state database, migrated on start, and the stores kept in
it, each in its own module: :mod:`~omnisync.state.watermarks`, :mod:`~omnisync.state.runs` (the
run log), :mod:`~omnisync.state.plans` (backfill windows), :mod:`~omnisync.state.lease` (the
per-stream lock and its fencing), :mod:`~omnisync.state.ledger` (the write-back ledger) and
:mod:`~omnisync.state.servers` (what runs learned of Omnitron's filters).

SQLAlchemy 2 Core on any database URL (SQLite by default, PostgreSQL in production, MariaDB
works too); the schema (:mod:`~omnisync.state.schema`) is migrated with Alembic on start. Every
statement uses bound parameters.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# sqlalchemy.orm is loaded with this module, before any run starts a thread, never later by
# another library on another thread: a select() built while a thread was still importing it (GX
# imports it in the run's thread while a refused run records itself) raised "partially
# initialized module 'sqlalchemy.orm.exc'".
import sqlalchemy.orm  # noqa: F401
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    MetaData,
    String,
    Table,
    create_engine,
    select,
    text,
)
from sqlalchemy.exc import NoSuchModuleError, OperationalError, SQLAlchemyError

from omnisync.state.errors import StateError
from omnisync.state.lease import Lease
from omnisync.state.ledger import Ledger
from omnisync.state.plans import Plans
from omnisync.state.runs import Runs
from omnisync.state.servers import Servers
from omnisync.state.watermarks import Watermarks
from omnisync.url_credentials import database_url_shown, without_url_pieces

MIGRATIONS = Path(__file__).parent / "migrations"
#: the newest migration's revision. A database already at it is not handed to Alembic, whose
#: import would cost every run memory and time; a test holds this to the migrations' head.
SCHEMA_REVISION = "0007"


def known_revisions() -> set[str]:
    """The revisions this omnisync's migrations know (their files' names begin with them)."""
    return {path.name[:4] for path in (MIGRATIONS / "versions").glob("[0-9]*.py")}


_ALEMBIC_VERSION = Table("alembic_version", MetaData(), Column("version_num", String(32)))
#: the lock one migrating process holds: PostgreSQL's advisory key ("omni"), MariaDB's name
_LOCK_KEY = 0x6F6D6E69
_LOCK_NAME = "omnisync-migrate"
_LOCK_SECONDS = 60


class StateStore:
    """The state database: its engine, its migration, and one attribute per store kept in it,
    all on that engine (``store.watermarks.get(stream)``, ``store.lease.locked(stream)``)."""

    def __init__(self, url: str, lease_seconds: float = 60.0) -> None:
        self.url = url
        self.safe_url = database_url_shown(url)
        _sqlite_directory(url, self.safe_url)
        try:
            self.engine: Engine = create_engine(
                url, pool_pre_ping=True, connect_args=_connect_args(url)
            )
        except (SQLAlchemyError, ValueError, ImportError) as exc:
            reason = without_url_pieces(str(exc), url)
            if isinstance(exc, (ImportError, NoSuchModuleError)):  # the driver, not the URL
                reason += _driver_hint(url)
            raise StateError(
                f"OMNISYNC_STATE_URL {self.safe_url} is not usable: {reason}"
            ) from None
        self.watermarks = Watermarks(self.engine)
        self.runs = Runs(self.engine)
        self.plans = Plans(self.engine)
        self.lease = Lease(self.engine, lease_seconds)
        self.ledger = Ledger(self.engine)
        self.servers = Servers(self.engine)

    def migrate(self) -> None:
        """Create or upgrade the schema (Alembic). Raises StateError if the DB is unreachable."""
        if self.recorded_revisions() == {SCHEMA_REVISION}:
            return
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        try:
            connection = self.engine.connect()
        except OperationalError as exc:
            raise self._unreachable(exc) from None
        try:
            with connection, self._one_migrator(connection):
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
                # committed while the lock is held: a run that takes it next reads the revision
                # this one wrote (on MariaDB the version row is the one write DDL left open)
                connection.commit()
        except OperationalError as exc:
            if exc.connection_invalidated:  # the connection was lost on the way
                raise self._unreachable(exc) from None
            # reached, and refused: a lock, a permission, a read-only database, a clash of DDL
            raise StateError(
                f"the state database {self.safe_url} (OMNISYNC_STATE_URL) refused omnisync's "
                f"schema (revision {SCHEMA_REVISION}): {self._reason(exc)}"
            ) from None

    @contextlib.contextmanager
    def _one_migrator(self, connection: Connection) -> Iterator[None]:
        """One process at a time migrates. Two first runs started at once both found no schema
        and both made it: the later one failed with "table ... already exists" on MariaDB (its
        DDL is not transactional), SQLite (pysqlite runs DDL outside a transaction) and
        PostgreSQL alike. Holding the lock, Alembic reads the revision on this connection, so
        the later one finds the schema made and changes nothing."""
        dialect = connection.dialect.name
        if dialect == "postgresql":  # released when the migration's transaction ends
            waited = time.monotonic() + _LOCK_SECONDS
            take = text("SELECT pg_try_advisory_xact_lock(:key)")
            while not connection.execute(take, {"key": _LOCK_KEY}).scalar():
                if time.monotonic() > waited:
                    raise StateError(self._busy(f"PostgreSQL advisory lock {_LOCK_KEY}"))
                time.sleep(0.2)
        elif dialect == "sqlite":  # the database's write lock, held to the commit
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        elif dialect in ("mysql", "mariadb"):
            # a lock's name is the server's, not the database's: the database is in it
            name = f"{_LOCK_NAME}-{connection.engine.url.database or ''}"[:64]
            lock = {"name": name, "seconds": _LOCK_SECONDS}
            got = connection.execute(text("SELECT GET_LOCK(:name, :seconds)"), lock).scalar()
            if got != 1:
                raise StateError(
                    self._busy(f"MariaDB lock {name!r}")
                    if got == 0
                    else f"the state database {self.safe_url} refused its lock {name!r}"
                )
            try:
                yield
            finally:
                # a session that was lost lost its locks with it; releasing would only raise
                # in place of the error that lost it
                if not connection.invalidated:
                    connection.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": name})
            return
        yield

    def _busy(self, lock: str) -> str:
        return (
            f"another process has been migrating the state database {self.safe_url} for "
            f"{_LOCK_SECONDS} s ({lock}): run again when it has finished"
        )

    def recorded_revisions(self) -> set[str]:
        """The revisions Alembic recorded, empty when the database has no omnisync schema yet;
        changes nothing. Raises StateError when the database cannot be reached or read.

        One query when the schema is there (every run asks); only when it fails is the table
        looked for, on a connection of its own (PostgreSQL refuses anything more in a
        transaction where a statement failed), and read again when it is there: another first
        run may have made it in between, and a table that cannot be read fails again."""
        try:
            with self.engine.connect() as connection:
                return set(connection.execute(select(_ALEMBIC_VERSION.c.version_num)).scalars())
        except SQLAlchemyError:
            pass  # no table yet, or one that cannot be read: which, is asked below
        from sqlalchemy import inspect

        try:
            with self.engine.connect() as connection:
                if not inspect(connection).has_table(_ALEMBIC_VERSION.name):
                    return set()
            # made since the first query failed, by a first run started beside this one
            with self.engine.connect() as connection:
                return set(connection.execute(select(_ALEMBIC_VERSION.c.version_num)).scalars())
        except SQLAlchemyError as exc:
            raise self._unreachable(exc) from None

    def _reason(self, exc: SQLAlchemyError) -> str:
        orig = getattr(exc, "orig", None)
        reason = str(orig).strip().splitlines()[0] if orig else str(exc).splitlines()[0]
        return without_url_pieces(reason, self.url)

    def _unreachable(self, exc: SQLAlchemyError) -> StateError:
        return StateError(
            f"cannot reach the state database {self.safe_url} (OMNISYNC_STATE_URL): "
            f"{self._reason(exc)}"
        )

    def dispose(self) -> None:
        self.engine.dispose()


#: the folder of the default state database (``sqlite:///.omnisync/state.db``): omnisync's own,
#: created on the first run; any other folder must exist
OWN_DIRECTORY = Path(".omnisync")


def sqlite_file(url: str, uri_filenames: bool = False) -> Path | None:
    """The file of a SQLite database URL (the state's, or an ERP's), or None: another database,
    in memory, or a URL that does not parse. A URI filename (``file:...?uri=true``), which
    SQLite resolves itself, gives its file only with ``uri_filenames``."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # unparseable: create_engine says so, without the URL's secrets
        return None
    path = parsed.database
    if parsed.get_backend_name() != "sqlite" or not path or path == ":memory:":
        return None
    if parsed.query.get("mode") == "memory" or "mode=memory" in path:
        return None
    if not (path.startswith("file:") or parsed.query.get("uri")):
        return Path(path)
    if not uri_filenames or not path.startswith("file:"):
        return None
    path = path.removeprefix("file:").split("?", 1)[0]
    if path.startswith("//"):  # file://host/path: the host is empty or localhost
        path = "/" + path[2:].partition("/")[2]
    return Path(path) if path and path != ":memory:" else None


def not_made_yet(url: str) -> Path | None:
    """The SQLite file of ``url`` when no run has made it yet (in a folder that exists, or in
    omnisync's own), else None. A command that only reads the state (status, verify) stops
    there instead of making an empty database (SQLite makes one on connect, from a URI
    filename too): a mistyped path would leave a file behind. A folder that does not exist is
    left to the store, which refuses it by name."""
    path = sqlite_file(url, uri_filenames=True)
    if path is None or path.exists():
        return None
    return path if path.parent.is_dir() or path.parent == OWN_DIRECTORY else None


def _sqlite_directory(url: str, shown: str) -> None:
    """A SQLite database file is created on first use, but only in a folder that exists: a
    mistyped folder would otherwise start a new, empty state (a full history read, and every
    watermark lost) somewhere nobody looks. The default's own folder is created."""
    path = sqlite_file(url)
    if path is None:
        return
    folder = path.parent
    if folder.is_dir():
        return
    if folder == OWN_DIRECTORY:
        folder.mkdir(exist_ok=True)
        return
    raise StateError(
        f"OMNISYNC_STATE_URL {shown}: the folder {str(folder)!r} does not exist (a typo?); a new "
        "state database is created only in an existing folder, so create it first"
    )


#: the drivers installed with omnisync, by the scheme a URL may give without one
_DRIVERS = {
    "postgres": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
}


def _driver_hint(url: str) -> str:
    """What to write instead of a scheme without one of the installed drivers (``postgres://``
    is not a SQLAlchemy name; ``mysql://`` and ``mariadb://`` mean a driver not installed)."""
    scheme = url.partition("://")[0].lower()
    if scheme in _DRIVERS:
        return f" (write {_DRIVERS[scheme]}://..., the driver installed with omnisync)"
    return ""


def _connect_args(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        # Several threads share the engine; waits on SQLite's write lock are bounded.
        return {"check_same_thread": False, "timeout": 30}
    if url.startswith(("postgresql", "mysql", "mariadb")):
        return {"connect_timeout": 10}
    return {}
