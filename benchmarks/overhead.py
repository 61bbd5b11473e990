"""Sidecar overhead: the same load sent straight to an upstream and through the sidecar, side by side.

One run measures, alternating targets round by round so machine noise hits every side alike:
  1. c1 latency (wrk -t1 -c1 --latency) against nginx returning a fixed chat.completion, and the added p50/p99;
  2. c64 throughput and p99 (wrk -t2 -c64; the load generator shares the machine's CPUs);
  3. streaming time to first content chunk against the fake upstream (sequential Python client);
  4. the sidecar's RSS before and after the c64 load;
  5. the traffic-log counters from /readyz and the rows in its database: logging was on and nothing was lost.
The sidecar runs with the traffic log on (the headline figures) and, beside it, with the log off, which
separates the cost of logging from the cost of proxying.

    python benchmarks/overhead.py [--duration 10] [--rounds 3] [--ttft-requests 200] [--quick]

Prints a table and writes benchmarks/results/overhead-<UTC date>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import select
import shlex
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson

HERE = Path(__file__).resolve().parent
WRK_SCRIPT = HERE / "wrk" / "chat.lua"
NGINX_TEMPLATE = HERE / "nginx" / "mock.conf.in"
GOALS = {
    "c1_added_p50_ms": 0.5,
    "c1_added_p99_ms": 2.0,
    "c64_rps": 3000.0,
    "ttft_added_p50_ms": 2.0,
    "rss_mib": 100.0,
}
CHAT_MODEL = "bench-model"
STREAM_MODEL = "bench-stream"
STREAM_BODY = orjson.dumps(
    {"model": STREAM_MODEL, "stream": True, "messages": [{"role": "user", "content": "Hello, how are you?"}]}
)
PRICE = {"input_per_mtok": 0.15, "output_per_mtok": 0.6}
LOGGED, UNLOGGED, DIRECT = "sidecar", "sidecar-nolog", "direct"


# -- child processes ---------------------------------------------------------------------------------


@dataclass
class Child:
    """A server started by the benchmark, with the URL it announced."""

    name: str
    process: subprocess.Popen[str]
    url: str

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_child(
    name: str, command: list[str], ready: re.Pattern[str], log: Path | None = None, timeout_s: float = 60.0
) -> Child:
    """Start `command` (stderr to `log`) and wait for a stdout line matching `ready` (its group 1 is the URL)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("TOLLGATE_")}
    stderr = log.open("w") if log is not None else subprocess.DEVNULL
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)
    assert process.stdout is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        readable, _, _ = select.select([process.stdout], [], [], 0.2)
        if readable:
            line = process.stdout.readline()
            match = ready.search(line)
            if match:
                return Child(name, process, match.group(1))
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with code {process.returncode} before it was ready: {command}")
    process.kill()
    raise RuntimeError(f"{name} did not announce itself within {timeout_s:g} s")


def start_nginx(scratch: Path) -> Child:
    """nginx with one worker answering a fixed chat.completion, in the foreground, all paths in `scratch`."""
    for sub in ("logs", "tmp"):
        (scratch / sub).mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = NGINX_TEMPLATE.read_text().replace("@DIR@", str(scratch)).replace("@PORT@", str(port))
    (scratch / "nginx.conf").write_text(conf)
    command = [
        "/usr/sbin/nginx",
        "-p",
        str(scratch),
        "-c",
        str(scratch / "nginx.conf"),
        "-e",
        str(scratch / "logs/error.log"),
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return Child("nginx", process, f"http://127.0.0.1:{port}/v1")
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("nginx did not start listening; see " + str(scratch / "logs/error.log"))


def start_sidecar(
    command: list[str], scratch: Path, chat_url: str, stream_url: str, *, logging_on: bool
) -> tuple[Child, Path]:
    """The sidecar routing CHAT_MODEL to nginx and STREAM_MODEL to the fake upstream; returns its data dir."""
    data_dir = scratch / ("logged" if logging_on else "unlogged")
    data_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "data_dir": str(data_dir / ".tollgate"),
        "models": {
            # Priced, so cost lookups never fall back to importing litellm's price map mid-run.
            CHAT_MODEL: {"deployments": [{"base_url": chat_url}], "price": PRICE},
            STREAM_MODEL: {"deployments": [{"base_url": stream_url, "model": "fake-model"}], "price": PRICE},
        },
        "traffic": {"enabled": logging_on},
    }
    config_path = data_dir / "tollgate.yaml"
    config_path.write_text(json.dumps(config))  # JSON is YAML
    ready = re.compile(r"listening on (http://\S+/v1)")
    arguments = [*command, "--config", str(config_path), "--port", "0"]
    child = start_child(LOGGED if logging_on else UNLOGGED, arguments, ready, log=data_dir / "sidecar.log")
    return child, data_dir / ".tollgate"


