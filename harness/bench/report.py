"""The plain-text report of a run: per level, a throughput line and a latency table."""

from __future__ import annotations

import math
from collections.abc import Mapping

from harness.bench.results import BenchRun, LevelResult
from harness.bench.stats import STATS

_ROWS = (
    ("ttft", "TTFT"),
    ("itl", "inter-token"),
    ("tpot", "time/output token"),
    ("e2e", "end-to-end"),
    ("queue", "client queueing"),
)


def format_run(run: BenchRun) -> str:
    """The whole report: a header naming the target, then one block per level."""
    meta = run.meta
    workload = meta.get("workload") or {}
    header = (f"tollgate bench  {meta.get('url', '?')}  model {workload.get('model', '?')}  "
              f"mode {meta.get('mode', '?')}  max_tokens {workload.get('max_tokens')}")
    slos = meta.get("slos") or {}
    if slos:
        header += "  SLO " + ",".join(f"{k}={v:g}" for k, v in slos.items())
    return "\n\n".join([header, *(format_level(level) for level in run.levels)])


def format_level(level: LevelResult) -> str:
    s = level.summary
    lines = [
        (f"[{level.label}]  {_int(s, 'requests')} requests, {_int(s, 'errors')} errors "
        f"({_pct(s.get('error_rate'))}) in {s.get('duration_s', math.nan):.2f} s  |  "
        f"{_num(s.get('requests_per_s'))} req/s  {_num(s.get('output_tokens_per_s'))} output tok/s  |  "
        f"goodput {_pct(s.get('goodput'))} ({_num(s.get('goodput_per_s'))} req/s)"),
        f"  {'ms':<18}" + "".join(f"{stat:>10}" for stat in STATS),
    ]
    for key, title in _ROWS:
        lines.append(f"  {title:<18}" + "".join(f"{_num(s.get(f'{key}_{stat}')):>10}" for stat in STATS))
    return "\n".join(lines)


def _num(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.2f}"


def _pct(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value * 100:.1f}%"


def _int(summary: Mapping[str, float], key: str) -> str:
    value = summary.get(key, math.nan)
    return "-" if math.isnan(value) else str(int(value))
