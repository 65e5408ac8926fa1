"""Jobs keep the edit list of what their chain cut out (silence)

Revision ID: 0006_h16speech
Revises: 0005_h15loud
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_h16speech"
down_revision = "0005_h15loud"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("edits", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("edits")