# -- measurements ------------------------------------------------------------------------------------


def run_wrk(base_url: str, threads: int, connections: int, duration_s: float) -> dict[str, float]:
    """One wrk run with the chat script; latencies in ms, throughput in requests/s."""
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration_s:g}s",
        "--latency",
        "-s",
        str(WRK_SCRIPT),
    ]
    env = {**os.environ, "MODEL": CHAT_MODEL}
    out = subprocess.run(
        [*command, base_url + "/chat/completions"], capture_output=True, text=True, env=env, check=True
    )
    line = next(line for line in out.stdout.splitlines() if line.startswith("RESULT "))
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


async def first_content_ms(session: aiohttp.ClientSession, url: str) -> float:
    """Milliseconds from sending a streamed chat request to the first event carrying content; reads to the end."""
    t0 = time.perf_counter()
    elapsed: float | None = None
    async with session.post(url, data=STREAM_BODY, headers={"content-type": "application/json"}) as response:
        response.raise_for_status()
        async for line in response.content:
            if elapsed is None and line.startswith(b"data: {"):
                choices = orjson.loads(line[6:]).get("choices") or [{}]
                if choices[0].get("delta", {}).get("content"):
                    elapsed = (time.perf_counter() - t0) * 1000
    if elapsed is None:
        raise RuntimeError(f"no content chunk in the stream from {url}")
    return elapsed


async def measure_ttft(urls: dict[str, str], requests: int) -> dict[str, list[float]]:
    """Sequential streamed requests, one target after the other in turn."""
    samples: dict[str, list[float]] = {name: [] for name in urls}
    async with aiohttp.ClientSession() as session:
        for name, url in urls.items():  # warm-up: connections open, code paths hot
            for _ in range(10):
                await first_content_ms(session, url + "/chat/completions")
        for _ in range(requests):
            for name, url in urls.items():
                samples[name].append(await first_content_ms(session, url + "/chat/completions"))
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


# -- the run -----------------------------------------------------------------------------------------


@dataclass
class Targets:
    """Everything under test: the upstreams and the two sidecars."""

    nginx: Child
    fake: Child
    logged: Child
    unlogged: Child
    logged_dir: Path

    def chat_urls(self) -> dict[str, str]:
        return {DIRECT: self.nginx.url, LOGGED: self.logged.url, UNLOGGED: self.unlogged.url}

    def stream_urls(self) -> dict[str, str]:
        return {DIRECT: self.fake.url, LOGGED: self.logged.url, UNLOGGED: self.unlogged.url}

    def sidecars(self) -> dict[str, Child]:
        return {LOGGED: self.logged, UNLOGGED: self.unlogged}

    def stop(self) -> None:
        for child in (self.logged, self.unlogged, self.fake, self.nginx):
            child.stop()


def start_targets(scratch: Path, sidecar_command: list[str], ttft_ms: float) -> Targets:
    started: list[Child] = []
    try:
        nginx = start_nginx(scratch / "nginx")
        started.append(nginx)
        fake_command = [*_tollgate(), "fake-upstream", "--port", "0", "--ttft-ms", f"{ttft_ms:g}"]
        fake = start_child(
            "fake-upstream",
            [*fake_command, "--inter-token-ms", "1", "--output-tokens", "8"],
            re.compile(r"(http://\S+/v1)"),
        )
        started.append(fake)
        logged, logged_dir = start_sidecar(sidecar_command, scratch, nginx.url, fake.url, logging_on=True)
        started.append(logged)
        unlogged, _ = start_sidecar(sidecar_command, scratch, nginx.url, fake.url, logging_on=False)
        return Targets(nginx, fake, logged, unlogged, logged_dir)
    except BaseException:
        for child in reversed(started):
            child.stop()
        raise


def _tollgate() -> list[str]:
    return [sys.executable, "-m", "core.cli"]


