"""Access control for the sidecar: virtual keys, per-key models, rate limits, budgets and cost alerts."""

from __future__ import annotations

from typing import Any

from sidecar.access.counters import Counters, MemoryCounters, RedisCounters
from sidecar.access.stage import AccessStage


def build_access_stage(runtime: Any) -> AccessStage | None:
    """The access stage when `access` is enabled (start-up only: reads the database once, synchronously)."""
    settings = runtime.settings
    if not settings.access.active:
        return None
    from sidecar.access.state import load_snapshot
    from sidecar.admin import runtime_engine

    engine = runtime_engine(runtime)
    counters: Counters = RedisCounters(settings.redis_url) if settings.redis_url else MemoryCounters()
    stage = AccessStage(settings, engine, counters, load_snapshot(engine, settings.access))
    stage.start(sorted(runtime.routes))
    runtime.extra_closers.append(stage.aclose)
    return stage


def find_access_stage(runtime: Any) -> AccessStage | None:
    """The running access stage, if any (the admin API asks it to reload after a change)."""
    return next((stage for stage in runtime.stages if isinstance(stage, AccessStage)), None)
