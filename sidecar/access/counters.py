"""Request, token and spend counters for rate limits and budgets: in this process, or in Redis for several.

Rate limits use a sliding-window counter: the current minute's count plus the previous minute's, weighted by
how much of it still falls inside the last 60 seconds. Refused requests count too, so a client hammering
past its limit stays limited. Spend counters are keyed by budget window (`key:key_x:daily:2026-11-27`).

In-process spend is the database's figure at the last refresh plus what this process counted since. In Redis,
every sidecar adds to one counter per window, seeded from the database when it does not exist yet (a new
window, or Redis restarted), and a request sees the larger of the two figures.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger("tollgate.sidecar.access")

_MINUTE = 60
_REDIS_PREFIX = "tollgate:access:"
_WINDOW_TTL_S = 40 * 86400  # spend keys outlive a monthly window; minute keys live two minutes


@dataclass(slots=True)
class Usage:
    """What the counters know of one key (and budgets) when a request arrives."""

    requests: float
    tokens: float
    spend: list[float]


class Counters(Protocol):
    """Where limits and budgets are counted."""

    async def admit(self, key_id: str | None, spend_ids: Sequence[str]) -> Usage:
        """Count one request for `key_id`; return the key's sliding-minute requests and tokens, and spend."""
        ...

    def add(self, key_id: str | None, tokens: int, spend_ids: Sequence[str], cost: float) -> None:
        """Count a finished request's tokens and cost (never blocks; Redis writes go in the background)."""
        ...

    def rebase(self, spend: Mapping[str, float], started: Any) -> None:
        """Take the database's spend per window id, read from `started` (a `snapshot()` token) on."""
        ...

    def snapshot(self) -> Any:
        """A token marking what was counted so far, taken before the database is read."""
        ...

    async def aclose(self) -> None: ...


def sliding(current: float, previous: float, now: float) -> float:
    """The sliding-window estimate of events in the last minute."""
    elapsed = (now % _MINUTE) / _MINUTE
    return current + previous * (1.0 - elapsed)


