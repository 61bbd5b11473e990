"""Request, token and spend counters for rate limits and budgets: in this process, or in Redis for several.

Rate limits use a sliding-window counter: the current minute's count plus the previous minute's, weighted by
how much of it still falls inside the last 60 seconds. Refused requests count too, so a client hammering
past its limit stays limited. Spend counters are keyed by budget window (`key:key_x:daily:2026-11-27`).

In-process spend is the database's figure at the last refresh plus what this process counted since, plus
what requests in flight reserved. In Redis, every sidecar adds to one counter per window, seeded from the
database when it does not exist yet (a new window, or Redis restarted).

Budgets are reserved, not only checked: `admit` refuses when a window's spend (reservations included) has
reached its limit, and otherwise adds the request's worst-case cost to every window in the same step (one
Lua script in Redis, no await in between in process). `add` settles a request: its reservation goes, its real
cost comes. So concurrent requests cannot all pass a check that none of them has paid for yet: a window
overshoots its limit by at most one request's worst case.
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
    exhausted: int | None = None
    """The index of the first budget whose limit was reached (nothing was reserved then), or None."""


class Counters(Protocol):
    """Where limits and budgets are counted."""

    async def admit(self, key_id: str | None, spend_ids: Sequence[str], limits: Sequence[float] = (),
                    reserve: float = 0.0) -> Usage:
        """Count one request for `key_id`; return the key's sliding-minute requests and tokens, and spend.

        With `limits` (one per spend id): when a window's spend has reached its limit, `exhausted` names it;
        otherwise `reserve` is added to every window until `add` settles it.
        """
        ...

    def add(self, key_id: str | None, tokens: int, spend_ids: Sequence[str], cost: float,
            reserved: float = 0.0) -> None:
        """Count a finished request's tokens and cost, and drop its reservation (never blocks)."""
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
        self._reserved: dict[str, float] = {}

    def _roll(self, now: float) -> None:
        minute = int(now // _MINUTE)
        if minute != self._minute:
            recent = minute == self._minute + 1
            self._previous_requests = self._requests if recent else {}
            self._previous_tokens = self._tokens if recent else {}
            self._requests, self._tokens = {}, {}
            self._minute = minute

    async def admit(self, key_id: str | None, spend_ids: Sequence[str], limits: Sequence[float] = (),
                    reserve: float = 0.0) -> Usage:
        now = time.time()
        self._roll(now)
        requests = tokens = 0.0
        if key_id is not None:
            count = self._requests.get(key_id, 0) + 1
            self._requests[key_id] = count
            requests = sliding(count, self._previous_requests.get(key_id, 0), now)
            tokens = sliding(self._tokens.get(key_id, 0), self._previous_tokens.get(key_id, 0), now)
        spend = [self._base.get(i, 0.0) + self._local.get(i, 0.0) + self._reserved.get(i, 0.0) for i in spend_ids]
        exhausted = _exhausted(spend, limits)
        if exhausted is None and reserve:
            for spend_id in spend_ids:
                self._reserved[spend_id] = self._reserved.get(spend_id, 0.0) + reserve
        return Usage(requests, tokens, spend, exhausted)

    def add(self, key_id: str | None, tokens: int, spend_ids: Sequence[str], cost: float,
            reserved: float = 0.0) -> None:
        self._roll(time.time())
        if key_id is not None and tokens:
            self._tokens[key_id] = self._tokens.get(key_id, 0) + tokens
        for spend_id in spend_ids:
            if cost:
                self._local[spend_id] = self._local.get(spend_id, 0.0) + cost
            if reserved:
                left = self._reserved.get(spend_id, 0.0) - reserved
                if left > 1e-12:
                    self._reserved[spend_id] = left
                else:
                    self._reserved.pop(spend_id, None)

    def snapshot(self) -> dict[str, float]:
        return dict(self._local)

    def rebase(self, spend: Mapping[str, float], started: Any) -> None:
        # What was counted before the read is (up to the writer's lag) in the database's figure now.
        self._local = {i: v - started.get(i, 0.0) for i, v in self._local.items() if v - started.get(i, 0.0) > 0}
        self._base = dict(spend)

    async def aclose(self) -> None:
        return None


# One round trip per request: count it, read the key's sliding-minute figures, then check and reserve budgets.
# ARGV: rate flag, reservation, window TTL, then per budget window its database figure (the seed) and limit.
# Returns the rate figures (when asked), the 1-based index of an exhausted window (0: none) and each spend.
_ADMIT_LUA = """
local out = {}
local first = 1
if ARGV[1] == '1' then
  local count = redis.call('INCR', KEYS[1])
  if count == 1 then redis.call('EXPIRE', KEYS[1], 120) end
  out[1] = count
  out[2] = redis.call('GET', KEYS[2]) or '0'
  out[3] = redis.call('GET', KEYS[3]) or '0'
  out[4] = redis.call('GET', KEYS[4]) or '0'
  first = 5
end
local reserve = tonumber(ARGV[2])
local exhausted = 0
local spent = {}
for i = first, #KEYS do
  local j = i - first
  redis.call('SET', KEYS[i], ARGV[4 + 2 * j], 'NX', 'EX', ARGV[3])
  local value = tonumber(redis.call('GET', KEYS[i])) or 0
  local limit = tonumber(ARGV[5 + 2 * j])
  spent[#spent + 1] = tostring(value)
  if exhausted == 0 and limit and limit > 0 and value >= limit then exhausted = j + 1 end
end
if exhausted == 0 and reserve > 0 then
  for i = first, #KEYS do redis.call('INCRBYFLOAT', KEYS[i], ARGV[2]) end
end
out[#out + 1] = exhausted
for _, value in ipairs(spent) do out[#out + 1] = value end
return out
"""
_FLUSH_EVERY_S = 0.02  # finished requests' tokens and cost are written together, at most 50 times a second


class RedisCounters:
    """Counters shared by every sidecar using the same Redis.

    A request costs one round trip (a Lua script). What finished requests used is summed in the process and
    written in one pipeline every `_FLUSH_EVERY_S`, so Redis writes do not grow with the request rate; the
    other sidecars see it that much later.
    """

    def __init__(self, url: str, timeout_s: float = 0.5) -> None:
        import redis.asyncio as redis

        self._redis = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self._admit = self._redis.register_script(_ADMIT_LUA)
        self._base: dict[str, float] = {}
        self._tokens: dict[str, int] = {}
        self._usd: dict[str, float] = {}
        self._flush: asyncio.Task[None] | None = None
        self._warned_at = 0.0

    async def admit(self, key_id: str | None, spend_ids: Sequence[str], limits: Sequence[float] = (),
                    reserve: float = 0.0) -> Usage:
        now = time.time()
        minute = int(now // _MINUTE)
        keys: list[str] = []
        if key_id is not None:
            keys += [f"{_REDIS_PREFIX}req:{key_id}:{minute}", f"{_REDIS_PREFIX}req:{key_id}:{minute - 1}",
                     f"{_REDIS_PREFIX}tok:{key_id}:{minute}", f"{_REDIS_PREFIX}tok:{key_id}:{minute - 1}"]
        keys += [_REDIS_PREFIX + "usd:" + i for i in spend_ids]
        args: list[str] = ["1" if key_id is not None else "0", repr(reserve), str(_WINDOW_TTL_S)]
        for index, spend_id in enumerate(spend_ids):
            args += [repr(self._base.get(spend_id, 0.0)), repr(limits[index]) if index < len(limits) else "0"]
        try:
            results = await self._admit(keys=keys, args=args)
        except Exception as exc:  # noqa: BLE001 - boundary: Redis down means limits fail open, not requests
            self._warn(f"Redis unavailable, limits and budgets not enforced across sidecars: {exc}")
            spend = [self._base.get(i, 0.0) for i in spend_ids]
            return Usage(0.0, 0.0, spend, _exhausted(spend, limits))
        requests = tokens = 0.0
        if key_id is not None:
            requests = sliding(int(results[0]), _number(results[1]), now)
            tokens = sliding(_number(results[2]), _number(results[3]), now)
            results = results[4:]
        exhausted = int(results[0]) - 1 if int(results[0]) else None
        # Not yet flushed settlements of this process count too (usually negative: a reservation exceeds the cost).
        spend = [_number(v) + self._usd.get(i, 0.0) for i, v in zip(spend_ids, results[1:], strict=True)]
        return Usage(requests, tokens + (self._tokens.get(key_id, 0) if key_id else 0), spend, exhausted)

    def add(self, key_id: str | None, tokens: int, spend_ids: Sequence[str], cost: float,
            reserved: float = 0.0) -> None:
        if key_id is not None and tokens:
            self._tokens[key_id] = self._tokens.get(key_id, 0) + tokens
        if cost != reserved:
            for spend_id in spend_ids:
                self._usd[spend_id] = self._usd.get(spend_id, 0.0) + cost - reserved
        if self._flush is None and (self._tokens or self._usd):
            self._flush = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        try:
            await asyncio.sleep(_FLUSH_EVERY_S)
        finally:
            self._flush = None
            await self._write()

    async def _write(self) -> None:
        tokens, usd = self._tokens, self._usd
        self._tokens, self._usd = {}, {}
        if not tokens and not usd:
            return
        minute = int(time.time() // _MINUTE)
        pipe = self._redis.pipeline(transaction=False)
        for key_id, count in tokens.items():
            name = f"{_REDIS_PREFIX}tok:{key_id}:{minute}"
            pipe.incrby(name, count)
            pipe.expire(name, 2 * _MINUTE)
        for spend_id, cost in usd.items():
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
        if self._flush is not None:
            self._flush.cancel()
            await asyncio.gather(self._flush, return_exceptions=True)
        await self._write()
        await self._redis.aclose()

    def _warn(self, message: str) -> None:
        now = time.monotonic()
        if now - self._warned_at > 30:
            self._warned_at = now
            log.warning(message)


def _exhausted(spend: Sequence[float], limits: Sequence[float]) -> int | None:
    """The first window whose spend reached its limit (a limit of 0 means none)."""
    return next((i for i, (spent, limit) in enumerate(zip(spend, limits, strict=False)) if 0 < limit <= spent), None)


def _number(value: Any) -> float:
    if value is None:
        return 0.0
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0
