"""Aggregates of a benchmark level: percentiles of each latency, throughput, error rate and goodput.

A level's summary is a flat mapping of metric name to number, the shape the regression rules read:
  * `<latency>_<stat>` for latency in ttft, itl, tpot, e2e, queue and stat in mean, p50, p90, p95, p99
    (milliseconds, over successful requests; `itl` pools every gap of every request, as vLLM's and
    guidellm's reports do);
  * `requests`, `completed`, `errors`, `error_rate`, `duration_s`, `requests_per_s`, `output_tokens_per_s`,
    `tokens_in`, `tokens_out`;
  * `goodput` (the fraction of all requests, failures included, that succeeded and met every SLO) and
    `goodput_per_s` (those requests per second of the level's wall time).
Percentiles are numpy's linear interpolation; a metric with no values is NaN.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from harness.bench.errors import BenchError
from harness.bench.timing import RequestRecord

LATENCIES: tuple[str, ...] = ("ttft", "itl", "tpot", "e2e", "queue")
STATS: tuple[str, ...] = ("mean", "p50", "p90", "p95", "p99")
_PERCENTILES = (50.0, 90.0, 95.0, 99.0)
SCALARS: tuple[str, ...] = (
    "requests", "completed", "errors", "error_rate", "duration_s", "requests_per_s", "output_tokens_per_s",
    "tokens_in", "tokens_out", "goodput", "goodput_per_s",
)
METRICS: frozenset[str] = frozenset({f"{m}_{s}" for m in LATENCIES for s in STATS} | set(SCALARS))
# Metrics where a larger value is the better one; a rule without a sign watches them for a fall.
HIGHER_IS_BETTER: frozenset[str] = frozenset(
    {"completed", "requests_per_s", "output_tokens_per_s", "goodput", "goodput_per_s", "tokens_out"}
)

# What each SLO bounds, per request. `itl_ms` bounds the request's longest gap between chunks.
_SLO_VALUES: dict[str, Callable[[RequestRecord], float | None]] = {
    "ttft_ms": lambda r: r.ttft_ms,
    "e2e_ms": lambda r: r.e2e_ms,
    "tpot_ms": lambda r: r.tpot_ms,
    "itl_ms": lambda r: r.itl_max_ms,
    "queue_ms": lambda r: r.queue_ms,
}


@dataclass(frozen=True, slots=True)
class SLO:
    """A per-request service level: `name` (one of ttft_ms, e2e_ms, tpot_ms, itl_ms, queue_ms) at most `limit_ms`."""

    name: str
    limit_ms: float

    def met(self, record: RequestRecord) -> bool:
        """A request without the value (e.g. one token, so no TPOT) is not held to this SLO."""
        value = _SLO_VALUES[self.name](record)
        return value is None or value <= self.limit_ms


def parse_slos(text: str | None) -> tuple[SLO, ...]:
    """`ttft_ms=500,e2e_ms=5000` -> SLO objects; a `s` suffix gives seconds (`e2e_ms=5s`)."""
    if not text or not text.strip():
        return ()
    slos: dict[str, SLO] = {}
    for part in text.split(","):
        name, sep, value = part.strip().partition("=")
        name = name.strip()
        if not sep or name not in _SLO_VALUES:
            raise BenchError(f"bad SLO {part.strip()!r}: use NAME=MILLISECONDS with NAME in {', '.join(_SLO_VALUES)}")
        slos[name] = SLO(name, _milliseconds(value.strip(), part.strip()))
    return tuple(slos.values())


def _milliseconds(value: str, where: str) -> float:
    scale = 1.0
    if value.endswith("ms"):
        value = value[:-2]
    elif value.endswith("s"):
        value, scale = value[:-1], 1000.0
    try:
        number = float(value) * scale
    except ValueError:
        raise BenchError(f"bad SLO {where!r}: {value!r} is not a number") from None
    if not math.isfinite(number) or number <= 0:
        raise BenchError(f"bad SLO {where!r}: the limit must be a positive number")
    return number


def describe(values: Sequence[float]) -> dict[str, float]:
    """mean, p50, p90, p95, p99 of `values` (NaN for each when empty)."""
    if not values:
        return dict.fromkeys(STATS, math.nan)
    array = np.asarray(values, dtype=float)
    p50, p90, p95, p99 = np.percentile(array, _PERCENTILES)
    return {"mean": float(array.mean()), "p50": float(p50), "p90": float(p90), "p95": float(p95),
            "p99": float(p99)}


def summarize(records: Sequence[RequestRecord], duration_s: float, slos: Sequence[SLO] = ()) -> dict[str, float]:
    """The flat summary of one level (see the module docstring); `duration_s` is its wall time."""
    ok = [r for r in records if r.ok]
    series: dict[str, list[float]] = {
        "ttft": [r.ttft_ms for r in ok if r.ttft_ms is not None],
        "itl": [gap for r in ok for gap in r.itl_ms],
        "tpot": [t for r in ok if (t := r.tpot_ms) is not None],
        "e2e": [r.e2e_ms for r in ok if r.e2e_ms is not None],
        "queue": [r.queue_ms for r in records],
    }
    summary: dict[str, float] = {}
    for name, values in series.items():
        for stat, value in describe(values).items():
            summary[f"{name}_{stat}"] = value
    good = sum(1 for r in ok if all(slo.met(r) for slo in slos))
    tokens_out = sum(r.tokens_out or 0 for r in ok)
    per_s = (lambda n: n / duration_s) if duration_s > 0 else (lambda n: math.nan)
    summary.update(
        requests=float(len(records)),
        completed=float(len(ok)),
        errors=float(len(records) - len(ok)),
        error_rate=(len(records) - len(ok)) / len(records) if records else math.nan,
        duration_s=duration_s,
        requests_per_s=per_s(len(ok)),
        output_tokens_per_s=per_s(tokens_out),
        tokens_in=float(sum(r.tokens_in or 0 for r in ok)),
        tokens_out=float(tokens_out),
        goodput=good / len(records) if records else math.nan,
        goodput_per_s=per_s(good),
    )
    return summary


def restore_nans(summary: Mapping[str, float | None]) -> dict[str, float]:
    """A summary read back from JSON, where NaN was written as null."""
    return {key: math.nan if value is None else float(value) for key, value in summary.items()}
