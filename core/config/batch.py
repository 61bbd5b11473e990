"""Batch jobs (the OpenAI Batch API subset): storage, concurrency and priority."""

from __future__ import annotations

from pydantic import Field

from core.config.base import Section


class BatchSettings(Section):
    """Batch jobs (the OpenAI Batch API subset): storage, concurrency and priority.

    Uploaded files live under `data_dir/files`, results under `data_dir/batches`; their state is in the
    database, so a restarted sidecar resumes unfinished batches.
    """

    enabled: bool = False
    concurrency: int = Field(default=2, ge=1, le=64, description="Batch requests in flight at once")
    max_file_bytes: int = Field(default=100 * 1024 * 1024, gt=0)
    max_requests: int = Field(default=50_000, gt=0, description="Lines in one batch input file")
    poll_interval_s: float = Field(default=1.0, gt=0, description="How often the worker looks for new batches")
    completion_window_s: float = Field(default=24 * 3600.0, gt=0, description="A batch not done by then expires")
