"""Releases in the sidecar: prompts served by name, canary and A/B arms, shadow mirroring, feedback."""

from __future__ import annotations

from typing import Any

from sidecar.releases.shadow import ShadowMirror, ShadowStage
from sidecar.releases.stage import ReleaseStage
from sidecar.releases.state import ReleaseState


def build_release_stages(runtime: Any) -> tuple[ReleaseStage, ShadowStage] | None:
    """The release stage (slot 2) and the shadow stage (slot 6) when `releases.enabled`.

    Start-up only: loads the release state from the database synchronously, then starts its poller.
    """
    settings = runtime.settings
    if not settings.releases.enabled:
        return None
    from sidecar.admin import runtime_engine

    state = ReleaseState(runtime_engine(runtime), settings.releases, settings.redis_url)
    state.load_now()
    state.start()
    mirror = ShadowMirror(runtime, settings.releases.shadow_concurrency, settings.releases.shadow_queue)
    runtime.extra_closers.append(state.aclose)
    runtime.extra_closers.append(mirror.aclose)
    return ReleaseStage(state, shadowing=True), ShadowStage(mirror)


def find_release_state(runtime: Any) -> ReleaseState | None:
    """The running release state, if any (the admin API and feedback route use it)."""
    stage = next((stage for stage in runtime.stages if isinstance(stage, ReleaseStage)), None)
    return stage.state if stage is not None else None
