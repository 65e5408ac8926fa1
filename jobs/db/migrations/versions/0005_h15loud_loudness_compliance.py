"""True peak, loudness range and loudness maxima in file analyses; a job's loudness compliance

Revision ID: 0005_h15loud
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_h15loud"
down_revision = "0004"
branch_labels = None
depends_on = None

ANALYSIS = (
    "analysis_true_peak_db",
    "analysis_loudness_range_lu",
    "analysis_short_term_max_lufs",
    "analysis_momentary_max_lufs",
)


def upgrade() -> None:
    for name in ANALYSIS:
        op.add_column("files", sa.Column(name, sa.Float, nullable=True))
    op.add_column("jobs", sa.Column("compliance", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("compliance")
    with op.batch_alter_table("files") as batch:
        for name in reversed(ANALYSIS):
            batch.drop_column(name)
