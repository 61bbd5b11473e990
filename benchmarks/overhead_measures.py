"""What the overhead benchmark measures: wrk runs, streamed time to first content, RSS, the traffic log's state."""

from __future__ import annotations

import json
import sqlite3
import statistics
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from overhead_processes import CHAT_MODEL, HERE, STREAM_MODEL, Child, child_env

WRK_SCRIPT = HERE / "wrk" / "chat.lua"
STREAM_BODY = orjson.dumps(
    {"model": STREAM_MODEL, "stream": True, "messages": [{"role": "user", "content": "Hello, how are you?"}]}
)
DEFAULT_AUTH = "sk-dummy"


def wrk_command(
    base_url: str, threads: int, connections: int, duration_s: float, auth: str = DEFAULT_AUTH
) -> tuple[list[str], dict[str, str]]:
    """The wrk command line and environment for the chat script (bearer token `auth`)."""
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration_s:g}s",
        "--latency",
        "-s",
        str(WRK_SCRIPT),
    ]
    return [*command, base_url + "/chat/completions"], child_env(MODEL=CHAT_MODEL, AUTH=auth)


def parse_wrk(stdout: str) -> dict[str, float]:
    """The chat script's RESULT line; latencies in ms, throughput in requests/s."""
    line = next(line for line in stdout.splitlines() if line.startswith("RESULT "))
    raw = json.loads(line[len("RESULT ") :])
    errors = raw["err_connect"] + raw["err_read"] + raw["err_status"] + raw["err_timeout"]
    return {
        "rps": raw["requests"] / (raw["duration_us"] / 1e6),
        "p50_ms": raw["lat_p50_us"] / 1000,
        "p90_ms": raw["lat_p90_us"] / 1000,
        "p99_ms": raw["lat_p99_us"] / 1000,
        "requests": raw["requests"],
        "errors": errors,
    }


def run_wrk(
    base_url: str, threads: int, connections: int, duration_s: float, auth: str = DEFAULT_AUTH
) -> dict[str, float]:
    """One wrk run with the chat script (bearer token `auth`); latencies in ms, throughput in requests/s."""
    command, env = wrk_command(base_url, threads, connections, duration_s, auth)
    return parse_wrk(subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout)


async def first_content_ms(session: aiohttp.ClientSession, url: str, auth: str = DEFAULT_AUTH) -> float:
    """Milliseconds from sending a streamed chat request to the first event carrying content; reads to the end."""
    t0 = time.perf_counter()
    elapsed: float | None = None
    async with session.post(
        url, data=STREAM_BODY, headers={"content-type": "application/json", "authorization": f"Bearer {auth}"}
    ) as response:
        response.raise_for_status()
        async for line in response.content:
            if elapsed is None and line.startswith(b"data: {"):
                choices = orjson.loads(line[6:]).get("choices") or [{}]
                if choices[0].get("delta", {}).get("content"):
                    elapsed = (time.perf_counter() - t0) * 1000
    if elapsed is None:
        raise RuntimeError(f"no content chunk in the stream from {url}")
    return elapsed


async def measure_ttft(
    urls: dict[str, str], requests: int, auths: dict[str, str] | None = None
) -> dict[str, list[float]]:
    """Sequential streamed requests, one target after the other in turn (`auths`: bearer token per target)."""
    auths = auths or {}
    samples: dict[str, list[float]] = {name: [] for name in urls}
    async with aiohttp.ClientSession() as session:
        for name, url in urls.items():  # warm-up: connections open, code paths hot
            for _ in range(10):
                await first_content_ms(session, url + "/chat/completions", auths.get(name, DEFAULT_AUTH))
        for _ in range(requests):
            for name, url in urls.items():
                samples[name].append(
                    await first_content_ms(session, url + "/chat/completions", auths.get(name, DEFAULT_AUTH))
                )
    return samples


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def readyz(sidecar_url: str) -> dict[str, Any]:
    """The sidecar's /readyz document, or {"error": ...} when it does not answer 200."""
    try:
        with urllib.request.urlopen(sidecar_url.removesuffix("/v1") + "/readyz", timeout=5) as response:
            return dict(json.loads(response.read()))
    except Exception as exc:  # noqa: BLE001  (any failure is reported in the results, not raised)
        return {"error": f"{exc.__class__.__name__}: {exc}"}


def traffic_rows(data_dir: Path) -> int | None:
    path = data_dir / "tollgate.db"
    if not path.exists():
        return None
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as connection:
        return int(connection.execute("SELECT count(*) FROM traffic").fetchone()[0])


def warnings_in(log: Path, limit: int = 20) -> list[str]:
    """The sidecar's WARNING and ERROR lines (spooling, for instance, says why it happened)."""
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    return [line for line in lines if " WARNING " in line or " ERROR " in line][:limit]


def wait_for_log_drain(child: Child, data_dir: Path, timeout_s: float = 60.0) -> None:
    """Let the traffic writer catch up so its work does not spill into the next target's measurement."""
    deadline = time.monotonic() + timeout_s
    last = -1
    while time.monotonic() < deadline:
        traffic = readyz(child.url).get("traffic")
        if isinstance(traffic, dict):
            if traffic.get("queue_depth", 0) == 0:
                return
        else:  # /readyz has no counters: wait until the row count stops moving
            rows = traffic_rows(data_dir) or 0
            if rows == last:
                return
            last = rows
        time.sleep(0.5)


def alternate(targets: dict[str, str], rounds: int) -> list[tuple[int, str, str]]:
    """(round, name, url) with the order rotated every round, so no target always goes first."""
    names = list(targets)
    order = []
    for index in range(rounds):
        shift = index % len(names)
        order += [(index, name, targets[name]) for name in names[shift:] + names[:shift]]
    return order
