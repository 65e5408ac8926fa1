"""An API key's default webhook URL, for the jobs its caller submits without one

Revision ID: h17keyhook
Revises: h17batch
"""

import sqlalchemy as sa
from alembic import op

revision = "h17keyhook"
down_revision = "h17batch"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("webhook_url", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("webhook_url")
