"""A file analysis's DC offset

Revision ID: 0008
Revises: 0007_h14store
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007_h14store"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("files", sa.Column("analysis_dc_offset", sa.Float, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("files") as batch:
        batch.drop_column("analysis_dc_offset")
