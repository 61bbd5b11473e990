"""LiteLLM's proxy on the same upstreams in the same run: direct, the logging sidecar and LiteLLM side by side.

LiteLLM serves some tens of requests a second on this machine, so this phase uses its own (shorter) wrk
duration and round count; the targets still alternate round by round. Its own overhead header under-reports,
so everything here is measured from outside, like the sidecar.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
from pathlib import Path
from typing import Any

from overhead_measures import (
    DEFAULT_AUTH,
    alternate,
    measure_ttft,
    percentile,
    rss_mib,
    run_wrk,
    wait_for_log_drain,
)
from overhead_processes import DIRECT, LITELLM, LOGGED, LiteLLMProxy, Targets, start_litellm


def _rounds(
    bench: Targets, proxy: LiteLLMProxy, connections: int, duration_s: float, rounds: int
) -> dict[str, list[dict[str, float]]]:
    urls = {DIRECT: bench.nginx.url, LOGGED: bench.logged.url, LITELLM: proxy.child.url}
    auths = {LITELLM: proxy.master_key}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in urls}
    threads = 1 if connections == 1 else 2
    for _, name, url in alternate(urls, rounds):
        runs[name].append(run_wrk(url, threads, connections, duration_s, auths.get(name, DEFAULT_AUTH)))
        if name == LOGGED:
            wait_for_log_drain(bench.logged, bench.logged_dir)
        run = runs[name][-1]
        print(
            f"  litellm phase c{connections} {name:8} {run['rps']:9.0f} req/s  p50 {run['p50_ms']:.3f} ms"
            f"  p99 {run['p99_ms']:.3f} ms  errors {run['errors']}",
            file=sys.stderr,
        )
    return runs


def compare_with_litellm(
    bench: Targets, python: Path, scratch: Path, duration_s: float, rounds: int, ttft_requests: int
) -> dict[str, Any]:
    """c1 latency, c64 throughput and streamed TTFT for direct / sidecar / LiteLLM, and the ratios between them."""
    proxy = start_litellm(python, scratch, bench.nginx.url, bench.fake.url)
    try:
        print("LiteLLM phase: warm-up", file=sys.stderr)
        _rounds(bench, proxy, 1, 2.0, 1)
        _rounds(bench, proxy, 64, 2.0, 1)
        rss_before = rss_mib(proxy.child.process.pid)
        c1 = _rounds(bench, proxy, 1, duration_s, rounds)
        c64 = _rounds(bench, proxy, 64, duration_s, rounds)
        rss_after = rss_mib(proxy.child.process.pid)
        print(f"LiteLLM phase: streaming TTFT ({ttft_requests} per target)", file=sys.stderr)
        urls = {DIRECT: bench.fake.url, LOGGED: bench.logged.url, LITELLM: proxy.child.url}
        ttft = asyncio.run(measure_ttft(urls, ttft_requests, {LITELLM: proxy.master_key}))
        wait_for_log_drain(bench.logged, bench.logged_dir)
    finally:
        proxy.child.stop()
    return summarise(c1, c64, ttft, {"before": rss_before, "after": rss_after}, duration_s, rounds)


def summarise(
    c1: dict[str, list[dict[str, float]]],
    c64: dict[str, list[dict[str, float]]],
    ttft: dict[str, list[float]],
    litellm_rss: dict[str, float],
    duration_s: float,
    rounds: int,
) -> dict[str, Any]:
    """Medians of the rounds, the added figures over direct, and sidecar ÷ LiteLLM ratios."""

    def median(runs: list[dict[str, float]], key: str) -> float:
        return statistics.median(run[key] for run in runs)

    figures = {
        name: {
            "c1_p50_ms": median(c1[name], "p50_ms"),
            "c1_p99_ms": median(c1[name], "p99_ms"),
            "c64_rps": median(c64[name], "rps"),
            "c64_p99_ms": median(c64[name], "p99_ms"),
            "ttft_p50_ms": percentile(ttft[name], 50),
            "ttft_p99_ms": percentile(ttft[name], 99),
            "errors": sum(run["errors"] for run in c1[name] + c64[name]),
        }
        for name in c1
    }
    direct = figures[DIRECT]
    for name in (LOGGED, LITELLM):
        figures[name]["c1_added_p50_ms"] = figures[name]["c1_p50_ms"] - direct["c1_p50_ms"]
        figures[name]["ttft_added_p50_ms"] = figures[name]["ttft_p50_ms"] - direct["ttft_p50_ms"]
    side, lite = figures[LOGGED], figures[LITELLM]
    ratios = {
        # Throughput: how many times more the sidecar serves; latency: how many times less it adds.
        "c64_rps_sidecar_over_litellm": side["c64_rps"] / lite["c64_rps"],
        "c1_added_p50_litellm_over_sidecar": lite["c1_added_p50_ms"] / side["c1_added_p50_ms"],
        "ttft_added_p50_litellm_over_sidecar": lite["ttft_added_p50_ms"] / side["ttft_added_p50_ms"],
    }
    return {
        "duration_s": duration_s,
        "rounds": rounds,
        "ttft_requests": len(ttft[DIRECT]),
        "figures": figures,
        "ratios": ratios,
        "litellm_rss_mib": litellm_rss,
        "runs": {"c1": c1, "c64": c64},
    }


def render_litellm(section: dict[str, Any]) -> str:
    """The side-by-side table and the ratios."""
    figures, ratios = section["figures"], section["ratios"]
    rows = [
        ("c1 p50 latency (ms)", "c1_p50_ms", "{:.3f}"),
        ("c1 added p50 (ms)", "c1_added_p50_ms", "{:+.3f}"),
        ("c1 p99 latency (ms)", "c1_p99_ms", "{:.2f}"),
        ("c64 throughput (req/s)", "c64_rps", "{:.0f}"),
        ("c64 p99 latency (ms)", "c64_p99_ms", "{:.1f}"),
        ("stream TTFT p50 (ms)", "ttft_p50_ms", "{:.2f}"),
        ("stream TTFT added p50 (ms)", "ttft_added_p50_ms", "{:+.2f}"),
        ("wrk errors", "errors", "{:d}"),
    ]
    header = f"{'LiteLLM proxy, same run':28}{'direct':>10}{'sidecar':>10}{'litellm':>10}"
    lines = [header, "-" * len(header)]
    for label, key, fmt in rows:
        cells = [
            fmt.format(figures[name][key]) if key in figures[name] else ""
            for name in (DIRECT, LOGGED, LITELLM)
        ]
        lines.append(f"{label:28}" + "".join(f"{cell:>10}" for cell in cells))
    rss = section["litellm_rss_mib"]
    lines.append(f"{'LiteLLM RSS before/after (MiB)':28}{'':>20}{rss['before']:>6.0f}/{rss['after']:.0f}")
    lines.append(
        f"ratios: sidecar c64 req/s ÷ LiteLLM {ratios['c64_rps_sidecar_over_litellm']:.1f}×; "
        f"c1 added p50 LiteLLM ÷ sidecar {ratios['c1_added_p50_litellm_over_sidecar']:.1f}×; "
        f"TTFT added p50 LiteLLM ÷ sidecar {ratios['ttft_added_p50_litellm_over_sidecar']:.1f}×"
    )
    return "\n".join(lines)
