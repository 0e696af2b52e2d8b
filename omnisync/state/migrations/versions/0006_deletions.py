"""Customers found deleted in Omnitron, and pk ranges a run left for the next to narrow (G9).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

from omnisync.state.migrations import once

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "omnisync_deletions",
        sa.Column("stream", sa.String(100), primary_key=True),
        sa.Column("pk", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("detected_us", sa.BigInteger, nullable=False),
        sa.Column("detected_iso", sa.String(40), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("applied_us", sa.BigInteger),
        if_not_exists=once(),
    )
    op.create_table(
        "omnisync_deletion_ranges",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("stream", sa.String(100), nullable=False),
        sa.Column("lo", sa.BigInteger),
        sa.Column("hi", sa.BigInteger),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("recorded_us", sa.BigInteger, nullable=False),
        if_not_exists=once(),
    )
    # on its own, as index=True made it, so that MariaDB can be told IF NOT EXISTS
    op.create_index(
        "ix_omnisync_deletion_ranges_stream",
        "omnisync_deletion_ranges",
        ["stream"],
        if_not_exists=once(),
    )


def downgrade() -> None:
    op.drop_table("omnisync_deletion_ranges")
    op.drop_table("omnisync_deletions")
