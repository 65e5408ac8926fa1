"""Jobs record how many segments their input was rendered in

Revision ID: h18seg
Revises: h14fan
"""

import sqlalchemy as sa
from alembic import op

revision = "h18seg"
down_revision = "h14fan"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "jobs", sa.Column("segments", sa.Integer, nullable=False, server_default=sa.text("1"))
    )


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("segments")
