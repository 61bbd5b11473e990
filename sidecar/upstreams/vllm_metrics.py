"""Reading a vLLM server's Prometheus `/metrics`: the load figures balancing needs.

vLLM exports, per engine (label `engine`) and served model:
`vllm:num_requests_running`, `vllm:num_requests_waiting`, `vllm:kv_cache_usage_perc` (a fraction, named
`vllm:gpu_cache_usage_perc` before vLLM 0.10), and the prefix-cache counters `vllm:prefix_cache_queries_total`
and `vllm:prefix_cache_hits_total` (in tokens). Several engines (data parallel) are summed; KV-cache usage is
the highest of them, since the fullest engine is the one that starts preempting.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

RUNNING = "vllm:num_requests_running"
WAITING = "vllm:num_requests_waiting"
KV_CACHE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
PREFIX_QUERIES = ("vllm:prefix_cache_queries_total", "vllm:gpu_prefix_cache_queries_total")
PREFIX_HITS = ("vllm:prefix_cache_hits_total", "vllm:gpu_prefix_cache_hits_total")
_WANTED = frozenset((RUNNING, WAITING, *KV_CACHE, *PREFIX_QUERIES, *PREFIX_HITS))


class MetricsFormatError(ValueError):
    """The body is not a vLLM metrics exposition (none of the load gauges is in it)."""


@dataclass(frozen=True, slots=True)
class EngineLoad:
    """One scrape of a vLLM server: requests running and waiting, KV-cache usage (0-1), prefix-cache counters."""

    running: float
    waiting: float
    kv_cache_usage: float
    prefix_queries: float = 0.0
    prefix_hits: float = 0.0
    at: float = 0.0
    """`time.monotonic()` when it was scraped."""

    @property
    def prefix_hit_rate(self) -> float | None:
        """Prefix-cache hits over queries since the server started (None before the first query)."""
        return self.prefix_hits / self.prefix_queries if self.prefix_queries else None


def parse_vllm_metrics(text: str, at: float | None = None) -> EngineLoad:
    """The load figures in a Prometheus text exposition; raises `MetricsFormatError` when they are missing."""
    sums: dict[str, float] = {}
    peaks: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith("vllm:"):
            continue
        name, value = _sample(line)
        if name not in _WANTED or value is None:
            continue
        sums[name] = sums.get(name, 0.0) + value
        peaks[name] = max(peaks.get(name, 0.0), value)
    if RUNNING not in sums and WAITING not in sums:
        raise MetricsFormatError("no vllm:num_requests_running or vllm:num_requests_waiting in the metrics")
    return EngineLoad(
        running=sums.get(RUNNING, 0.0),
        waiting=sums.get(WAITING, 0.0),
        kv_cache_usage=_first(peaks, KV_CACHE),
        prefix_queries=_first(sums, PREFIX_QUERIES),
        prefix_hits=_first(sums, PREFIX_HITS),
        at=time.monotonic() if at is None else at,
    )


def _sample(line: str) -> tuple[str, float | None]:
    """`name{labels} value [timestamp]` -> (name, value); a value that is not a finite number is None."""
    brace = line.find("{")
    if brace >= 0:
        name = line[:brace]
        rest = line[line.rfind("}") + 1 :]
    else:
        name, _, rest = line.partition(" ")
    fields = rest.split()
    if not fields:
        return name, None
    try:
        value = float(fields[0])
    except ValueError:
        return name, None
    return name, value if math.isfinite(value) else None


def _first(values: dict[str, float], names: tuple[str, ...]) -> float:
    for name in names:
        if name in values:
            return values[name]
    return 0.0
