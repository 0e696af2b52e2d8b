"""The lock row names the run that holds it, so a refused run can say who is working.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from omnisync.state.migrations import once

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("omnisync_locks") as batch:
        batch.add_column(sa.Column("run_id", sa.String(64)), if_not_exists=once())


def downgrade() -> None:
    with op.batch_alter_table("omnisync_locks") as batch:
        batch.drop_column("run_id")
