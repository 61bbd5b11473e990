"""Database engines and migrations: SQLite (WAL) by default, PostgreSQL when the URL says so."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core.errors import DatabaseError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Alembic runs env.py as a module import; two threads migrating at once deadlock on the import lock while
# one of them holds a database lock the other waits for. Migrations in one process are serialised here,
# and across processes by an advisory lock in env.py (PostgreSQL) or SQLite's own write lock.
_MIGRATE_LOCK = threading.Lock()


def create_db_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for `url`. SQLite gets WAL, a busy timeout and its parent folder created."""
    if url.startswith("sqlite"):
        _ensure_sqlite_dir(url)
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 5)
    return sa.create_engine(url, **kwargs)


def _ensure_sqlite_dir(url: str) -> None:
    path = sa.engine.make_url(url).database
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision` with Alembic."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection_engine"] = engine
    try:
        with _MIGRATE_LOCK:
            command.upgrade(config, revision)
    except sa.exc.OperationalError as exc:
        raise DatabaseError(f"cannot migrate {engine.url.render_as_string(hide_password=True)}: {exc.orig}") from exc


def open_database(url: str, **kwargs: Any) -> Engine:
    """Create the engine and migrate it to the latest schema."""
    engine = create_db_engine(url, **kwargs)
    migrate(engine)
    return engine
