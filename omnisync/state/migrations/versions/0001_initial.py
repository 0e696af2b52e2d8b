"""Initial state: watermarks, run log, locks, backfill windows, write-back ledger.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from omnisync.state.migrations import once

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "omnisync_watermarks",
        sa.Column("stream", sa.String(100), primary_key=True),
        sa.Column("value_us", sa.BigInteger, nullable=False),
        sa.Column("value_iso", sa.String(40), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("updated_us", sa.BigInteger, nullable=False),
        if_not_exists=once(),
    )
    op.create_table(
        "omnisync_runs",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("stream", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("started_us", sa.BigInteger, nullable=False),
        sa.Column("ended_us", sa.BigInteger),
        sa.Column("window_lo_iso", sa.String(40)),
        sa.Column("window_hi_iso", sa.String(40)),
        sa.Column("watermark_before_iso", sa.String(40)),
        sa.Column("watermark_after_iso", sa.String(40)),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("counts", sa.Text),
        sa.Column("error", sa.Text),
        if_not_exists=once(),
    )
    op.create_table(
        "omnisync_locks",
        sa.Column("stream", sa.String(100), primary_key=True),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("acquired_us", sa.BigInteger, nullable=False),
        sa.Column("heartbeat_us", sa.BigInteger, nullable=False),
        if_not_exists=once(),
    )
    op.create_table(
        "omnisync_windows",
        sa.Column("stream", sa.String(100), primary_key=True),
        sa.Column("plan_id", sa.String(64), primary_key=True),
        sa.Column("lo_us", sa.BigInteger, primary_key=True),
        sa.Column("hi_us", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("rows", sa.Integer),
        sa.Column("max_modified_us", sa.BigInteger),
        if_not_exists=once(),
    )
    op.create_table(
        "omnisync_writeback_ledger",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("pk", sa.BigInteger, nullable=False),
        sa.Column("erp_code", sa.String(200)),
        sa.Column("previous_erp_code", sa.String(200)),
        sa.Column("based_on_modified_iso", sa.String(40), nullable=False),
        sa.Column("attempt_us", sa.BigInteger, nullable=False),
        sa.Column("outcome", sa.String(40), nullable=False),
        sa.Column("status_code", sa.Integer),
        sa.Column("detail", sa.Text),
        if_not_exists=once(),
    )
    # made on their own, as index=True made them, so that MariaDB can be told IF NOT EXISTS
    for table, column in (
        ("omnisync_runs", "stream"),
        ("omnisync_writeback_ledger", "run_id"),
        ("omnisync_writeback_ledger", "pk"),
    ):
        op.create_index(f"ix_{table}_{column}", table, [column], if_not_exists=once())


def downgrade() -> None:
    for table in ("omnisync_writeback_ledger", "omnisync_windows", "omnisync_locks",
                  "omnisync_runs", "omnisync_watermarks"):
        op.drop_table(table)
