"""Migration 0009 creates exactly the tables the release models describe, and its downgrade drops them."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

from core.database import migrate
from core.releases import read_revision

RELEASE_TABLES = {"release_label", "release_audit", "release_prompt_source", "release_experiment",
                  "release_feedback", "release_revision"}


def only_release_tables(obj, name, type_, reflected, compare_to) -> bool:
    table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
    return table in RELEASE_TABLES


def test_migration_matches_the_models(engine):
    assert RELEASE_TABLES <= set(sa.inspect(engine).get_table_names())
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": only_release_tables})
        assert compare_metadata(context, SQLModel.metadata) == []
    assert read_revision(engine) == 0


def test_downgrade_drops_the_release_tables(engine):
    from alembic import command
    from alembic.config import Config

    from core.database import MIGRATIONS_DIR

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection_engine"] = engine
    command.downgrade(config, "0008")
    assert not RELEASE_TABLES & set(sa.inspect(engine).get_table_names())
    migrate(engine)
    assert RELEASE_TABLES <= set(sa.inspect(engine).get_table_names())
