"""A version per job (events carry it, so subscribers order them) and a kind per outbox row
(a job message for the jobs queue, or a job event for the events exchange); the analysis
duration column named after its field, like the other analysis columns

Revision ID: 0007_h14store
Revises: 0006_h16speech
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_h14store"
down_revision = "0006_h16speech"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "jobs", sa.Column("version", sa.Integer(), nullable=False, server_default=sa.text("0"))
    )
    op.add_column("outbox", sa.Column("kind", sa.String(8), nullable=False, server_default="job"))
    with op.batch_alter_table("files") as batch:
        batch.alter_column("analysis_duration_s", new_column_name="analysis_duration_seconds")


def downgrade() -> None:
    with op.batch_alter_table("files") as batch:
        batch.alter_column("analysis_duration_seconds", new_column_name="analysis_duration_s")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("kind")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("version")
