"""Telling sidecars at once that the release labels changed (Redis pub/sub), on top of their polling.

Sidecars poll the revision counter every `releases.refresh_interval_s` whatever happens, so a lost message only
costs that interval. With `Settings.redis_url` set, every change made through the CLI or the admin API is also
published on `CHANNEL` and subscribed sidecars reload within milliseconds.
"""

from __future__ import annotations

import logging

log = logging.getLogger("tollgate.releases")

CHANNEL = "tollgate:releases"


def publish_change(redis_url: str | None) -> bool:
    """Publish a change notice; False (logged) when there is no Redis or it cannot be reached."""
    if not redis_url:
        return False
    import redis

    try:
        client = redis.Redis.from_url(redis_url, socket_timeout=1.0, socket_connect_timeout=1.0)
        try:
            client.publish(CHANNEL, b"changed")
        finally:
            client.close()
    except redis.RedisError as exc:
        log.warning("could not publish the release change on %s (sidecars will see it by polling): %s", CHANNEL, exc)
        return False
    return True
