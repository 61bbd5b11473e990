"""The admin API (`/admin/...`): keys, labels, rollouts and alerts, behind the admin key.

`build_admin_router(runtime)` makes the one `/admin` router; each capability adds its routes in it with an
`add_*_routes(router, runtime)` function. Handlers may use the database (they are not on the proxy path):
`runtime_engine(runtime)` is the sidecar's engine, opened once and disposed on shutdown; run blocking calls
with `asyncio.to_thread`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sidecar.admin.router import JsonRouter

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


def build_admin_router(runtime: Any) -> JsonRouter:
    """The `/admin` router with every capability's routes; every route needs the admin key."""
    admin_key = runtime.settings.access.admin_key()
    router = JsonRouter("/admin", admin_key=admin_key, require_key=True)
    if admin_key is None:
        return router  # every call answers 403 "the admin API is disabled"; its modules stay unimported
    from sidecar.admin.keys import add_key_routes

    add_key_routes(router, runtime)
    # releases: labels, rollouts, audit
    from sidecar.admin.releases import add_release_routes

    add_release_routes(router, runtime)
    return router


def runtime_engine(runtime: Any) -> Engine:
    """The sidecar's database engine (created and migrated on first use, at start-up; disposed on shutdown).

    Never call this from the request path: the first call migrates the database.
    """
    engine = getattr(runtime, "database", None)
    if engine is None:
        from core.database import open_database

        engine = open_database(runtime.settings.resolved_database_url)
        runtime.database = engine

        async def dispose() -> None:
            engine.dispose()

        runtime.extra_closers.append(dispose)
    return engine
