"""Files uploaded for batch jobs and the batch jobs themselves (the OpenAI Batch API subset).

File contents live on disk under the data directory; these rows hold what the API reports and what a
restarted sidecar needs to resume a batch.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.tables.common import utc_now


class BatchFile(SQLModel, table=True):
    """An uploaded input file (`purpose=batch`) or a batch's output or error file (`batch_output`)."""

    __tablename__ = "batch_file"

    id: str = Field(primary_key=True, max_length=64)
    purpose: str = Field(max_length=32)
    filename: str = Field(max_length=255)
    bytes: int = 0
    owner_key_id: str | None = Field(
        default=None, max_length=64, index=True, description="The virtual key that created it; None = no key"
    )
    created_at: datetime = Field(default_factory=utc_now, sa_type=sa.DateTime(timezone=True))


class BatchJob(SQLModel, table=True):
    """One batch: its input, progress counts, state and result files.

    `status` follows the OpenAI lifecycle: validating, failed, in_progress, finalizing, completed,
    expired, cancelling, cancelled.
    """

    __tablename__ = "batch_job"

    id: str = Field(primary_key=True, max_length=64)
    endpoint: str = Field(max_length=64)
    input_file_id: str = Field(max_length=64)
    completion_window: str = Field(default="24h", max_length=16)
    status: str = Field(max_length=16, index=True)
    output_file_id: str | None = Field(default=None, max_length=64)
    error_file_id: str | None = Field(default=None, max_length=64)
    errors: str | None = Field(default=None, description="JSON list of validation errors")
    metadata_json: str | None = Field(default=None, description="JSON object the client attached")
    total: int = 0
    completed: int = 0
    failed: int = 0
    owner_key_id: str | None = Field(
        default=None, max_length=64, index=True, description="The virtual key that created it (and runs it)"
    )
    created_at: datetime = Field(default_factory=utc_now, sa_type=sa.DateTime(timezone=True))
    in_progress_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    expires_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    finalizing_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    completed_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    failed_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    expired_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    cancelling_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    cancelled_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
