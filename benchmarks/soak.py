"""Memory soak: the sidecar with its traffic log on under steady load for minutes; does its memory stay flat?

The sidecar runs its default configuration (traffic log on, writer in a child process) in front of nginx
returning a fixed chat.completion, while `wrk -t2 -c16` keeps it busy. Every few seconds the benchmark
samples the sidecar's RSS, its children's RSS (the traffic writer) and the requests served so far (the
traffic log's `submitted` counter from /readyz), then reports start, end and maximum RSS and the slope of
RSS against requests in MiB per million requests, fitted after a warm-up share of the requests.

    python benchmarks/soak.py [--minutes 5] [--connections 16] [--interval 5]

Prints a table and writes benchmarks/results/soak-<UTC timestamp>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from overhead_measures import (
    parse_wrk,
    readyz,
    rss_mib,
    traffic_rows,
    wait_for_log_drain,
    warnings_in,
    wrk_command,
)
from overhead_processes import HERE, start_nginx, start_sidecar, tollgate

from core.children import popen

RSS_GOAL_MIB = 100.0


def children_of(pid: int) -> list[int]:
    """Direct children of `pid`, from every thread's /proc children list."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:  # the thread ended while we looked
            continue
    return sorted(set(found))


def sample(sidecar_pid: int, sidecar_url: str, started: float) -> dict[str, Any]:
    """One point: elapsed seconds, RSS of the sidecar and each child, and the traffic log counters."""
    children = {}
    for child in children_of(sidecar_pid):
        try:
            children[str(child)] = rss_mib(child)
        except (OSError, RuntimeError):  # gone between listing and reading
            continue
    traffic = readyz(sidecar_url).get("traffic", {})
    return {
        "elapsed_s": round(time.monotonic() - started, 1),
        "sidecar_rss_mib": rss_mib(sidecar_pid),
        "children_rss_mib": children,
        "writer_rss_mib": sum(children.values()),
        "requests": int(traffic.get("submitted", 0)) if isinstance(traffic, dict) else 0,
        "written": int(traffic.get("written", 0)) if isinstance(traffic, dict) else 0,
        "queue_depth": int(traffic.get("queue_depth", 0)) if isinstance(traffic, dict) else 0,
    }


def soak(
    sidecar_pid: int, sidecar_url: str, args: argparse.Namespace
) -> tuple[list[dict[str, Any]], dict[str, float], float]:
    """Run wrk for the soak's length, sampling as it goes; returns the samples, wrk's summary and the start."""
    command, env = wrk_command(sidecar_url, 2, args.connections, args.minutes * 60)
    started = time.monotonic()
    samples = [sample(sidecar_pid, sidecar_url, started)]
    load = popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    while load.poll() is None:
        time.sleep(args.interval)
        samples.append(sample(sidecar_pid, sidecar_url, started))
        point = samples[-1]
        print(
            f"  {point['elapsed_s']:6.0f} s  {point['requests']:>10,} requests  sidecar {point['sidecar_rss_mib']:6.1f} MiB"
            f"  writer {point['writer_rss_mib']:6.1f} MiB  queue {point['queue_depth']}",
            file=sys.stderr,
        )
    stdout, _ = load.communicate()
    return samples, parse_wrk(stdout), started


def slope_per_million(samples: list[dict[str, Any]], key: str, warmup_share: float) -> float | None:
    """Least-squares MiB per million requests, over the samples after the first `warmup_share` of requests."""
    total = samples[-1]["requests"]
    points = [point for point in samples if point["requests"] >= warmup_share * total]
    if len(points) < 3 or points[-1]["requests"] == points[0]["requests"]:
        return None
    fit = statistics.linear_regression([p["requests"] / 1e6 for p in points], [p[key] for p in points])
    return fit.slope


def summarise(samples: list[dict[str, Any]], warmup_share: float) -> dict[str, Any]:
    """Start (before load), after warm-up, end and max RSS, and the slope, for the sidecar and its writer."""
    total = samples[-1]["requests"]
    warm = next(point for point in samples if point["requests"] >= warmup_share * total)
    return {
        key: {
            "start": samples[0][key],
            "after_warmup": warm[key],
            "end": samples[-1][key],
            "max": max(point[key] for point in samples),
            "slope_mib_per_million": slope_per_million(samples, key, warmup_share),
        }
        for key in ("sidecar_rss_mib", "writer_rss_mib")
    }


