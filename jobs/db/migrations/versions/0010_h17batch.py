"""Batches of jobs, their album measurements, and the idempotency keys of requests

Revision ID: h17batch
Revises: h17hooks
"""

import sqlalchemy as sa
from alembic import op

revision = "h17batch"
down_revision = "h17hooks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(64), nullable=True),
        sa.Column("album", sa.Boolean, nullable=False),
        sa.Column("webhook_url", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("album_lufs", sa.Float, nullable=True),
    )
    op.create_index("ix_batches_owner", "batches", ["owner"])
    op.create_index("ix_batches_created_at", "batches", ["created_at"])
    op.add_column("jobs", sa.Column("batch_id", sa.String(32), nullable=True))
    op.create_index("ix_jobs_batch_id", "jobs", ["batch_id"])
    op.create_table(
        "album_measures",
        sa.Column("job_id", sa.String(32), primary_key=True),
        sa.Column("batch_id", sa.String(32), nullable=False),
        sa.Column("block_powers", sa.JSON, nullable=False),
    )
    op.create_index("ix_album_measures_batch_id", "album_measures", ["batch_id"])
    op.create_table(
        "idempotency_keys",
        sa.Column("owner", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("operation", sa.String(32), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("result_id", sa.String(32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    op.drop_table("album_measures")
    op.drop_index("ix_jobs_batch_id", "jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("batch_id")
    op.drop_table("batches")
