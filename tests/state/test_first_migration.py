"""Several first runs started at once on a new state database: the schema is made once and every
run goes on (on MariaDB, whose DDL is not transactional, two makers failed with "Table
'omnisync_watermarks' already exists"; the suite saw it once)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy.engine import make_url

from omnisync.state import StateError, StateStore
from omnisync.state.store import SCHEMA_REVISION

RUNS = 4

# Each run imports everything first and says so; the test then starts them together, so that
# their migrations overlap by the runs' own progress, not by luck of timing.
SCRIPT = """
import sys
import alembic.command, alembic.config  # noqa: F401  (imported before the start)
from omnisync.state import StateError, StateStore
store = StateStore(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
try:
    store.migrate()
    print("ok", flush=True)
except Exception as exc:
    print("failed", type(exc).__name__, exc, flush=True)
"""


@contextlib.contextmanager
def fresh_database(server: str) -> Iterator[str]:
    """A new, empty database on ``server`` (a URL), dropped afterwards."""
    name = f"omnisync_first_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"DROP DATABASE {name}")
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def new_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/state.db"
        return
    server = request.getfixturevalue(
        "postgres_url" if request.param == "postgresql" else "mariadb_url"
    )
    with fresh_database(server) as url:
        yield url


def test_first_runs_started_at_once_make_the_schema_once_and_all_go_on(new_database: str) -> None:
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", SCRIPT, new_database],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(RUNS)
    ]
    try:
        for run in runs:
            assert run.stdout is not None and run.stdout.readline().strip() == "ready"
        for run in runs:
            assert run.stdin is not None
            run.stdin.write("go\n")
            run.stdin.flush()
        said = [run.communicate(timeout=120)[0].strip() for run in runs]
    finally:
        for run in runs:
            run.kill()
            run.wait()
    assert said == ["ok"] * RUNS
    store = StateStore(new_database)
    try:
        assert store.recorded_revisions() == {SCHEMA_REVISION}
    finally:
        store.engine.dispose()


def test_a_mariadb_session_lost_while_migrating_is_named_not_a_traceback(mariadb_url: str) -> None:
    """Found by a review: the lock's release, on a session the server had dropped, raised
    SQLAlchemy's PendingRollbackError in place of the error that lost it, which the CLI shows
    as a traceback."""
    with fresh_database(mariadb_url) as url:
        store = StateStore(url)
        admin = sqlalchemy.create_engine(mariadb_url, isolation_level="AUTOCOMMIT")
        killed: list[int] = []

        def kill_own_session(connection, cursor, statement, *_: object) -> None:  # type: ignore[no-untyped-def]
            if statement.lstrip().upper().startswith("CREATE TABLE") and not killed:
                killed.append(connection.connection.dbapi_connection.thread_id())
                with admin.connect() as other:
                    other.exec_driver_sql(f"KILL {killed[0]}")

        sqlalchemy.event.listen(store.engine, "before_cursor_execute", kill_own_session)
        try:
            with pytest.raises(StateError, match="cannot reach the state database"):
                store.migrate()
            assert killed, "the migration's session was lost mid-way"
            sqlalchemy.event.remove(store.engine, "before_cursor_execute", kill_own_session)
            store.engine.dispose()
            # the lock went with the session (once the server has ended it: KILL returns
            # before that, so the next run waits on the lock, not on a guess of the time)
            again = StateStore(url)
            try:
                again.migrate()
                assert again.recorded_revisions() == {SCHEMA_REVISION}
            finally:
                again.engine.dispose()
        finally:
            store.engine.dispose()
            admin.dispose()


def test_a_run_that_takes_the_mariadb_lock_as_it_is_let_go_finds_the_schema_made(
    mariadb_url: str,
) -> None:
    """Found by a review: the lock was let go before the migration's last write (the version
    row) was committed, so a run taking it then read the revision before and migrated again
    ("Table 'omnisync_servers' already exists"). The second run starts exactly there."""
    with fresh_database(mariadb_url) as url:
        first, second = StateStore(url), StateStore(url)
        seen: list[set[str]] = []

        def migrate_beside(connection, cursor, statement, *_: object) -> None:  # type: ignore[no-untyped-def]
            if "RELEASE_LOCK" in statement and not seen:
                second.migrate()  # the lock was just let go
                seen.append(second.recorded_revisions())

        sqlalchemy.event.listen(first.engine, "after_cursor_execute", migrate_beside)
        try:
            first.migrate()
        finally:
            first.engine.dispose()
            second.engine.dispose()
        assert seen == [{SCHEMA_REVISION}]


@pytest.mark.parametrize("server_name", ["postgres_url", "mariadb_url"])
def test_a_migration_held_up_by_another_ends_in_a_line_naming_it(
    server_name: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by a review: on PostgreSQL a run waited without end for a migrating one whose
    transaction stayed open; both databases now give up after the same wait, saying why."""
    import omnisync.state.store as store_module

    monkeypatch.setattr(store_module, "_LOCK_SECONDS", 0.5)
    with fresh_database(request.getfixturevalue(server_name)) as url:
        holder = sqlalchemy.create_engine(url)
        name = make_url(url).database
        try:
            with holder.connect() as held:  # another run, migrating
                if server_name == "postgres_url":
                    take = "SELECT pg_advisory_xact_lock(:key)"
                    held.execute(sqlalchemy.text(take), {"key": store_module._LOCK_KEY})
                else:
                    take = "SELECT GET_LOCK(:name, 1)"
                    held.execute(sqlalchemy.text(take), {"name": f"omnisync-migrate-{name}"})
                store = StateStore(url)
                try:
                    with pytest.raises(StateError, match="another process has been migrating"):
                        store.migrate()
                finally:
                    store.engine.dispose()
        finally:
            holder.dispose()


