"""Sidecar overhead: the same load sent straight to an upstream and through the sidecar, side by side.

One run measures, alternating targets round by round so machine noise hits every side alike:
  1. c1 latency (wrk -t1 -c1 --latency) against nginx returning a fixed chat.completion, and the added p50/p99;
  2. c64 throughput and p99 (wrk -t2 -c64; the load generator shares the machine's CPUs);
  3. streaming time to first content chunk against the fake upstream (sequential Python client);
  4. the sidecar's RSS before and after the c64 load;
  5. the traffic-log counters from /readyz and the rows in its database: logging was on and nothing was lost.
The sidecar runs with the traffic log on (the headline figures) and, beside it, with the log off, which
separates the cost of logging from the cost of proxying. With `--litellm-python`, a further phase runs
LiteLLM's proxy on the same upstreams beside direct and the logging sidecar and reports the ratios.

    python benchmarks/overhead.py [--duration 10] [--rounds 3] [--ttft-requests 200] [--quick]
        [--litellm-python /tmp/litellm-proxy-venv/bin/python]

Prints a table and writes benchmarks/results/overhead-<UTC date>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from overhead_litellm import compare_with_litellm, render_litellm
from overhead_measures import (
    alternate,
    measure_ttft,
    percentile,
    readyz,
    rss_mib,
    run_wrk,
    traffic_rows,
    wait_for_log_drain,
    warnings_in,
)
from overhead_processes import DIRECT, HERE, LOGGED, UNLOGGED, Targets, start_targets, tollgate
from overhead_profile import profile_under_load

GOALS = {
    "c1_added_p50_ms": 0.5,
    "c1_added_p99_ms": 2.0,
    "c64_rps": 3000.0,
    "ttft_added_p50_ms": 2.0,
    "rss_mib": 100.0,
}


# -- the run -----------------------------------------------------------------------------------------


def run_wrk_rounds(
    bench: Targets,
    threads: int,
    connections: int,
    duration_s: float,
    rounds: int,
    rss: dict[str, dict[str, float]] | None,
) -> dict[str, list[dict[str, float]]]:
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in bench.chat_urls()}
    sidecars = bench.sidecars()
    for _, name, url in alternate(bench.chat_urls(), rounds):
        if rss is not None and name in sidecars:
            rss.setdefault(name, {}).setdefault("before", rss_mib(sidecars[name].process.pid))
        runs[name].append(run_wrk(url, threads, connections, duration_s))
        if rss is not None and name in sidecars:
            rss[name]["after"] = rss_mib(sidecars[name].process.pid)
        if name == LOGGED:
            wait_for_log_drain(bench.logged, bench.logged_dir)
        print(f"  c{connections} {name:14} {_brief(runs[name][-1])}", file=sys.stderr)
    return runs


def _brief(run: dict[str, float]) -> str:
    return f"{run['rps']:9.0f} req/s  p50 {run['p50_ms']:.3f} ms  p99 {run['p99_ms']:.3f} ms  errors {run['errors']}"


def median_of(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def measure(bench: Targets, args: argparse.Namespace) -> dict[str, Any]:
    """All five measurements; returns the results document (without the run facts)."""
    warm = 1.0 if args.quick else 3.0
    print("warm-up", file=sys.stderr)
    run_wrk_rounds(bench, 1, 1, warm, 1, None)
    run_wrk_rounds(bench, 2, 64, warm, 1, None)
    print("c1 latency", file=sys.stderr)
    c1 = run_wrk_rounds(bench, 1, 1, args.duration, args.rounds, None)
    rss: dict[str, dict[str, float]] = {}
    print("c64 throughput", file=sys.stderr)
    c64 = run_wrk_rounds(bench, 2, 64, args.duration, args.rounds, rss)
    print(f"streaming TTFT ({args.ttft_requests} sequential requests per target)", file=sys.stderr)
    ttft = asyncio.run(measure_ttft(bench.stream_urls(), args.ttft_requests))
    wait_for_log_drain(bench.logged, bench.logged_dir)
    return {
        "c1": {
            name: {"p50_ms": median_of(runs, "p50_ms"), "p99_ms": median_of(runs, "p99_ms"), "runs": runs}
            for name, runs in c1.items()
        },
        "c64": {
            name: {"rps": median_of(runs, "rps"), "p99_ms": median_of(runs, "p99_ms"), "runs": runs}
            for name, runs in c64.items()
        },
        "ttft": {
            name: {"p50_ms": percentile(v, 50), "p99_ms": percentile(v, 99), "n": len(v)}
            for name, v in ttft.items()
        },
        "rss_mib": {
            **rss,
            "final": {name: rss_mib(child.process.pid) for name, child in bench.sidecars().items()},
        },
        "traffic": {
            "readyz": readyz(bench.logged.url),
            "rows_in_database": traffic_rows(bench.logged_dir),
            "warnings": warnings_in(bench.logged_dir.parent / "sidecar.log"),
        },
    }


# -- report ------------------------------------------------------------------------------------------


def added(results: dict[str, Any], sidecar: str) -> dict[str, float]:
    c1, ttft = results["c1"], results["ttft"]
    return {
        "c1_added_p50_ms": c1[sidecar]["p50_ms"] - c1[DIRECT]["p50_ms"],
        "c1_added_p99_ms": c1[sidecar]["p99_ms"] - c1[DIRECT]["p99_ms"],
        "c64_rps": results["c64"][sidecar]["rps"],
        "ttft_added_p50_ms": ttft[sidecar]["p50_ms"] - ttft[DIRECT]["p50_ms"],
        "ttft_added_p99_ms": ttft[sidecar]["p99_ms"] - ttft[DIRECT]["p99_ms"],
        "rss_mib": max(results["rss_mib"][sidecar].values()),
    }


def verdicts(figures: dict[str, float]) -> dict[str, bool]:
    """Goal met? Throughput is a floor, everything else a ceiling."""
    return {
        key: (figures[key] >= goal if key == "c64_rps" else figures[key] <= goal)
        for key, goal in GOALS.items()
    }


def render_table(results: dict[str, Any]) -> str:
    c1, c64, ttft, rss = results["c1"], results["c64"], results["ttft"], results["rss_mib"]
    on, off = results["added"][LOGGED], results["added"][UNLOGGED]
    met = results["goals_met"]
    rows = [
        ("c1 p50 latency (ms)", c1, "p50_ms", "c1_added_p50_ms", "{:.3f}"),
        ("c1 p99 latency (ms)", c1, "p99_ms", "c1_added_p99_ms", "{:.3f}"),
        ("c64 throughput (req/s)", c64, "rps", "c64_rps", "{:.0f}"),
        ("c64 p99 latency (ms)", c64, "p99_ms", None, "{:.2f}"),
        ("stream TTFT p50 (ms)", ttft, "p50_ms", "ttft_added_p50_ms", "{:.3f}"),
        ("stream TTFT p99 (ms)", ttft, "p99_ms", "ttft_added_p99_ms", "{:.3f}"),
    ]
    header = (
        f"{'':24}{'direct':>10}{'sidecar':>10}{'added':>10}{'no-log':>10}{'added':>10}   goal (logging on)"
    )
    lines = [header, "-" * len(header)]
    for label, table, key, added_key, fmt in rows:
        cells = [fmt.format(table[name][key]) for name in (DIRECT, LOGGED)]
        cells.append("" if added_key is None or added_key == "c64_rps" else f"{on[added_key]:+.3f}")
        cells.append(fmt.format(table[UNLOGGED][key]))
        cells.append("" if added_key is None or added_key == "c64_rps" else f"{off[added_key]:+.3f}")
        goal = _goal_text(added_key, met)
        lines.append(f"{label:24}" + "".join(f"{cell:>10}" for cell in cells) + f"   {goal}")
    for moment in ("before", "after"):
        lines.append(
            f"{'RSS ' + moment + ' c64 (MiB)':24}{'':>10}{rss[LOGGED][moment]:>10.1f}{'':>10}{rss[UNLOGGED][moment]:>10.1f}"
            + ("" if moment == "before" else f"{'':>10}   {_goal_text('rss_mib', met)}")
        )
    return "\n".join(lines)


def _goal_text(key: str | None, met: dict[str, bool]) -> str:
    if key is None or key not in GOALS:
        return ""
    sign = ">=" if key == "c64_rps" else "<="
    return f"{sign} {GOALS[key]:g}  {'met' if met[key] else 'MISSED'}"


def render_traffic(results: dict[str, Any]) -> str:
    traffic = results["traffic"]
    ready = traffic["readyz"]
    counters = ready.get("traffic", ready.get("error", "no traffic counters in /readyz"))
    text = f"traffic log (logging-on sidecar): /readyz {counters}; rows in database {traffic['rows_in_database']}"
    return "\n".join([text, *(f"  sidecar log: {line}" for line in traffic["warnings"])])


def run_facts(args: argparse.Namespace, sidecar_command: list[str]) -> dict[str, Any]:
    def output(command: list[str]) -> str:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        return (
            (done.stdout + done.stderr).strip().splitlines()[0] if (done.stdout + done.stderr).strip() else ""
        )

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "",
    )
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(shlex.quote(part) for part in sys.argv),
        "sidecar_command": " ".join(sidecar_command),
        "duration_s": args.duration,
        "rounds": args.rounds,
        "ttft_requests": args.ttft_requests,
        "upstream_ttft_ms": args.upstream_ttft_ms,
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "load_average_at_start": os.getloadavg(),
        "python": platform.python_version(),
        "nginx": output(["/usr/sbin/nginx", "-v"]),
        "wrk": output(["wrk", "-v"]),
        "commit": output(["git", "-C", str(HERE.parent), "rev-parse", "--short", "HEAD"]),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--duration", type=float, default=10.0, help="seconds per wrk run (default 10)")
    add("--rounds", type=int, default=3, help="alternating rounds per load level (default 3)")
    add("--ttft-requests", type=int, default=200, help="streamed requests per target (default 200)")
    add("--upstream-ttft-ms", type=float, default=20.0, help="the fake upstream's TTFT (default 20)")
    add("--quick", action="store_true", help="smoke run: 2 s per wrk run, 1 round, 50 streams")
    add("--sidecar-command", help="command serving the sidecar (default: python -m core.cli serve)")
    add("--profile", type=float, default=0, metavar="SECONDS", help="then py-spy each sidecar under c64")
    add("--output", type=Path, help="JSON path (default benchmarks/results/overhead-<date>.json)")
    add("--litellm-python", type=Path, help="python of a venv with litellm[proxy]: adds the LiteLLM phase")
    add("--litellm-duration", type=float, default=5.0, help="seconds per wrk run, LiteLLM phase (default 5)")
    add("--litellm-rounds", type=int, default=2, help="alternating rounds, LiteLLM phase (default 2)")
    add(
        "--litellm-ttft-requests", type=int, default=50, help="streams per target, LiteLLM phase (default 50)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.rounds, args.ttft_requests = 2.0, 1, 50
    return args


def usable_litellm(python: Path | None) -> Path | None:
    """The LiteLLM venv's python, or None (with a note) when the phase cannot run."""
    if python is None:
        print(
            "note: LiteLLM phase skipped (pass --litellm-python <venv>/bin/python to run it)", file=sys.stderr
        )
        return None
    if not python.exists():
        print(f"note: LiteLLM phase skipped: {python} not found", file=sys.stderr)
        return None
    return python


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sidecar_command = shlex.split(args.sidecar_command) if args.sidecar_command else [*tollgate(), "serve"]
    facts = run_facts(args, sidecar_command)
    litellm_python = usable_litellm(args.litellm_python)
    output = args.output or HERE / "results" / f"overhead-{facts['date'][:10]}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tollgate-overhead-") as scratch:
        bench = start_targets(Path(scratch), sidecar_command, args.upstream_ttft_ms)
        try:
            results = measure(bench, args)
            if args.profile:
                results["profiles"] = profile_under_load(bench, args.profile, output.parent, output.stem)
            if litellm_python is not None:
                results["litellm"] = compare_with_litellm(
                    bench, litellm_python, Path(scratch), args.litellm_duration,
                    args.litellm_rounds, args.litellm_ttft_requests,
                )  # fmt: skip
        finally:
            bench.stop()
    results["added"] = {name: added(results, name) for name in (LOGGED, UNLOGGED)}
    results["goals"] = GOALS
    results["goals_met"] = verdicts(results["added"][LOGGED])
    results = {"run": facts, **results}
    output.write_text(json.dumps(results, indent=2) + "\n")
    print(render_table(results))
    print(render_traffic(results))
    if "litellm" in results:
        print(render_litellm(results["litellm"]))
    print(
        f"machine: {facts['cpus']} vCPU ({facts['cpu_model']}), load generator on the same machine; results in {output}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
