"""File analysis (levels measured by the engine) and the Ray node that ran each job

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ANALYSIS = (
    ("analysis_peak_db", sa.Float),
    ("analysis_rms_db", sa.Float),
    ("analysis_loudness_lufs", sa.Float),
    ("analysis_duration_s", sa.Float),
    ("analysis_clipping", sa.Boolean),
)


def upgrade() -> None:
    for name, kind in ANALYSIS:
        op.add_column("files", sa.Column(name, kind, nullable=True))
    op.add_column("jobs", sa.Column("node_id", sa.String(64), nullable=True))
    op.add_column("jobs", sa.Column("actor", sa.String(100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("actor")
        batch.drop_column("node_id")
    with op.batch_alter_table("files") as batch:
        for name, _ in reversed(ANALYSIS):
            batch.drop_column(name)