def render(results: dict[str, Any]) -> str:
    """The summary table, then the samples every 30 s."""
    summary, wrk = results["summary"], results["wrk"]
    lines = [
        f"{'RSS (MiB)':22}{'start':>9}{'warm':>9}{'end':>9}{'max':>9}{'MiB/1M req':>12}",
        "-" * 70,
    ]
    for key, label in (("sidecar_rss_mib", "sidecar"), ("writer_rss_mib", "writer child")):
        row = summary[key]
        slope = "n/a" if row["slope_mib_per_million"] is None else f"{row['slope_mib_per_million']:+.2f}"
        cells = [f"{row[name]:.1f}" for name in ("start", "after_warmup", "end", "max")]
        lines.append(f"{label:22}" + "".join(f"{cell:>9}" for cell in cells) + f"{slope:>12}")
    met = summary["sidecar_rss_mib"]["max"] <= RSS_GOAL_MIB
    lines.append(f"sidecar max RSS goal <= {RSS_GOAL_MIB:g} MiB: {'met' if met else 'MISSED'}")
    lines.append(
        f"requests served {results['requests']:,} ({wrk['rps']:,.0f} req/s, p99 {wrk['p99_ms']:.1f} ms, "
        f"wrk errors {wrk['errors']}); traffic rows {results['traffic_rows']:,}; /readyz {results['readyz_after']}"
    )
    step = max(1, round(30 / results["interval_s"]))
    lines.append(f"{'elapsed s':>10}{'requests':>12}{'sidecar':>10}{'writer':>10}")
    shown = results["samples"][::step]
    if shown[-1] is not results["samples"][-1]:
        shown.append(results["samples"][-1])
    for point in shown:
        lines.append(
            f"{point['elapsed_s']:>10.0f}{point['requests']:>12,}"
            f"{point['sidecar_rss_mib']:>10.1f}{point['writer_rss_mib']:>10.1f}"
            + ("  (load over, log drained)" if point.get("after_drain") else "")
        )
    return "\n".join([*lines, *(f"  sidecar log: {line}" for line in results["warnings"])])


def run_facts(args: argparse.Namespace) -> dict[str, Any]:
    commit = subprocess.run(
        ["git", "-C", str(HERE.parent), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(shlex.quote(part) for part in sys.argv),
        "minutes": args.minutes,
        "connections": args.connections,
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "python": platform.python_version(),
        "commit": commit.stdout.strip(),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--minutes", type=float, default=5.0, help="length of the load (default 5)")
    add("--connections", type=int, default=16, help="wrk connections (default 16)")
    add("--interval", type=float, default=5.0, help="seconds between samples (default 5)")
    add(
        "--warmup-share",
        type=float,
        default=0.1,
        help="share of requests left out of the slope (default 0.1)",
    )
    add("--sidecar-command", help="command serving the sidecar (default: python -m core.cli serve)")
    add("--output", type=Path, help="JSON path (default benchmarks/results/soak-<timestamp>.json)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    facts = run_facts(args)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    output = args.output or HERE / "results" / f"soak-{stamp}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    command = shlex.split(args.sidecar_command) if args.sidecar_command else [*tollgate(), "serve"]
    with tempfile.TemporaryDirectory(prefix="tollgate-soak-") as scratch:
        nginx = start_nginx(Path(scratch) / "nginx")
        sidecar = None
        try:
            sidecar, data_dir = start_sidecar(command, Path(scratch), nginx.url, nginx.url, logging_on=True)
            samples, wrk, started = soak(sidecar.process.pid, sidecar.url, args)
            wait_for_log_drain(sidecar, data_dir)
            samples.append({**sample(sidecar.process.pid, sidecar.url, started), "after_drain": True})
            results = {
                "run": {**facts, "load_average_at_end": os.getloadavg()},
                "interval_s": args.interval,
                "requests": samples[-1]["requests"],
                "wrk": wrk,
                "traffic_rows": traffic_rows(data_dir) or 0,
                "readyz_after": readyz(sidecar.url).get("traffic"),
                "warnings": warnings_in(data_dir.parent / "sidecar.log"),
                "summary": summarise(samples, args.warmup_share),
                "samples": samples,
            }
        finally:
            if sidecar is not None:
                sidecar.stop()
            nginx.stop()
    output.write_text(json.dumps(results, indent=2) + "\n")
    print(render(results))
    print(f"results in {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
