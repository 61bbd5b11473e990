"""The sidecar's response cache: exact (canonical request hash) and semantic (MiniLM neighbours).

`build_cache_stage(runtime)` makes the stage (the pipeline asks for it when `cache.enabled`); see
`sidecar.cache.stage`.
"""

from __future__ import annotations

from typing import Any

from core.errors import ConfigError
from sidecar.cache.stage import CacheStage


def build_cache_stage(runtime: Any) -> CacheStage:
    """The cache stage the settings describe, started and registered for shutdown."""
    settings = runtime.settings
    config = settings.cache
    redis = database = embedder = None
    if config.store == "redis":
        if not settings.redis_url:
            raise ConfigError("cache.store is 'redis' but redis_url is not set")
        from sidecar.cache.shared import RedisTier

        redis = RedisTier(settings.redis_url, config.redis_timeout_s, config.semantic.max_entries_per_scope)
    elif config.store == "database":
        from sidecar.admin import runtime_engine
        from sidecar.cache.shared import DatabaseTier

        database = DatabaseTier(runtime_engine(runtime))
    if config.semantic.enabled:
        from sidecar.cache.semantic import Embedder

        embedder = Embedder()
    stage = CacheStage(config, redis=redis, database=database, embedder=embedder)
    stage.start(runtime.metrics)
    runtime.extra_closers.append(stage.aclose)
    return stage


__all__ = ["CacheStage", "build_cache_stage"]
