"""Per-window quality counts, so that a resumed plan is judged over all of its rows (G6).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from omnisync.state.migrations import once

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("omnisync_windows") as batch:
        batch.add_column(sa.Column("quarantined", sa.Integer), if_not_exists=once())
        batch.add_column(sa.Column("counts", sa.Text), if_not_exists=once())


def downgrade() -> None:
    with op.batch_alter_table("omnisync_windows") as batch:
        batch.drop_column("counts")
        batch.drop_column("quarantined")
