"""The sidecar's response cache, persisted: answers keyed by the canonical hash of their request.

Rows are written in the background (never on the request path) and read at start-up to warm a sidecar's
memory; expired rows are deleted by the same background writer.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.tables.common import utc_now


class CacheEntryRow(SQLModel, table=True):
    """One cached answer: the non-stream response document and, for the semantic cache, its query."""

    __tablename__ = "cache_entry"

    key: str = Field(primary_key=True, max_length=64, description="sha256 of the canonical request")
    endpoint: str = Field(max_length=32)
    model: str | None = Field(default=None, max_length=200)
    prompt_name: str | None = Field(default=None, max_length=200)
    prompt_version: str | None = Field(default=None, max_length=64)
    scope: str | None = Field(default=None, max_length=64, description="semantic scope hash, when eligible")
    query: str | None = Field(default=None, description="the last user message the semantic cache compares")
    vector: bytes | None = Field(default=None, sa_type=sa.LargeBinary, description="float32 query embedding")
    body: bytes = Field(sa_type=sa.LargeBinary)
    created_at: datetime = Field(default_factory=utc_now, sa_type=sa.DateTime(timezone=True))
    expires_at: datetime = Field(sa_type=sa.DateTime(timezone=True), index=True)
