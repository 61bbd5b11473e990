"""Guard overhead: the sidecar with the default guards on beside the same sidecar with no guards, in one run.

    python benchmarks/guards_overhead.py            # 3 rounds of 8 s wrk runs, 300 unique requests per target
    python benchmarks/guards_overhead.py --quick    # smoke run

It starts nginx (the fixed-answer upstream of `overhead.py`), the fake upstream (streams), and two sidecars with
the traffic log on: `guards-off` (no guard settings: no guard stage at all) and `guards-default`
(`guards: {defaults: true}`: size limit, injection patterns + MiniLM similarity, PII noted in requests and
redacted from answers, streams included). Then, alternating the order round by round:
1. c1 latency with wrk (one fixed body, so the injection guard's embedding comes from its cache);
2. c1 latency with a new user message on every request, sequential aiohttp requests: once with an ordinary
   question (the injection guard's word prefilter skips the embedding), once with a message using words
   attacks use ("rules", "ignore", "earlier"), so the MiniLM embedding is computed for every request;
3. c64 throughput with wrk (fixed body);
4. streaming time to first content (the answer passes the PII look-back filter).
Figures are medians over rounds of each target's p50/p99; "added" is the guarded sidecar minus the unguarded
one (and each minus direct). Results also go to `results/guards-overhead-<UTC date>.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from overhead_measures import alternate, measure_ttft, percentile, rss_mib, run_wrk, wait_for_log_drain
from overhead_processes import (
    CHAT_MODEL,
    HERE,
    PRICE,
    STREAM_MODEL,
    Child,
    start_child,
    start_fake_upstream,
    start_nginx,
    tollgate,
)

DIRECT, OFF, ON = "direct", "guards-off", "guards-default"


def start_guarded_sidecar(scratch: Path, name: str, chat_url: str, stream_url: str, guards: dict[str, Any]
                          ) -> tuple[Child, Path]:
    data_dir = scratch / name
    data_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "data_dir": str(data_dir / ".tollgate"),
        "models": {
            CHAT_MODEL: {"deployments": [{"base_url": chat_url}], "price": PRICE},
            STREAM_MODEL: {"deployments": [{"base_url": stream_url, "model": "fake-model"}], "price": PRICE},
        },
        "guards": guards,
    }
    path = data_dir / "tollgate.yaml"
    path.write_text(json.dumps(config))
    command = [*tollgate(), "serve", "--config", str(path), "--port", "0"]
    child = start_child(name, command, re.compile(r"listening on (http://\S+/v1)"), log=data_dir / "sidecar.log",
                        timeout_s=120)
    return child, data_dir / ".tollgate"


PLAIN = "Request {}: could you tell me how to change the delivery address of my order?"
WORDY = "Request {}: what are the rules for changing the delivery address? Ignore the earlier order."


async def unique_requests(url: str, count: int, offset: int, template: str) -> list[float]:
    """Sequential chat requests, each with a user message never sent before; latencies in ms."""
    samples = []
    async with aiohttp.ClientSession() as session:
        for index in range(count):
            text = template.format(offset + index)
            body = orjson.dumps({"model": CHAT_MODEL, "messages": [{"role": "user", "content": text}]})
            t0 = time.perf_counter()
            async with session.post(url + "/chat/completions", data=body,
                                    headers={"content-type": "application/json"}) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"{url} answered {response.status}")
            samples.append((time.perf_counter() - t0) * 1000)
    return samples


def median(values: list[float]) -> float:
    return statistics.median(values)


def measure(targets: dict[str, str], stream_targets: dict[str, str], sidecars: dict[str, tuple[Child, Path]],
            args: argparse.Namespace) -> dict[str, Any]:
    wrk_c1: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
    wrk_c64: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
    unique: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
    wordy: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
    for name, url in targets.items():  # warm-up
        run_wrk(url, 1, 1, 1)
    offset = 0
    for round_index, name, url in alternate(targets, args.rounds):
        print(f"round {round_index + 1}: {name}", file=sys.stderr)
        wrk_c1[name].append(run_wrk(url, 1, 1, args.duration))
        for template, into in ((PLAIN, unique), (WORDY, wordy)):
            samples = asyncio.run(unique_requests(url, args.unique_requests, offset, template))
            into[name].append({"p50_ms": percentile(samples, 50), "p99_ms": percentile(samples, 99)})
        offset += args.unique_requests
        wrk_c64[name].append(run_wrk(url, 2, 64, args.duration))
        if name in sidecars:
            wait_for_log_drain(*sidecars[name])
    ttft = asyncio.run(measure_ttft(stream_targets, args.ttft_requests))
    return {
        "c1_fixed": {n: {k: median([r[k] for r in runs]) for k in ("p50_ms", "p99_ms")} for n, runs in wrk_c1.items()},
        "c1_unique": {n: {k: median([r[k] for r in runs]) for k in ("p50_ms", "p99_ms")} for n, runs in unique.items()},
        "c1_unique_attack_words": {n: {k: median([r[k] for r in runs]) for k in ("p50_ms", "p99_ms")}
                                   for n, runs in wordy.items()},
        "c64": {n: {k: median([r[k] for r in runs]) for k in ("rps", "p99_ms", "errors")} for n, runs in wrk_c64.items()},
        "ttft": {n: {"p50_ms": percentile(v, 50), "p99_ms": percentile(v, 99)} for n, v in ttft.items()},
        "rss_mib": {n: rss_mib(child.process.pid) for n, (child, _) in sidecars.items()},
    }


def report(figures: dict[str, Any]) -> None:
    def added(section: str, key: str, name: str, base: str = DIRECT) -> float:
        return figures[section][name][key] - figures[section][base][key]

    print("\n| measure | direct | guards off | guards default | added by guards |")
    print("|---|---|---|---|---|")
    sections = (("c1_fixed", "c1 fixed body"), ("c1_unique", "c1 unique messages"),
                ("c1_unique_attack_words", "c1 unique, attack words"), ("ttft", "stream TTFT"))
    for section, label in sections:
        for key in ("p50_ms", "p99_ms"):
            row = figures[section]
            print(f"| {label} {key[:3]} ms | {row[DIRECT][key]:.2f} | {row[OFF][key]:.2f} (+{added(section, key, OFF):.2f}) | "
                  f"{row[ON][key]:.2f} (+{added(section, key, ON):.2f}) | {added(section, key, ON, OFF):+.2f} |")
    c64 = figures["c64"]
    print(f"| c64 req/s | {c64[DIRECT]['rps']:.0f} | {c64[OFF]['rps']:.0f} | {c64[ON]['rps']:.0f} | "
          f"{100 * (c64[ON]['rps'] / c64[OFF]['rps'] - 1):+.1f}% |")
    print(f"| RSS MiB after load | | {figures['rss_mib'][OFF]:.0f} | {figures['rss_mib'][ON]:.0f} | "
          f"{figures['rss_mib'][ON] - figures['rss_mib'][OFF]:+.0f} |")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--unique-requests", type=int, default=300, help="unique-message requests per round")
    parser.add_argument("--ttft-requests", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="2 s runs, 1 round, 50 unique requests, 30 streams")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.rounds, args.unique_requests, args.ttft_requests = 2.0, 1, 50, 30
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started: list[Child] = []
    with tempfile.TemporaryDirectory(prefix="tollgate-guards-bench-") as folder:
        scratch = Path(folder)
        try:
            nginx = start_nginx(scratch / "nginx")
            started.append(nginx)
            fake = start_fake_upstream(20)
            started.append(fake)
            off = start_guarded_sidecar(scratch, OFF, nginx.url, fake.url, {})
            started.append(off[0])
            on = start_guarded_sidecar(scratch, ON, nginx.url, fake.url, {"defaults": True})
            started.append(on[0])
            targets = {DIRECT: nginx.url, OFF: off[0].url, ON: on[0].url}
            stream_targets = {DIRECT: fake.url, OFF: off[0].url, ON: on[0].url}
            figures = measure(targets, stream_targets, {OFF: off, ON: on}, args)
        finally:
            for child in reversed(started):
                child.stop()
    report(figures)
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    out = results / f"guards-overhead-{datetime.now(UTC).strftime('%Y-%m-%d')}.json"
    facts = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "args": vars(args),
             "load_average_at_end": list(__import__("os").getloadavg())}
    out.write_text(json.dumps({"facts": facts, "figures": figures}, indent=2))
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
