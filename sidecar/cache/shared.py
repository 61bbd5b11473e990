"""The tiers behind each sidecar's memory: Redis (shared by replicas) and the database (durable).

Redis is read on the request path, under a short timeout: a slow or absent Redis is a miss, never an error.
The database is never awaited by a request: entries are queued and written by a background task, and
read once at start-up to warm the memory and semantic tiers.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections import deque
from datetime import UTC, datetime
from typing import Any

import orjson
from redis.exceptions import RedisError
from sqlalchemy.engine import Engine

from sidecar.cache.memory import CacheEntry

log = logging.getLogger("tollgate.sidecar.cache")
REDIS_PREFIX = "tollgate:cache:"
SCOPE_PREFIX = "tollgate:cache-scope:"
WARN_EVERY_S = 60.0


class RedisTier:
    """Entries in Redis with their TTL, as a JSON header line followed by the body.

    Entries the semantic cache can find are also listed per scope (`…scope:<scope>`, newest last, trimmed to
    `max_per_scope`), so a sidecar that finds no neighbour in its own index can pull its peers' entries.
    """

    def __init__(self, url: str, timeout_s: float, max_per_scope: int = 2_000) -> None:
        import redis.asyncio as redis

        self._client = redis.Redis.from_url(url, socket_timeout=max(timeout_s, 1.0))
        self._timeout_s = timeout_s
        self._max_per_scope = max_per_scope
        self._warned_at = 0.0
        self.errors = 0

    async def get(self, key: str) -> CacheEntry | None:
        try:
            raw = await asyncio.wait_for(self._client.get(REDIS_PREFIX + key), self._timeout_s)
        except (RedisError, OSError, TimeoutError) as exc:  # Redis trouble of any kind is a cache miss
            self._warn("read", exc)
            return None
        if raw is None:
            return None
        return _decode(key, raw)

    async def scope_entries(self, scope: str, known: set[str]) -> list[CacheEntry]:
        """The live entries listed under `scope` whose keys are not in `known`."""
        try:
            listed = await asyncio.wait_for(self._client.lrange(SCOPE_PREFIX + scope, 0, -1), self._timeout_s)
            keys = list(dict.fromkeys(k.decode() if isinstance(k, bytes) else k for k in listed))
            keys = [key for key in keys if key not in known]
            if not keys:
                return []
            values = await asyncio.wait_for(self._client.mget([REDIS_PREFIX + key for key in keys]), self._timeout_s)
        except (RedisError, OSError, TimeoutError) as exc:
            self._warn("read", exc)
            return []
        found = [_decode(key, raw) for key, raw in zip(keys, values, strict=True) if raw is not None]
        return [entry for entry in found if entry is not None and entry.vector is not None]

    async def put(self, entry: CacheEntry) -> None:
        ttl_ms = int((entry.expires_at - time.time()) * 1000)
        if ttl_ms <= 0:
            return
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.set(REDIS_PREFIX + entry.key, _encode(entry), px=ttl_ms)
                if entry.scope is not None and entry.vector is not None:
                    listing = SCOPE_PREFIX + entry.scope
                    pipe.rpush(listing, entry.key)
                    pipe.ltrim(listing, -self._max_per_scope, -1)
                    pipe.pexpire(listing, ttl_ms)
                await pipe.execute()
        except (RedisError, OSError, TimeoutError) as exc:  # a failed store only costs a future miss
            self._warn("write", exc)

    def _warn(self, what: str, exc: BaseException) -> None:
        self.errors += 1
        now = time.monotonic()
        if now - self._warned_at > WARN_EVERY_S:
            self._warned_at = now
            log.warning("cache: Redis %s failed (%s: %s); serving without the shared tier",
                        what, exc.__class__.__name__, exc)

    async def aclose(self) -> None:
        await self._client.aclose()


def _encode(entry: CacheEntry) -> bytes:
    header = {"x": entry.expires_at, "e": entry.endpoint, "m": entry.model, "p": entry.prompt_name,
              "v": entry.prompt_version, "s": entry.scope, "q": entry.query,
              "w": base64.b64encode(entry.vector).decode() if entry.vector is not None else None}
    return orjson.dumps(header) + b"\n" + entry.body


def _decode(key: str, raw: bytes | str) -> CacheEntry | None:
    if isinstance(raw, str):
        raw = raw.encode()
    head, sep, body = raw.partition(b"\n")
    if not sep:
        return None
    try:
        header = orjson.loads(head)
    except orjson.JSONDecodeError:
        return None
    vector = base64.b64decode(header["w"]) if header.get("w") else None
    entry = CacheEntry(key, body, float(header["x"]), header["e"], header["m"], header["p"], header["v"],
                       header["s"], header["q"], vector)
    return None if entry.expired() else entry


class DatabaseTier:
    """Writes entries to `cache_entry` in the background and loads the live ones at start-up."""

    def __init__(self, engine: Engine, *, queue_size: int = 10_000, flush_interval_s: float = 1.0) -> None:
        self._engine = engine
        self._pending: deque[CacheEntry] = deque(maxlen=queue_size)  # oldest dropped past the bound
        self._flush_interval_s = flush_interval_s
        self._wake = asyncio.Event()
        self._closing = False

    def put(self, entry: CacheEntry) -> None:
        """Queue `entry` for the writer (never blocks)."""
        self._pending.append(entry)

    async def run(self) -> None:
        """The writer loop: flush what is queued, delete what expired; until `aclose`."""
        while not self._closing:
            try:
                await asyncio.wait_for(self._wake.wait(), self._flush_interval_s)
            except TimeoutError:
                pass
            await self.flush()

    async def flush(self) -> None:
        batch = list(self._pending)
        self._pending.clear()
        try:
            await asyncio.to_thread(_write, self._engine, batch)
        except Exception:  # boundary: the writer loop must survive a database outage
            log.exception("cache: writing %d entries to the database failed; they stay in memory only", len(batch))

    async def aclose(self) -> None:
        self._closing = True
        self._wake.set()

    def load(self, limit: int) -> list[CacheEntry]:
        """The live entries, newest first (blocking: call it in a thread)."""
        from sqlmodel import Session, col, select

        from core.tables.cache import CacheEntryRow

        now = datetime.now(UTC)
        with Session(self._engine) as session:
            statement = (select(CacheEntryRow).where(col(CacheEntryRow.expires_at) > now)
                         .order_by(col(CacheEntryRow.created_at).desc()).limit(limit))
            rows = session.exec(statement).all()
        return [CacheEntry(row.key, row.body, _aware(row.expires_at).timestamp(), row.endpoint, row.model,
                           row.prompt_name, row.prompt_version, row.scope, row.query, row.vector) for row in rows]


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes for timezone-aware columns; they were stored in UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _write(engine: Engine, entries: list[CacheEntry]) -> None:
    from sqlmodel import Session, col, delete

    from core.tables.cache import CacheEntryRow

    now = datetime.now(UTC)
    with Session(engine) as session:
        latest: dict[str, Any] = {entry.key: entry for entry in entries}
        for entry in latest.values():
            session.merge(CacheEntryRow(
                key=entry.key, endpoint=entry.endpoint, model=entry.model, prompt_name=entry.prompt_name,
                prompt_version=entry.prompt_version, scope=entry.scope, query=entry.query, vector=entry.vector,
                body=entry.body, created_at=now, expires_at=datetime.fromtimestamp(entry.expires_at, UTC)))
        session.exec(delete(CacheEntryRow).where(col(CacheEntryRow.expires_at) <= now))
        session.commit()
