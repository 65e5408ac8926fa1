"""Persistence: SQLAlchemy 2 async over SQLite (default) or PostgreSQL, schema by Alembic."""

from jobs.db.engine import Database

__all__ = ["Database"]
