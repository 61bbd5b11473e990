"""The pipeline's stages, assembled in order from settings (see `sidecar.pipeline` for the contract).

Order matters: who may call (access) comes before what is asked (prompt rendering, release arms), which
comes before checking it (guards), choosing where it goes (routing) and whether it was answered before
(cache). `on_reply` runs in reverse, so output guards see an answer before the cache stores it.
"""

from __future__ import annotations

from typing import Any

from sidecar.pipeline import Stage


def build_stages(runtime: Any) -> list[Stage]:
    """The stages the settings ask for; an empty list keeps the request path as lean as a plain proxy."""
    stages: list[Stage] = []
    settings = runtime.settings
    # Each capability's modules (and the database layer they use) are imported only when it is configured:
    # a plain proxy stays small (measured: importing the access stage alone adds 22 MiB of RSS).
    # 1. access: virtual keys, per-key models, rate limits, budgets
    if settings.access.active:
        from sidecar.access import build_access_stage

        if (access := build_access_stage(runtime)) is not None:
            stages.append(access)
    # 2. prompts served by name, release arms (canary, A/B)
    releases = None
    if settings.releases.enabled:
        from sidecar.releases import build_release_stages

        if (releases := build_release_stages(runtime)) is not None:
            stages.append(releases[0])
    # 3. guards: input checks, output validation with fallbacks, stream filters
    if runtime.settings.guards.active:
        from sidecar.guards.stage import build_guard_stage

        stages.append(build_guard_stage(runtime))
    # 4. routing rules, escalation target
    from sidecar.routing import build_routing

    stages.extend(build_routing(runtime))
    # 5. response cache (exact and semantic)
    if runtime.settings.cache.enabled:
        from sidecar.cache import build_cache_stage  # numpy and the embedding model only when caching

        stages.append(build_cache_stage(runtime))
    # 6. shadow mirroring
    if releases is not None:
        stages.append(releases[1])
    return stages
