"""Idempotent inserts into the `traffic` table: a row whose id is already stored is skipped."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from core.costs import record_costs
from core.latency import record_latencies
from core.reviews import queue_reviews
from core.tables import TrafficRecord
from sidecar.traffic.record import TrafficRow

TRAFFIC_TABLE: sa.Table = TrafficRecord.__table__  # type: ignore[attr-defined]

# Errors caused by the rows themselves rather than by the database being unavailable.
ROW_ERRORS: tuple[type[Exception], ...] = (sa.exc.DataError, sa.exc.IntegrityError)


def insert_rows(connection: Connection, rows: Sequence[TrafficRow]) -> None:
    """Insert `rows` in one executemany; ids already present are skipped (ON CONFLICT (id) DO NOTHING).

    This makes re-sending a batch whose commit was uncertain, or replaying a spool file twice, harmless.
    The latency and cost rollups are updated in the same transaction, from the rows actually inserted only
    (RETURNING id yields nothing for a skipped row), so a replay never counts a request twice.
    """
    if not rows:
        return
    statement = _insert_statement(connection.dialect.name).returning(TRAFFIC_TABLE.c.id)
    inserted = set(connection.execute(statement, list(rows)).scalars())
    stored = [row for row in rows if row["id"] in inserted]
    record_latencies(connection, stored)
    record_costs(connection, stored)
    queue_reviews(connection, stored)


def _insert_statement(dialect: str) -> sa.Insert:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert(TRAFFIC_TABLE).on_conflict_do_nothing(index_elements=["id"])
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(TRAFFIC_TABLE).on_conflict_do_nothing(index_elements=["id"])
    return sa.insert(TRAFFIC_TABLE)


def describe_error(exc: BaseException) -> str:
    """One line saying why a database or disk operation failed (the driver's message when there is one)."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
