"""The write-back ledger says how many PATCH answers were lost and what the re-read saw.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

from omnisync.state.migrations import once

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("omnisync_writeback_ledger") as batch:
        batch.add_column(sa.Column("lost_answers", sa.Integer), if_not_exists=once())
        batch.add_column(sa.Column("seen_modified_iso", sa.String(40)), if_not_exists=once())
        batch.add_column(sa.Column("seen_erp_code", sa.String(200)), if_not_exists=once())


def downgrade() -> None:
    with op.batch_alter_table("omnisync_writeback_ledger") as batch:
        batch.drop_column("seen_erp_code")
        batch.drop_column("seen_modified_iso")
        batch.drop_column("lost_answers")