def test_a_migration_cut_short_on_mariadb_runs_again_over_what_it_made(mariadb_url: str) -> None:
    """MariaDB commits each DDL statement on its own: a migration a kill or a lost connection
    cut short leaves its first tables, columns or indexes made under the revision before it,
    and its next run failed on them ("Duplicate column name", "Table ... already exists") until
    someone mended the database by hand. At worst every statement of every migration was made
    and no revision recorded: each runs again over what exists and the schema comes out whole."""
    with fresh_database(mariadb_url) as url:
        store = StateStore(url)
        try:
            store.migrate()
            inspector = sqlalchemy.inspect(store.engine)
            made = {t: _shape(inspector, t) for t in sorted(inspector.get_table_names())}
            with store.engine.begin() as connection:
                connection.exec_driver_sql("DELETE FROM alembic_version")  # nothing recorded
            assert store.recorded_revisions() == set()
            store.migrate()
            assert store.recorded_revisions() == {SCHEMA_REVISION}
            inspector = sqlalchemy.inspect(store.engine)
            assert {t: _shape(inspector, t) for t in sorted(inspector.get_table_names())} == made
        finally:
            store.dispose()


def _shape(inspector: sqlalchemy.Inspector, table: str) -> tuple[list[str], list[str]]:
    columns = [column["name"] for column in inspector.get_columns(table)]
    return columns, sorted(str(index["name"]) for index in inspector.get_indexes(table))


def test_a_database_that_refuses_the_migration_is_not_called_unreachable(tmp_path: Path) -> None:
    """A database reached that refused the schema (read-only here; a permission, a clash of
    DDL elsewhere) was named "cannot reach the state database": a person then looked at the
    network, not at the database's rights."""
    made = tmp_path / "state.db"
    made.touch()
    store = StateStore(f"sqlite:///file:{made}?mode=ro&uri=true")
    try:
        with pytest.raises(StateError) as refused:
            store.migrate()
    finally:
        store.dispose()
    said = str(refused.value)
    assert "refused omnisync's schema" in said and "readonly" in said, said
    assert "cannot reach" not in said, said