def alternate(targets: dict[str, str], rounds: int) -> list[tuple[int, str, str]]:
    """(round, name, url) with the order rotated every round, so no target always goes first."""
    names = list(targets)
    order = []
    for index in range(rounds):
        shift = index % len(names)
        order += [(index, name, targets[name]) for name in names[shift:] + names[:shift]]
    return order


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


# -- profile ----------------------------------------------------------------------------------------


def profile_under_load(bench: Targets, seconds: float, folder: Path, prefix: str) -> dict[str, Any]:
    """py-spy (sampling every thread) on each sidecar under the c64 load; collapsed stacks kept in `folder`."""
    summaries: dict[str, Any] = {}
    for name, child in bench.sidecars().items():
        stacks = folder / f"{prefix}-profile-{name}.txt"
        load = subprocess.Popen(
            ["wrk", "-t2", "-c64", f"-d{seconds + 4:g}s", "-s", str(WRK_SCRIPT), child.url + "/chat/completions"],
            stdout=subprocess.DEVNULL, env={**os.environ, "MODEL": CHAT_MODEL},
        )  # fmt: skip
        time.sleep(2)
        record = [
            _py_spy(),
            "record",
            "--pid",
            str(child.process.pid),
            "--duration",
            f"{seconds:g}",
            "--rate",
            "250",
        ]
        subprocess.run(
            [*record, "--threads", "--nonblocking", "--format", "raw", "--output", str(stacks)],
            capture_output=True,
            check=True,
        )
        load.wait()
        if name == LOGGED:
            wait_for_log_drain(child, bench.logged_dir)
        summaries[name] = summarise_stacks(stacks)
        print(f"profile of {name} under c64 ({stacks}):\n{render_profile(summaries[name])}", file=sys.stderr)
    return summaries


def _py_spy() -> str:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else "py-spy"


def summarise_stacks(path: Path, top: int = 20) -> dict[str, Any]:
    """Shares of samples per thread, per function's own time (self) and per function including callees."""
    threads: dict[str, int] = {}
    own: dict[str, int] = {}
    within: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames, samples = stack.split(";"), int(count)
        total += samples
        thread = frames[0].split(": ", 1)[-1]
        threads[thread] = threads.get(thread, 0) + samples
        own[frames[-1]] = own.get(frames[-1], 0) + samples
        for frame in set(frames[1:]):
            within[frame] = within.get(frame, 0) + samples

    def shares(counts: dict[str, int], limit: int) -> list[tuple[str, float]]:
        ranked = sorted(counts.items(), key=lambda item: -item[1])[:limit]
        return [(name, round(100 * samples / max(total, 1), 1)) for name, samples in ranked]

    return {
        "samples": total,
        "threads": shares(threads, 10),
        "self": shares(own, top),
        "inclusive": shares(within, 2 * top),
    }


def render_profile(summary: dict[str, Any]) -> str:
    lines = [
        f"  {summary['samples']} samples; threads: "
        + ", ".join(f"{name} {share}%" for name, share in summary["threads"])
    ]
    lines += [f"  self {share:5.1f}%  {name}" for name, share in summary["self"]]
    return "\n".join(lines)


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
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.rounds, args.ttft_requests = 2.0, 1, 50
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sidecar_command = shlex.split(args.sidecar_command) if args.sidecar_command else [*_tollgate(), "serve"]
    facts = run_facts(args, sidecar_command)
    output = args.output or HERE / "results" / f"overhead-{facts['date'][:10]}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tollgate-overhead-") as scratch:
        bench = start_targets(Path(scratch), sidecar_command, args.upstream_ttft_ms)
        try:
            results = measure(bench, args)
            if args.profile:
                results["profiles"] = profile_under_load(bench, args.profile, output.parent, output.stem)
        finally:
            bench.stop()
    results["added"] = {name: added(results, name) for name in (LOGGED, UNLOGGED)}
    results["goals"] = GOALS
    results["goals_met"] = verdicts(results["added"][LOGGED])
    results = {"run": facts, **results}
    output.write_text(json.dumps(results, indent=2) + "\n")
    print(render_table(results))
    print(render_traffic(results))
    print(
        f"machine: {facts['cpus']} vCPU ({facts['cpu_model']}), load generator on the same machine; results in {output}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
