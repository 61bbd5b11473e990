"""The human review queue: outputs flagged by guards, judges or low confidence, and reviewers' labels."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.tables.common import utc_now


class ReviewItemBase(SQLModel):
    """One output waiting for (or carrying) a human verdict.

    `source` says who flagged it (`guard`, `judge`, `confidence`, `parse_failure`, ...), `reason` why.
    Texts are stored already PII-redacted. `label` is `good` or `bad` once reviewed.
    """

    created_at: datetime = Field(default_factory=utc_now, sa_type=sa.DateTime(timezone=True), index=True)
    source: str = Field(max_length=32, index=True)
    reason: str = Field(max_length=500)
    traffic_id: str | None = Field(default=None, max_length=32, index=True)
    request_id: str | None = Field(default=None, max_length=64)
    model: str | None = Field(default=None, max_length=200)
    prompt_name: str | None = Field(default=None, max_length=200)
    input_text: str | None = None
    output_text: str | None = None
    score: float | None = None
    details: str | None = Field(default=None, description="JSON with source-specific detail (guard, judge verdicts)")
    status: str = Field(default="open", max_length=16, index=True)
    label: str | None = Field(default=None, max_length=16)
    note: str | None = None
    reviewer: str | None = Field(default=None, max_length=200)
    reviewed_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))


class ReviewItem(ReviewItemBase, table=True):
    __tablename__ = "review_item"

    id: int | None = Field(default=None, primary_key=True)
