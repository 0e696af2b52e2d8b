"""What a run learned of an Omnitron server's filters, so that the next run need not ask again.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

from omnisync.state.migrations import once

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "omnisync_servers",
        sa.Column("url", sa.String(500), primary_key=True),
        sa.Column("datetime_filters", sa.Boolean, nullable=False),
        sa.Column("seen_us", sa.BigInteger, nullable=False),
        sa.Column("seen_iso", sa.String(40), nullable=False),
        if_not_exists=once(),
    )


def downgrade() -> None:
    op.drop_table("omnisync_servers")
