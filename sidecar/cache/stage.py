"""The cache stage: answer from the exact or the semantic cache, and store fresh answers after they went out.

`on_request` looks up the exact key in memory, then in the shared tier (Redis); for deterministic requests
it then looks for a semantic neighbour. A hit answers without an upstream call (replayed as SSE for a
stream request). `on_done` stores a successful fresh answer: in memory at once, in Redis and the database
in the background. Every cacheable request gets `x-tollgate-cache: hit|semantic|miss|bypass` and the same
value in `record.cache_status`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from core.config.cache import CacheSettings
from sidecar.cache.keys import CacheRequest, bypass_mode, describe_request
from sidecar.cache.memory import CacheEntry, MemoryTier
from sidecar.cache.replay import document_to_sse, sse_to_document
from sidecar.cache.semantic import Embedder, SemanticIndex
from sidecar.cache.shared import DatabaseTier, RedisTier
from sidecar.pipeline import BaseStage, Exchange, Reply

log = logging.getLogger("tollgate.sidecar.cache")
HEADER = b"x-tollgate-cache"
_STORABLE_FINISH = frozenset({"stop", "length", "tool_calls", "function_call"})
PULL_EVERY_S = 1.0  # a busy scope's listing is read from Redis at most this often per sidecar


@dataclass(slots=True)
class _Pending:
    """What `on_done` needs to store the answer of a request that was not served from the cache."""

    request: CacheRequest
    vector: np.ndarray | None


class CacheStage(BaseStage):
    """Exact and semantic response cache (see the module docstring)."""

    name = "cache"

    def __init__(self, settings: CacheSettings, *, redis: RedisTier | None = None,
                 database: DatabaseTier | None = None, embedder: Embedder | None = None) -> None:
        self.settings = settings
        self.memory = MemoryTier(settings.max_entries, settings.max_bytes)
        self.redis = redis
        self.database = database
        self.embedder = embedder
        self.index = (SemanticIndex(settings.semantic.threshold, settings.semantic.max_entries_per_scope)
                      if embedder is not None else None)
        self.counts: Counter[str] = Counter()
        self.loaded = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._lookups: Any = None
        self._pulled: OrderedDict[str, float] = OrderedDict()

    # -- request path --------------------------------------------------------------------------------------

    async def on_request(self, exchange: Exchange) -> Reply | None:
        request = describe_request(exchange.endpoint, exchange.payload, exchange.record)
        if request is None or (self.settings.only_deterministic and not request.deterministic):
            return None
        mode = bypass_mode(exchange.headers)
        if mode is not None:
            self._note(exchange, "bypass")
            if mode == "refresh":
                exchange.state[self.name] = _Pending(request, None)
            return None
        entry = await self._lookup(request.key)
        if entry is not None:
            return self._answer(exchange, entry, "hit")
        vector = None
        if self.index is not None and self.embedder is not None and request.scope is not None:
            assert request.query is not None
            vector = await self.embedder.embed(request.query)
            found = self.index.nearest(request.scope, vector)
            if found is None and self.redis is not None and await self._pull_scope(request.scope):
                found = self.index.nearest(request.scope, vector)
            if found is not None:
                entry = await self._lookup(found[0])
                if entry is not None and entry.scope == request.scope:
                    exchange.response_headers.append((b"x-tollgate-cache-similarity", f"{found[1]:.4f}".encode()))
                    # The same wording again is then an exact hit, without another embedding.
                    self.memory.put(dataclasses.replace(entry, key=request.key))
                    return self._answer(exchange, entry, "semantic")
        self._note(exchange, "miss")
        exchange.state[self.name] = _Pending(request, vector)
        return None

    async def _lookup(self, key: str) -> CacheEntry | None:
        entry = self.memory.get(key)
        if entry is None and self.redis is not None:
            entry = await self.redis.get(key)
            if entry is not None and not entry.expired():
                self.memory.put(entry)
            else:
                entry = None
        return entry

    async def _pull_scope(self, scope: str) -> bool:
        """Index the entries other sidecars stored for `scope` in Redis; True when there were new ones."""
        assert self.redis is not None and self.index is not None
        now = time.monotonic()
        last = self._pulled.get(scope)
        if last is not None and now - last < PULL_EVERY_S:
            return False
        self._pulled[scope] = now
        self._pulled.move_to_end(scope)
        if len(self._pulled) > 1_000:
            self._pulled.popitem(last=False)
        entries = await self.redis.scope_entries(scope, self.index.keys(scope))
        for entry in entries:
            assert entry.vector is not None
            self.memory.put(entry)
            self.index.add(scope, entry.key, np.frombuffer(entry.vector, dtype=np.float32))
        return bool(entries)

    def _answer(self, exchange: Exchange, entry: CacheEntry, result: str) -> Reply:
        self._note(exchange, result)
        if not exchange.stream:
            return Reply(200, entry.body)
        options = exchange.payload.get("stream_options") or {}
        document = orjson.loads(entry.body)
        return Reply(200, document_to_sse(document, include_usage=options.get("include_usage") is True), sse=True)

    def _note(self, exchange: Exchange, result: str) -> None:
        exchange.record.cache_status = result
        exchange.response_headers.append((HEADER, result.encode()))
        self.counts[result] += 1
        if self._lookups is not None:
            self._lookups.labels(exchange.endpoint, result).inc()

    # -- after the response --------------------------------------------------------------------------------

    def on_done(self, exchange: Exchange) -> None:
        pending = exchange.state.get(self.name)
        if not isinstance(pending, _Pending):
            return
        record = exchange.record
        if record.status != 200 or record.error_class is not None:
            return
        body = self._answer_body(exchange)
        if body is None or len(body) > self.settings.max_entry_bytes:
            return
        request = pending.request
        entry = CacheEntry(request.key, body, time.time() + self.settings.ttl_s, exchange.endpoint,
                           exchange.payload.get("model"), record.prompt_name, record.prompt_version)
        if self.index is not None and request.scope is not None:
            entry.scope, entry.query = request.scope, request.query
        self.memory.put(entry)
        if entry.scope is not None and pending.vector is None:
            self._spawn(self._embed_and_share(entry))
        else:
            if pending.vector is not None:
                entry.vector = pending.vector.tobytes()
                self._index(entry, pending.vector)
            self._share(entry)

    def _answer_body(self, exchange: Exchange) -> bytes | None:
        if exchange.stream:
            document = sse_to_document(exchange.record.response_chunks or [], exchange.endpoint)
            if document is None:
                return None
            body = orjson.dumps(document)
        else:
            reply = exchange.reply
            if reply is None or reply.status != 200 or reply.sse:
                return None
            document, body = reply.document(), reply.body
        if not isinstance(document, dict):
            return None
        choices = document.get("choices")
        if not isinstance(choices, list) or not choices:
            return None
        if any(not isinstance(c, dict) or c.get("finish_reason") not in _STORABLE_FINISH for c in choices):
            return None
        return body

    async def _embed_and_share(self, entry: CacheEntry) -> None:
        assert self.embedder is not None and entry.query is not None
        vector = await self.embedder.embed(entry.query)
        entry.vector = vector.tobytes()
        self._index(entry, vector)
        self._share(entry)

    def _index(self, entry: CacheEntry, vector: np.ndarray) -> None:
        if self.index is not None and entry.scope is not None:
            self.index.add(entry.scope, entry.key, vector)

    def _share(self, entry: CacheEntry) -> None:
        if self.redis is not None:
            self._spawn(self.redis.put(entry))
        if self.database is not None:
            self.database.put(entry)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("cache: background store failed: %s", task.exception())

    # -- lifecycle and metrics -----------------------------------------------------------------------------

    def start(self, metrics: Any) -> None:
        """Register metrics, start the database writer and load stored entries (in the background)."""
        if metrics is not None:
            self._register_metrics(metrics)
        if self.embedder is not None:
            self.embedder.warm_up()
        if self.database is None:
            self.loaded.set()
            return
        self._spawn(self.database.run())
        self._spawn(self._load())

    async def _load(self) -> None:
        assert self.database is not None
        try:
            entries = await asyncio.to_thread(self.database.load, self.settings.max_entries)
        except Exception:  # boundary: a sidecar starts with a cold cache rather than not at all
            log.exception("cache: loading stored entries failed; starting cold")
            entries = []
        for entry in reversed(entries):  # oldest first, so the newest end up most recently used
            self.memory.put(entry)
            if entry.vector is not None and entry.scope is not None:
                self._index(entry, np.frombuffer(entry.vector, dtype=np.float32))
        self.loaded.set()
        log.info("cache: %d stored entries loaded", len(entries))

    def _register_metrics(self, metrics: Any) -> None:
        from prometheus_client import Counter as PromCounter

        self._lookups = PromCounter("tollgate_cache_lookups", "Cache lookups by result (hit, semantic, miss, bypass)",
                                    ("endpoint", "result"), registry=metrics.registry)
        metrics.add_state("tollgate_cache_hit_ratio", "Share of cache lookups answered (exact or semantic)",
                          lambda: {(kind,): value for kind, value in self.hit_ratios().items()}, ("kind",))
        metrics.add_state("tollgate_cache_entries", "Entries held by each sidecar-local tier", self._sizes, ("tier",))
        metrics.add_state("tollgate_cache_memory_bytes", "Bytes of answers held in memory",
                          lambda: {(): float(self.memory.bytes)}, ())

    def hit_ratios(self) -> dict[str, float]:
        """Exact, semantic and total hit ratio over the lookups so far (bypassed requests excluded)."""
        looked = self.counts["hit"] + self.counts["semantic"] + self.counts["miss"]
        if not looked:
            return {"exact": 0.0, "semantic": 0.0, "total": 0.0}
        return {"exact": self.counts["hit"] / looked, "semantic": self.counts["semantic"] / looked,
                "total": (self.counts["hit"] + self.counts["semantic"]) / looked}

    def _sizes(self) -> dict[tuple[str, ...], float]:
        sizes: dict[tuple[str, ...], float] = {("memory",): float(len(self.memory))}
        if self.index is not None:
            sizes[("semantic",)] = float(len(self.index))
        return sizes

    async def aclose(self) -> None:
        """Finish pending stores, flush the database writer and close the clients."""
        if self.database is not None:
            await self.database.aclose()
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self.database is not None:
            await self.database.flush()
        if self.redis is not None:
            await self.redis.aclose()
        if self.embedder is not None:
            self.embedder.close()
