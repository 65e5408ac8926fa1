"""Outbox ids never come back: SQLite reuses the largest rowid once its row is deleted, and
sent rows are now deleted, so the table asks for AUTOINCREMENT (PostgreSQL's sequence never
reused one). A reused id would let a relay take a new row for one it published already, or
stamp (delete) a row it never sent.

Revision ID: h14fan
Revises: h17keyhook
"""

from alembic import op

revision = "h14fan"
down_revision = "h17keyhook"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table(
            "outbox", recreate="always", table_kwargs={"sqlite_autoincrement": True}
        ):
            pass


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table(
            "outbox", recreate="always", table_kwargs={"sqlite_autoincrement": False}
        ):
            pass
