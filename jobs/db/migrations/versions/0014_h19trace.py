"""Outbox rows keep the trace context of the change that wrote them

Revision ID: h19trace
Revises: h18seg
"""

import sqlalchemy as sa
from alembic import op

revision = "h19trace"
down_revision = "h18seg"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("outbox", sa.Column("trace", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("trace")
