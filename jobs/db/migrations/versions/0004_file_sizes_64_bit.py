"""64-bit frame counts and byte sizes: outputs of long inputs pass 2 GiB

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

COLUMNS = ("frames", "size_bytes")


def upgrade() -> None:
    # SQLite's INTEGER is 64-bit already (and it cannot alter a column's type in place).
    if op.get_bind().dialect.name == "sqlite":
        return
    for name in COLUMNS:
        op.alter_column("files", name, type_=sa.BigInteger(), existing_type=sa.Integer())


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    for name in COLUMNS:
        op.alter_column("files", name, type_=sa.Integer(), existing_type=sa.BigInteger())
