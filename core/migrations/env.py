"""Alembic environment: runs against the engine handed over by `core.database.migrate`."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context
from sqlmodel import SQLModel

import core.tables  # noqa: F401  (registers the tables on SQLModel.metadata)

target_metadata = SQLModel.metadata
MIGRATION_LOCK_KEY = 7_302_201_519


def run_migrations() -> None:
    engine = context.config.attributes.get("connection_engine")
    if engine is None:
        from core.database import create_db_engine

        url = context.config.get_main_option("sqlalchemy.url")
        if not url:
            raise RuntimeError("no engine or sqlalchemy.url given to the migration environment")
        engine = create_db_engine(url)
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Sidecar replicas, the harness and the dashboard may all migrate at start-up: one at a time.
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()


run_migrations()
