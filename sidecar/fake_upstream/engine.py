"""A vLLM-like engine inside the fake upstream: in-flight requests, a prefix cache, `/metrics` and health.

It lets load-aware balancing, prefix affinity and health checks be tested without vLLM:

- `GET /metrics` answers in vLLM's Prometheus names (`vllm:num_requests_running`, `vllm:num_requests_waiting`,
  `vllm:kv_cache_usage_perc`, `vllm:prefix_cache_queries_total`, `vllm:prefix_cache_hits_total`).
  Running and waiting come from the requests actually in flight (beyond `max_running` they wait), plus
  `extra_running` / `extra_waiting` that a test sets to play other clients' load.
- The prefix cache (off unless `prefix_cache_blocks` > 0) keeps blocks of `block_chars` characters of the
  prompt, keyed by the hash of everything up to and including the block (as vLLM's automatic prefix caching
  does), in LRU order; hits and queries are counted in tokens (4 characters each). `prefill_s_per_ktok` adds
  prefill time for the tokens that missed, so the cache shows in latency too.
- `GET /health` answers 503 while `healthy` is false.

Settings change through `POST /_fake/engine` (a JSON patch) or `FakeUpstream.set_engine(...)`.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import orjson

from sidecar.fake_upstream.behaviour import FakeUpstreamError

CHARS_PER_TOKEN = 4
_SETTABLE = {
    "healthy": bool,
    "max_running": int,
    "extra_running": int,
    "extra_waiting": int,
    "kv_cache_usage": float,
    "prefix_cache_blocks": int,
    "block_chars": int,
    "prefill_s_per_ktok": float,
}


@dataclass
class EngineState:
    """The simulated engine of one fake upstream (touched only from its event loop)."""

    healthy: bool = True
    max_running: int = 0
    """Requests served at once; later ones count as waiting (0 = no limit)."""
    extra_running: int = 0
    extra_waiting: int = 0
    kv_cache_usage: float | None = None
    """Reported KV-cache usage; None = the prefix cache's fill level."""
    prefix_cache_blocks: int = 0
    block_chars: int = 64
    prefill_s_per_ktok: float = 0.0
    in_flight: int = 0
    prefix_queries: int = 0
    prefix_hits: int = 0
    _blocks: OrderedDict[bytes, None] = field(default_factory=OrderedDict)

    def update(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Apply a validated patch; returns the new settings and counters."""
        if not isinstance(changes, dict):
            raise FakeUpstreamError("the engine patch must be a JSON object")
        unknown = sorted(set(changes) - set(_SETTABLE))
        if unknown:
            raise FakeUpstreamError(f"unknown engine field(s): {', '.join(unknown)}")
        for name, value in changes.items():
            if name == "kv_cache_usage" and value is None:
                self.kv_cache_usage = None
                continue
            kind = _SETTABLE[name]
            if not _is(value, kind):
                raise FakeUpstreamError(f"engine.{name} must be {kind.__name__}")
            if kind is not bool and value < 0:
                raise FakeUpstreamError(f"engine.{name} must not be negative")
            setattr(self, name, kind(value))
        if self.block_chars < 1:
            raise FakeUpstreamError("engine.block_chars must be at least 1")
        while len(self._blocks) > self.prefix_cache_blocks:
            self._blocks.popitem(last=False)
        return self.snapshot()

    def reset(self) -> None:
        """Counters and cache emptied, settings back to their defaults (requests in flight stay counted)."""
        fresh = EngineState()
        for name in (*_SETTABLE, "prefix_queries", "prefix_hits"):
            setattr(self, name, getattr(fresh, name))
        self._blocks.clear()

    def snapshot(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in _SETTABLE}
        running, waiting = self.running_waiting()
        data.update(in_flight=self.in_flight, running=running, waiting=waiting, prefix_queries=self.prefix_queries,
                    prefix_hits=self.prefix_hits, cached_blocks=len(self._blocks))
        return data

    def running_waiting(self) -> tuple[int, int]:
        own = self.in_flight
        running = min(own, self.max_running) if self.max_running else own
        return running + self.extra_running, own - running + self.extra_waiting

    def admit(self, body: bytes) -> float:
        """Count a generation request in; returns the prefill delay (seconds) for its uncached prompt part."""
        self.in_flight += 1
        if not self.prefix_cache_blocks:
            return 0.0
        text = _prompt_text(body)
        missed_chars = self._lookup(text)
        return self.prefill_s_per_ktok * (missed_chars / CHARS_PER_TOKEN) / 1000.0

    def release(self) -> None:
        self.in_flight -= 1

    def _lookup(self, text: str) -> int:
        """Walk the prompt's full blocks: hits while the chain matches, then insert the rest; returns missed chars."""
        size = self.block_chars
        full = len(text) // size
        digest = hashlib.blake2b(digest_size=16)
        hit_blocks = 0
        matching = True
        for index in range(full):
            digest.update(text[index * size : (index + 1) * size].encode("utf-8", "surrogatepass"))
            key = digest.copy().digest()
            if matching and key in self._blocks:
                self._blocks.move_to_end(key)
                hit_blocks += 1
                continue
            matching = False
            self._blocks[key] = None
            if len(self._blocks) > self.prefix_cache_blocks:
                self._blocks.popitem(last=False)
        tokens = len(text) // CHARS_PER_TOKEN
        hit_tokens = hit_blocks * size // CHARS_PER_TOKEN
        self.prefix_queries += tokens
        self.prefix_hits += hit_tokens
        return len(text) - hit_blocks * size

    def kv_usage(self) -> float:
        if self.kv_cache_usage is not None:
            return self.kv_cache_usage
        if not self.prefix_cache_blocks:
            return 0.0
        return len(self._blocks) / self.prefix_cache_blocks

    def metrics_text(self, model: str) -> bytes:
        """The Prometheus exposition, in vLLM's names and label layout."""
        running, waiting = self.running_waiting()
        labels = f'{{engine="0",model_name="{model}"}}'
        lines = [
            "# HELP vllm:num_requests_running Number of requests in model execution batches.",
            "# TYPE vllm:num_requests_running gauge",
            f"vllm:num_requests_running{labels} {float(running)}",
            "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.",
            "# TYPE vllm:num_requests_waiting gauge",
            f"vllm:num_requests_waiting{labels} {float(waiting)}",
            "# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.",
            "# TYPE vllm:kv_cache_usage_perc gauge",
            f"vllm:kv_cache_usage_perc{labels} {self.kv_usage()}",
            "# HELP vllm:prefix_cache_queries_total Prefix cache queries, in terms of number of queried tokens.",
            "# TYPE vllm:prefix_cache_queries counter",
            f"vllm:prefix_cache_queries_total{labels} {float(self.prefix_queries)}",
            "# HELP vllm:prefix_cache_hits_total Prefix cache hits, in terms of number of cached tokens.",
            "# TYPE vllm:prefix_cache_hits counter",
            f"vllm:prefix_cache_hits_total{labels} {float(self.prefix_hits)}",
        ]
        return ("\n".join(lines) + "\n").encode()


def _is(value: Any, kind: type) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    return isinstance(value, int) if kind is int else isinstance(value, int | float)


def _prompt_text(body: bytes) -> str:
    """The prompt as the engine would see it: chat messages joined in order, or the completion prompt."""
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    if not isinstance(request, dict):
        return ""
    messages = request.get("messages")
    if isinstance(messages, list):
        parts = []
        for message in messages:
            if isinstance(message, dict):
                content = message.get("content")
                if isinstance(content, list):
                    content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
                parts.append(f"<|{message.get('role')}|>{content if isinstance(content, str) else ''}")
        return "".join(parts)
    prompt = request.get("prompt")
    return prompt if isinstance(prompt, str) else ""
