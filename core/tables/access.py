"""Virtual API keys, budgets, cost rollups and cost alerts.

A key's secret is never stored: `key_hash` is the SHA-256 of the token (a 256-bit random token needs no
slow hash; there is nothing to brute-force). `prefix` is the token's first characters, shown in listings
so people can tell their keys apart.

Cost rollups are sums per (span, period, dimension, value), upserted in the transaction that inserts the
traffic rows, like the latency rollups: spans are 'hour' and 'day' (periods in hours or days since the
Unix epoch, UTC); dimensions are model, user, feature and key; a missing value is ''.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.tables.common import utc_now

COST_ROLLUP_KEY = ("span", "period", "dimension", "value")


class VirtualKeyBase(SQLModel):
    """What a key may do; None means no limit (or the configured default, for rate limits)."""

    name: str = Field(max_length=200)
    user: str | None = Field(default=None, max_length=200, description="Owner; requests are tagged with it")
    allowed_models: str | None = Field(default=None, description="JSON list of model names or globs; None = all")
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None


class VirtualKey(VirtualKeyBase, table=True):
    __tablename__ = "virtual_key"

    id: str = Field(primary_key=True, max_length=32)
    key_hash: str = Field(max_length=64, unique=True)
    prefix: str = Field(max_length=16)
    created_at: datetime = Field(default_factory=utc_now, sa_type=sa.DateTime(timezone=True))
    revoked_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))


class Budget(SQLModel, table=True):
    """A spending limit in USD for a key, user or feature per UTC day or calendar month ('*' = each)."""

    __tablename__ = "budget"
    __table_args__ = (sa.UniqueConstraint("scope", "subject", "period", name="uq_budget_scope_subject_period"),)

    id: int | None = Field(default=None, primary_key=True)
    scope: str = Field(max_length=16)
    subject: str = Field(max_length=200)
    period: str = Field(max_length=16)
    limit_usd: float
    created_at: datetime = Field(default_factory=utc_now, sa_type=sa.DateTime(timezone=True))


class CostRollup(SQLModel, table=True):
    """Requests, tokens and USD of one hour or day for one model, user, feature or key."""

    __tablename__ = "cost_rollup"
    __table_args__ = {"sqlite_with_rowid": False}

    span: str = Field(primary_key=True, max_length=8, description="'hour' or 'day'")
    period: int = Field(primary_key=True, description="hours or days since the Unix epoch (UTC)")
    dimension: str = Field(primary_key=True, max_length=16, description="model, user, feature or key")
    value: str = Field(default="", primary_key=True, max_length=200)
    requests: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    estimated: int = Field(default=0, description="requests whose token counts were estimated")
    unpriced: int = Field(default=0, description="requests whose cost is unknown (no price for the model)")


class CostAlert(SQLModel, table=True):
    """A budget threshold crossed, a cost spike or a runaway key; `dedupe` makes each one fire once."""

    __tablename__ = "cost_alert"

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=utc_now, sa_type=sa.DateTime(timezone=True), index=True)
    kind: str = Field(max_length=32, index=True, description="budget, spike or runaway_key")
    scope: str = Field(max_length=16, description="key, user, feature or all")
    subject: str = Field(default="", max_length=200)
    message: str = Field(max_length=500)
    value: float = Field(description="what was observed (USD spent, USD this hour, requests this hour)")
    threshold: float = Field(description="what it was compared with")
    dedupe: str = Field(max_length=300, unique=True)
    delivered: str | None = Field(default=None, max_length=200, description="webhook outcome; None = no webhook")
