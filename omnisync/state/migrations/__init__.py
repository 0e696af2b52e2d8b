"""The state database's migrations (Alembic), run by ``StateStore.migrate`` under its lock."""

from __future__ import annotations

from alembic import op


def once() -> bool | None:
    """``IF NOT EXISTS`` for a migration's DDL on MariaDB, which commits each DDL statement on
    its own: a migration that a kill or a lost connection cut short there has made its first
    tables, columns or indexes under the revision before it, and its next run makes them again.
    Elsewhere (None) nothing changes: PostgreSQL's DDL, and SQLite's under the migration's lock,
    is undone with its transaction, and SQLite takes no ``IF NOT EXISTS`` on a column."""
    return True if getattr(op.get_bind().dialect, "is_mariadb", False) else None
