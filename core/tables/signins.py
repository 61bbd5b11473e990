"""The record of dashboard sign-ins: who (a configured name only), from where, when, and how it went.

Never the password, and never a name that is not a configured user: people type their password into the
name field often enough that an unknown name is stored as NULL.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.tables.common import utc_now


class SignInAttempt(SQLModel, table=True):
    """One sign-in: `outcome` is `ok`, `failed` (wrong name or password) or `throttled` (refused while locked)."""

    __tablename__ = "sign_in_attempt"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utc_now, sa_type=sa.DateTime(timezone=True), index=True)
    user_name: str | None = Field(default=None, max_length=200, index=True)
    address: str | None = Field(default=None, max_length=64, index=True)
    outcome: str = Field(max_length=16)