class MemoryCounters:
    """Counters of one sidecar process (no await, no lock: they only change on the event loop)."""

    def __init__(self) -> None:
        self._minute = -1
        self._requests: dict[str, int] = {}
        self._tokens: dict[str, int] = {}
        self._previous_requests: dict[str, int] = {}
        self._previous_tokens: dict[str, int] = {}
        self._base: dict[str, float] = {}
        self._local: dict[str, float] = {}

    def _roll(self, now: float) -> None:
        minute = int(now // _MINUTE)
        if minute != self._minute:
            recent = minute == self._minute + 1
            self._previous_requests = self._requests if recent else {}
            self._previous_tokens = self._tokens if recent else {}
            self._requests, self._tokens = {}, {}
            self._minute = minute

    async def admit(self, key_id: str | None, spend_ids: Sequence[str]) -> Usage:
        now = time.time()
        self._roll(now)
        requests = tokens = 0.0
        if key_id is not None:
            count = self._requests.get(key_id, 0) + 1
            self._requests[key_id] = count
            requests = sliding(count, self._previous_requests.get(key_id, 0), now)
            tokens = sliding(self._tokens.get(key_id, 0), self._previous_tokens.get(key_id, 0), now)
        spend = [self._base.get(i, 0.0) + self._local.get(i, 0.0) for i in spend_ids]
        return Usage(requests, tokens, spend)

    def add(self, key_id: str | None, tokens: int, spend_ids: Sequence[str], cost: float) -> None:
        self._roll(time.time())
        if key_id is not None and tokens:
            self._tokens[key_id] = self._tokens.get(key_id, 0) + tokens
        if cost:
            for spend_id in spend_ids:
                self._local[spend_id] = self._local.get(spend_id, 0.0) + cost

    def snapshot(self) -> dict[str, float]:
        return dict(self._local)

    def rebase(self, spend: Mapping[str, float], started: Any) -> None:
        # What was counted before the read is (up to the writer's lag) in the database's figure now.
        self._local = {i: v - started.get(i, 0.0) for i, v in self._local.items() if v - started.get(i, 0.0) > 0}
        self._base = dict(spend)

    async def aclose(self) -> None:
        return None


class RedisCounters:
    """Counters shared by every sidecar using the same Redis: one round trip per request (a pipeline)."""

    def __init__(self, url: str, timeout_s: float = 0.5) -> None:
        import redis.asyncio as redis

        self._redis = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self._base: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._warned_at = 0.0

    async def admit(self, key_id: str | None, spend_ids: Sequence[str]) -> Usage:
        now = time.time()
        minute = int(now // _MINUTE)
        pipe = self._redis.pipeline(transaction=False)
        if key_id is not None:
            current = f"{_REDIS_PREFIX}req:{key_id}:{minute}"
            pipe.incr(current)
            pipe.expire(current, 2 * _MINUTE)
            pipe.mget(
                f"{_REDIS_PREFIX}req:{key_id}:{minute - 1}",
                f"{_REDIS_PREFIX}tok:{key_id}:{minute}",
                f"{_REDIS_PREFIX}tok:{key_id}:{minute - 1}",
            )
        if spend_ids:
            pipe.mget([_REDIS_PREFIX + "usd:" + i for i in spend_ids])
        try:
            results = await pipe.execute()
        except Exception as exc:  # noqa: BLE001 - boundary: Redis down means limits fail open, not requests
            self._warn(f"Redis unavailable, limits and budgets not enforced across sidecars: {exc}")
            return Usage(0.0, 0.0, [self._base.get(i, 0.0) for i in spend_ids])
        requests = tokens = 0.0
        if key_id is not None:
            count, (previous, tok_now, tok_before) = results[0], results[2]
            requests = sliding(int(count), _number(previous), now)
            tokens = sliding(_number(tok_now), _number(tok_before), now)
        shared = results[-1] if spend_ids else []
        spend = [max(self._base.get(i, 0.0), _number(v)) for i, v in zip(spend_ids, shared, strict=True)]
        return Usage(requests, tokens, spend)

    def add(self, key_id: str | None, tokens: int, spend_ids: Sequence[str], cost: float) -> None:
        if (key_id is None or not tokens) and not cost:
            return
        task = asyncio.get_running_loop().create_task(self._add(key_id, tokens, spend_ids, cost))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _add(self, key_id: str | None, tokens: int, spend_ids: Sequence[str], cost: float) -> None:
        pipe = self._redis.pipeline(transaction=False)
        if key_id is not None and tokens:
            name = f"{_REDIS_PREFIX}tok:{key_id}:{int(time.time() // _MINUTE)}"
            pipe.incrby(name, tokens)
            pipe.expire(name, 2 * _MINUTE)
        if cost:
            for spend_id in spend_ids:
                name = _REDIS_PREFIX + "usd:" + spend_id
                # Seed a missing window from the database before adding, so a restarted Redis does not forget.
                pipe.set(name, repr(self._base.get(spend_id, 0.0)), nx=True, ex=_WINDOW_TTL_S)
                pipe.incrbyfloat(name, cost)
        try:
            await pipe.execute()
        except Exception as exc:  # noqa: BLE001 - boundary: a lost increment must not fail anything
            self._warn(f"Redis unavailable, usage not counted: {exc}")

    def snapshot(self) -> None:
        return None

    def rebase(self, spend: Mapping[str, float], started: Any) -> None:
        self._base = dict(spend)

    async def aclose(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._redis.aclose()

    def _warn(self, message: str) -> None:
        now = time.monotonic()
        if now - self._warned_at > 30:
            self._warned_at = now
            log.warning(message)


def _number(value: Any) -> float:
    if value is None:
        return 0.0
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0
