"""Listening for key and budget changes announced through Redis (see `core.access_changes`).

Each announcement wakes the access stage's reload at once, so a key revoked on one sidecar (or with the CLI)
is refused by every sidecar within a Redis round trip plus one database read. A lost connection is retried
every second; after each (re)subscription the stage reloads once, since announcements made while it was
away were missed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from core.access_changes import access_channel

log = logging.getLogger("tollgate.sidecar.access")

_RETRY_S = 1.0


async def listen_for_changes(
    redis_url: str, on_change: Callable[[], None], subscribed: asyncio.Event
) -> None:
    """Call `on_change` for every announcement on the access channel until cancelled; set `subscribed` once."""
    import redis.asyncio as redis

    warned = False
    while True:
        client = redis.Redis.from_url(redis_url, socket_connect_timeout=_RETRY_S)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(access_channel(client))
            on_change()  # anything announced while we were not listening
            subscribed.set()
            warned = False
            async for message in pubsub.listen():
                if message.get("type") == "message":
                    on_change()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - boundary: Redis away means changes arrive by polling instead
            if not warned:
                log.warning("access: not listening for key changes through Redis (polling instead): %s", exc)
                warned = True
        finally:
            await pubsub.aclose()
            await client.aclose()
        await asyncio.sleep(_RETRY_S)
