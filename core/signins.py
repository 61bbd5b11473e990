"""Recording dashboard sign-ins (the dashboard calls this; the record holds no password)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core.tables.signins import SignInAttempt

Outcome = Literal["ok", "failed", "throttled"]
_TABLE: sa.Table = SignInAttempt.__table__  # type: ignore[attr-defined]


def record_sign_in(engine: Engine, *, user_name: str | None, address: str | None, outcome: Outcome) -> None:
    """Store one sign-in attempt; `user_name` must be a configured user's name or None."""
    row = {"user_name": user_name[:200] if user_name else None, "address": address[:64] if address else None,
           "outcome": outcome}
    with engine.begin() as connection:
        connection.execute(sa.insert(_TABLE).values(**row))


def sign_ins_since(engine: Engine, since: datetime) -> list[SignInAttempt]:
    """Sign-ins at or after `since`, oldest first."""
    query = sa.select(_TABLE).where(_TABLE.c.at >= since).order_by(_TABLE.c.at, _TABLE.c.id)
    with engine.connect() as connection:
        return [SignInAttempt.model_validate(dict(row._mapping)) for row in connection.execute(query)]
