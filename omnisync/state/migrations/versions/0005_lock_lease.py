"""The lock row keeps its holder's lease, so a run with a shorter lease never judges it dead early.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

from omnisync.state.migrations import once

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("omnisync_locks") as batch:
        batch.add_column(sa.Column("lease_us", sa.BigInteger), if_not_exists=once())


def downgrade() -> None:
    with op.batch_alter_table("omnisync_locks") as batch:
        batch.drop_column("lease_us")
