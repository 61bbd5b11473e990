"""Response caching in the sidecar: exact and semantic, with TTLs, size bounds and storage."""

from __future__ import annotations

from core.config.base import Section


class CacheSettings(Section):
    """Response caching in the sidecar: exact and semantic, with TTLs, size bounds and storage."""
