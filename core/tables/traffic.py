"""The traffic log: one row per request that reached the sidecar."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.tables.common import utc_now


class TrafficRecordBase(SQLModel):
    """One request that reached the sidecar, with what it cost and how it went."""

    request_id: str = Field(index=True, max_length=64)
    created_at: datetime = Field(
        default_factory=utc_now, sa_type=sa.DateTime(timezone=True), index=True
    )
    endpoint: str = Field(max_length=32)
    requested_model: str | None = Field(default=None, max_length=200)
    served_model: str | None = Field(default=None, max_length=200)
    deployment: str | None = Field(default=None, max_length=200)
    provider: str | None = Field(default=None, max_length=32)
    user: str | None = Field(default=None, max_length=200, index=True)
    feature: str | None = Field(default=None, max_length=200, index=True)
    segment: str | None = Field(default=None, max_length=200)
    prompt_name: str | None = Field(default=None, max_length=200)
    prompt_version: str | None = Field(default=None, max_length=100)
    stream: bool = False
    status: int
    error_class: str | None = Field(default=None, max_length=32, index=True)
    error_message: str | None = None
    request_body: str | None = None
    response_body: str | None = None
    redactions: int = 0
    tokens_in: int | None = None
    tokens_out: int | None = None
    usage_estimated: bool = False
    cost_usd: float | None = Field(default=None, description="None when the price is unknown, never 0 by default")
    ttft_ms: float | None = None
    tpot_ms: float | None = None
    latency_ms: float
    attempts: int = 1
    key_id: str | None = Field(default=None, max_length=64, index=True, description="Virtual key that made the call")
    variant: str | None = Field(
        default=None, max_length=64, description="Release arm that served it: production, canary, shadow or an A/B arm"
    )
    experiment: str | None = Field(default=None, max_length=200)
    shadow_of: str | None = Field(default=None, max_length=64, description="Request id of the call this one mirrored")
    route_reason: str | None = Field(default=None, max_length=200, description="Why the router chose the model")
    cache_status: str | None = Field(default=None, max_length=16, description="hit, semantic or miss")
    guard_events: str | None = Field(default=None, description="JSON list of guard triggers: guard, reason, action")
    confidence: float | None = None
    review_reason: str | None = Field(default=None, max_length=500, description="Why the output was flagged for review")


class TrafficRecord(TrafficRecordBase, table=True):
    __tablename__ = "traffic"
    __table_args__ = (sa.Index("ix_traffic_model_created", "requested_model", "created_at"),)

    id: str = Field(primary_key=True, max_length=32)


class TrafficRecordPublic(TrafficRecordBase):
    id: str
