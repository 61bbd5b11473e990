"""The sidecar's routes beyond the proxied OpenAI endpoints, matched by path prefix.

Each capability adds its router here: the admin API (`/admin`), feedback (`/v1/feedback`), files and
batches (`/v1/files`, `/v1/batches`). A router is an ASGI callable with a `matches(path)` method.
"""

from __future__ import annotations

from typing import Any, Protocol

from sidecar.asgi import Receive, Scope, Send


class PrefixRoute(Protocol):
    def matches(self, path: str) -> bool: ...

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None: ...


def build_extra_routes(runtime: Any) -> list[PrefixRoute]:
    """The routers the settings ask for, in match order."""
    routes: list[PrefixRoute] = []
    # admin API: keys, alerts (access); labels, rollouts (releases)
    from sidecar.admin import build_admin_router

    routes.append(build_admin_router(runtime))
    # /v1/feedback (releases: outcomes of A/B arms)
    if runtime.settings.releases.enabled:
        from sidecar.releases.feedback import build_feedback_router

        routes.append(build_feedback_router(runtime))
    # /v1/files, /v1/batches (batch jobs)
    if runtime.settings.batch.enabled:
        from sidecar.batch import build_batch_routes

        routes.extend(build_batch_routes(runtime))
    return routes
