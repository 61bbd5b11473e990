"""Batch jobs (the OpenAI Batch API subset): storage, concurrency and priority."""

from __future__ import annotations

from core.config.base import Section


class BatchSettings(Section):
    """Batch jobs (the OpenAI Batch API subset): storage, concurrency and priority."""
