"""What the access stage (virtual key, per-key models, rate limits, budgets) adds to each request.

    python benchmarks/access.py            # 3 alternating rounds of 5 s wrk runs at c1 and c64 (~2 min)
    python benchmarks/access.py --quick    # 1 round of 2 s runs

Starts nginx (a fixed chat.completion, near-zero cost) and three sidecars routing to it, traffic log off so
only the stage differs: `no-access`, `access-memory` (a key with a request limit, a token limit, a daily
budget, an allowed-models list; counters in the process) and `access-redis` (the same, counters in Redis:
one pipeline round trip per request). Then, alternating the order every round: c1 latency (added p50/p99
against direct nginx) and c64 throughput, and, in this process, the stage's own on_request + on_done time
per call without HTTP. Prints a table with the ratios to `no-access` side by side.
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
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from overhead_measures import alternate, run_wrk
from overhead_processes import CHAT_MODEL, PRICE, Child, redis_reachable, start_child, start_nginx, tollgate

REDIS_URL = "redis://127.0.0.1:6379/15"
NO_ACCESS, MEMORY, REDIS = "no-access", "access-memory", "access-redis"
LIMITS = {"requests_per_minute": 10**9, "tokens_per_minute": 10**9}


def start_sidecar(name: str, scratch: Path, upstream: str, access: dict[str, Any] | None, redis_url: str | None
                  ) -> tuple[Child, str]:
    """A sidecar with the traffic log off; with `access`, a key (returned) with limits and a daily budget."""
    from core.budgets import add_budget
    from core.database import open_database
    from core.keys import create_key

    data_dir = scratch / name / ".tollgate"
    config: dict[str, Any] = {
        "data_dir": str(data_dir),
        "models": {CHAT_MODEL: {"deployments": [{"base_url": upstream}], "price": PRICE}},
        "traffic": {"enabled": False},
        "embedded": {"enabled": "never"},
    }
    token = "sk-dummy"
    if access is not None:
        config["access"] = access
        engine = open_database(f"sqlite:///{data_dir / 'tollgate.db'}")
        created = create_key(engine, "bench", allowed_models=[CHAT_MODEL, "other-*"], **LIMITS)
        add_budget(engine, "key", created.key.id, "daily", 10**9)
        engine.dispose()
        token = created.token
    if redis_url:
        config["redis_url"] = redis_url
    (scratch / name).mkdir(parents=True, exist_ok=True)
    path = scratch / name / "tollgate.yaml"
    path.write_text(json.dumps(config))
    ready = re.compile(r"listening on (http://\S+/v1)")
    command = [*tollgate(), "serve", "--config", str(path), "--port", "0", "--log-level", "warning"]
    return start_child(name, command, ready, log=scratch / name / "sidecar.log"), token


def stage_micro(calls: int) -> dict[str, float]:
    """Microseconds per request for the stage's on_request + on_done alone (in-process counters)."""
    from core.budgets import BudgetBook, Limit
    from core.keys import hash_token
    from core.settings import Settings
    from core.tables.common import utc_now
    from sidecar.access.counters import MemoryCounters
    from sidecar.access.stage import AccessStage
    from sidecar.access.state import AccessSnapshot, KeyInfo
    from sidecar.pipeline import Exchange
    from sidecar.traffic.record import RawTraffic

    settings = Settings(models={CHAT_MODEL: {"deployments": [{"base_url": "http://127.0.0.1:9/v1"}], "price": PRICE}},
                        access={"require_keys": True})
    key = KeyInfo("key_bench", "bench", None, (CHAT_MODEL, "other-*"), 10**9, 10**9, frozenset({CHAT_MODEL}))
    token = "tg-" + "x" * 43
    book = BudgetBook([Limit("key", "key_bench", "daily", 1e9), Limit("user", "*", "monthly", 1e9)])
    snapshot = AccessSnapshot({hash_token(token): key}, book, {}, utc_now())
    stage = AccessStage(settings, None, MemoryCounters(), snapshot)
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    payload = {"model": CHAT_MODEL, "messages": [{"role": "user", "content": "hi"}]}

    async def run() -> float:
        t0 = time.perf_counter()
        for _ in range(calls):
            record = RawTraffic("r", 0.0, "chat.completions", 200, 1.0, requested_model=CHAT_MODEL, user="ana")
            exchange = Exchange("chat.completions", payload, b"{}", record, headers, False, usage=[12, 9, None])
            await stage.on_request(exchange)
            record.served_model = CHAT_MODEL
            stage.on_done(exchange)
        return (time.perf_counter() - t0) / calls * 1e6

    samples = [asyncio.run(run()) for _ in range(5)]
    return {"us_per_request": statistics.median(samples)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round of 2 s runs")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    args = parser.parse_args()
    rounds, duration = (1, 2.0) if args.quick else (args.rounds, args.duration)
    micro = stage_micro(20_000)
    with tempfile.TemporaryDirectory(prefix="tollgate-access-bench-") as folder:
        scratch = Path(folder)
        children: list[Child] = []
        try:
            nginx = start_nginx(scratch / "nginx")
            children.append(nginx)
            targets: dict[str, str] = {"direct": nginx.url}
            tokens: dict[str, str] = {"direct": "sk-dummy"}
            access = {"require_keys": True, "refresh_s": 5.0}
            plan: list[tuple[str, dict[str, Any] | None, str | None]] = [(NO_ACCESS, None, None), (MEMORY, access, None)]
            if redis_reachable(REDIS_URL):
                plan.append((REDIS, access, REDIS_URL))
            else:
                print(f"note: Redis at {REDIS_URL} is not reachable; {REDIS} is skipped")
            for name, settings, redis_url in plan:
                child, token = start_sidecar(name, scratch, nginx.url, settings, redis_url)
                children.append(child)
                targets[name], tokens[name] = child.url, token
            results: dict[str, dict[str, list[float]]] = {name: {} for name in targets}
            for connections in (1, 64):
                for name, url in targets.items():  # warm-up
                    run_wrk(url, 1, connections, 1, tokens[name])
                for _, name, url in alternate(targets, rounds):
                    figures = run_wrk(url, 1 if connections == 1 else 2, connections, duration, tokens[name])
                    if figures["errors"]:
                        raise RuntimeError(f"{name}: {figures['errors']:g} errors at c{connections}")
                    for metric in ("p50_ms", "p99_ms", "rps"):
                        results[name].setdefault(f"c{connections}_{metric}", []).append(figures[metric])
        finally:
            for child in reversed(children):
                child.stop()
    report(results, micro, rounds, duration)
    return 0


def report(results: dict[str, dict[str, list[float]]], micro: dict[str, float], rounds: int, duration: float) -> None:
    median = {name: {metric: statistics.median(values) for metric, values in figures.items()}
              for name, figures in results.items()}
    direct = median["direct"]
    base = median[NO_ACCESS]
    print(f"\naccess stage overhead: nginx upstream, traffic log off, {rounds} round(s) of {duration:g} s wrk runs, "
          "medians of rounds")
    print(f"{'target':<14} {'c1 p50 ms':>10} {'added':>8} {'c1 p99 ms':>10} {'added':>8} "
          f"{'c64 req/s':>10} {'vs no-access':>13}")
    for name, figures in median.items():
        added50 = figures["c1_p50_ms"] - direct["c1_p50_ms"]
        added99 = figures["c1_p99_ms"] - direct["c1_p99_ms"]
        ratio = figures["c64_rps"] / base["c64_rps"]
        print(f"{name:<14} {figures['c1_p50_ms']:>10.3f} {added50:>+8.3f} {figures['c1_p99_ms']:>10.3f} "
              f"{added99:>+8.3f} {figures['c64_rps']:>10.0f} {ratio:>12.2f}x")
    for name in (MEMORY, REDIS):
        if name in median:
            extra = median[name]["c1_p50_ms"] - base["c1_p50_ms"]
            print(f"{name}: +{extra * 1000:.0f} us c1 p50 over no-access; "
                  f"c64 throughput {median[name]['c64_rps'] / base['c64_rps']:.2f}x of no-access")
    print(f"stage alone, in process (on_request + on_done, memory counters): {micro['us_per_request']:.1f} us/request")


if __name__ == "__main__":
    sys.exit(main())
