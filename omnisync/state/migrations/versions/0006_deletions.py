"""Customers found deleted in Omnitron, and pk ranges a run left for the next to narrow (G9).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

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
    )
    op.create_table(
        "omnisync_deletion_ranges",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("stream", sa.String(100), nullable=False, index=True),
        sa.Column("lo", sa.BigInteger),
        sa.Column("hi", sa.BigInteger),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("recorded_us", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("omnisync_deletion_ranges")
    op.drop_table("omnisync_deletions")
