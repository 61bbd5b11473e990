"""Telling every sidecar that keys or budgets changed, so a revoke takes effect at once.

The CLI and the admin API change keys and budgets in the database and then call `announce_access_change`.
With Redis configured, this publishes on `access_channel` (one per Redis database) and bumps `ACCESS_VERSION_KEY`; every sidecar's
access stage subscribes to the channel and reloads within a round trip. Without Redis there is nothing to
publish to: sidecars pick the change up at their next `access.refresh_s` poll.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("tollgate.access")

ACCESS_CHANNEL = "tollgate:access:changed"
ACCESS_VERSION_KEY = "tollgate:access:version"


def access_channel(client: Any) -> str:
    """The channel for `client`'s database: Redis channels span databases, deployments in separate ones must not mix."""
    return f"{ACCESS_CHANNEL}:{client.connection_pool.connection_kwargs.get('db', 0)}"


def announce_access_change(redis_url: str | None, timeout_s: float = 1.0) -> bool:
    """Publish a change (blocking; call it from a thread in async code). Returns whether it was published.

    Failure is logged, never raised: the change is in the database already and every sidecar's poll finds it.
    """
    if not redis_url:
        return False
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    try:
        version = client.incr(ACCESS_VERSION_KEY)
        client.publish(access_channel(client), str(version))
        return True
    except redis.RedisError as exc:
        log.warning(
            "could not announce the access change through Redis (sidecars see it at their next poll): %s", exc
        )
        return False
    finally:
        client.close()
