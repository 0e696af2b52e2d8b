"""The state store's tables (SQLAlchemy Core). Alembic migrations in ``migrations/`` create them.

Timestamps are stored as integer microseconds since the epoch (UTC): exact, sortable, and the
same on SQLite, PostgreSQL and MariaDB. ``*_iso`` columns repeat them for people reading the
tables.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Integer, MetaData, String, Table, Text

metadata = MetaData()

watermarks = Table(
    "omnisync_watermarks",
    metadata,
    Column("stream", String(100), primary_key=True),
    Column("value_us", BigInteger, nullable=False),
    Column("value_iso", String(40), nullable=False),
    Column("run_id", String(64), nullable=False),
    Column("updated_us", BigInteger, nullable=False),
)

runs = Table(
    "omnisync_runs",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("stream", String(100), nullable=False, index=True),
    Column("kind", String(20), nullable=False),
    Column("started_us", BigInteger, nullable=False),
    Column("ended_us", BigInteger),
    Column("window_lo_iso", String(40)),
    Column("window_hi_iso", String(40)),
    Column("watermark_before_iso", String(40)),
    Column("watermark_after_iso", String(40)),
    Column("status", String(20), nullable=False),
    Column("counts", Text),
    Column("error", Text),
)

locks = Table(
    "omnisync_locks",
    metadata,
    Column("stream", String(100), primary_key=True),
    Column("owner", String(200), nullable=False),
    Column("acquired_us", BigInteger, nullable=False),
    Column("heartbeat_us", BigInteger, nullable=False),
    Column("run_id", String(64)),  # 0003: the run holding the lock, for refused runs' messages
    Column("lease_us", BigInteger),  # 0005: the holder's lease; takers wait at least this long
)

windows = Table(
    "omnisync_windows",
    metadata,
    Column("stream", String(100), primary_key=True),
    Column("plan_id", String(64), primary_key=True),
    Column("lo_us", BigInteger, primary_key=True),
    Column("hi_us", BigInteger, nullable=False),
    Column("status", String(20), nullable=False),
    Column("rows", Integer),
    Column("max_modified_us", BigInteger),
    Column("quarantined", Integer),  # 0002
    Column("counts", Text),  # 0002: the window's other counts (JSON), e.g. unknown fields
)

ledger = Table(
    "omnisync_writeback_ledger",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(64), nullable=False, index=True),
    Column("pk", BigInteger, nullable=False, index=True),
    Column("erp_code", String(200)),
    Column("previous_erp_code", String(200)),
    Column("based_on_modified_iso", String(40), nullable=False),
    Column("attempt_us", BigInteger, nullable=False),
    Column("outcome", String(40), nullable=False),
    Column("status_code", Integer),
    Column("detail", Text),
    Column("lost_answers", Integer),  # 0004: PATCH answers lost, each followed by a re-read
    Column("seen_modified_iso", String(40)),  # 0004: what that re-read saw (held by later runs)
    Column("seen_erp_code", String(200)),  # 0004
)

servers = Table(  # 0007: what a run learned of a server's filters (``servers.py``)
    "omnisync_servers",
    metadata,
    Column("url", String(500), primary_key=True),
    Column("datetime_filters", Boolean, nullable=False),
    Column("seen_us", BigInteger, nullable=False),
    Column("seen_iso", String(40), nullable=False),
)
