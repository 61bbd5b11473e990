"""Response caching in the sidecar: exact and semantic, with TTLs, size bounds and storage."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from core.config.base import Section


class SemanticCacheSettings(Section):
    """Answers to paraphrased questions: MiniLM similarity of the last user message above a threshold.

    Only deterministic requests (temperature 0, one choice) take part, and only within one scope: the same
    model, prompt version, parameters and earlier messages.
    """

    enabled: bool = False
    threshold: float = Field(default=0.93, gt=0, le=1, description="Cosine similarity a neighbour must reach")
    max_entries_per_scope: int = Field(default=2_000, gt=0)


class CacheSettings(Section):
    """Response caching in the sidecar: exact and semantic, with TTLs, size bounds and storage."""

    enabled: bool = False
    ttl_s: float = Field(default=3600.0, gt=0, description="How long an answer is served from the cache")
    max_entries: int = Field(default=10_000, gt=0, description="Entries kept in each sidecar's memory")
    max_bytes: int = Field(default=64 * 1024 * 1024, gt=0, description="Bytes of answers kept in memory")
    max_entry_bytes: int = Field(default=256 * 1024, gt=0, description="Larger answers are not cached")
    only_deterministic: bool = Field(
        default=False, description="Cache exact answers only for temperature-0 requests (semantic always is)"
    )
    store: Literal["memory", "redis", "database"] = Field(
        default="memory",
        description="Shared tier behind each sidecar's memory: Redis (settings.redis_url), the database "
        "(written in the background, loaded at start-up), or none",
    )
    redis_timeout_s: float = Field(default=0.05, gt=0, description="A slower Redis read counts as a miss")
    semantic: SemanticCacheSettings = SemanticCacheSettings()
