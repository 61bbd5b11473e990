"""What `faults.py` needs around one scenario: the load loop, the sidecar and fake upstreams as children,
and the reckoning of answered requests against the rows stored.

The load loop sends chat completions with a unique `x-request-id` from a few aiohttp workers in a thread
of its own, and remembers the id of every request answered 200 (and counts 503 `traffic_log_full`
refusals and everything else by status). After the sidecar has stopped and any spool left behind has
been replayed, each answered id must be in the `traffic` table exactly once.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from overhead_processes import Child, start_child, tollgate

MODEL = "fault-model"
PRICE = {"input_per_mtok": 0.15, "output_per_mtok": 0.6}
SIDECAR_READY = re.compile(r"listening on (http://\S+/v1)")
UPSTREAM_READY = re.compile(r"(http://\S+/v1)")


@dataclass
class Load:
    """Concurrent chat completions against `url` until `stop()`; ids of the answered ones are kept."""

    url: str
    prefix: str
    concurrency: int = 8
    answered: set[str] = field(default_factory=set)
    statuses: Counter[str] = field(default_factory=Counter)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Load:
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._run()), name="fault-load", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(120)

    @property
    def refused(self) -> int:
        return self.statuses["503 traffic_log_full"]

    async def _run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            await asyncio.gather(*(self._worker(session, number) for number in range(self.concurrency)))

    async def _worker(self, session: aiohttp.ClientSession, number: int) -> None:
        sent = 0
        while not self._stop.is_set():
            sent += 1
            request_id = f"{self.prefix}-{number}-{sent}"
            body = {"model": MODEL, "messages": [{"role": "user", "content": f"fault check {request_id}"}]}
            try:
                async with session.post(
                    self.url + "/chat/completions", json=body, headers={"x-request-id": request_id}
                ) as response:
                    payload = await response.read()
                    self._count(response.status, payload, request_id)
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                self.statuses[f"error {type(exc).__name__}"] += 1
                await asyncio.sleep(0.05)  # the sidecar is gone or restarting: do not spin

    def _count(self, status: int, payload: bytes, request_id: str) -> None:
        if status == 200:
            self.answered.add(request_id)
            self.statuses["200"] += 1
            return
        code = ""
        try:
            code = json.loads(payload)["error"]["code"] or ""
        except (ValueError, KeyError, TypeError):
            pass
        self.statuses[f"{status} {code}".strip()] += 1


def start_upstream(log: Path) -> Child:
    """The project's fake upstream (answers at once) on a free port."""
    command = [*tollgate(), "fake-upstream", "--port", "0", "--ttft-ms", "0"]
    return start_child("fake-upstream", command, UPSTREAM_READY, log=log)


def write_config(
    data_dir: Path, upstream_urls: list[str], database_url: str | None, traffic: dict[str, Any]
) -> Path:
    config = {
        "data_dir": str(data_dir),
        "models": {MODEL: {"deployments": [{"base_url": url} for url in upstream_urls], "price": PRICE}},
        "sidecar": {"retries": 2, "retry_backoff_s": 0.02},
        "traffic": traffic,
    }
    if database_url:
        config["database_url"] = database_url
    path = data_dir.parent / f"{data_dir.parent.name}.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def start_sidecar(config: Path, log: Path) -> Child:
    return start_child(
        "sidecar", [*tollgate(), "serve", "--config", str(config), "--port", "0"], SIDECAR_READY, log=log
    )


def stop_sidecar(sidecar: Child, timeout_s: float = 180.0) -> int | None:
    """SIGTERM and wait for the drain; the exit status (None if it had to be killed)."""
    process = sidecar.process
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return None


def writer_pid(sidecar_pid: int) -> int | None:
    """The sidecar's traffic writer process, found among its children by its command line."""
    for task in Path(f"/proc/{sidecar_pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            try:
                if b"sidecar.traffic.child" in Path(f"/proc/{child}/cmdline").read_bytes():
                    return int(child)
            except OSError:
                continue
    return None


def wait_until(condition: Any, timeout_s: float, step_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step_s)
    return False


def replay_spool(config: Path, timeout_s: float = 120.0) -> int:
    """Store whatever the sidecar left in its spool, as its next start would; returns the files left after."""
    from core.settings import load_settings
    from sidecar.traffic.writer import TrafficLog

    settings = load_settings(config)
    pending = lambda: sorted(settings.spool_dir.glob("traffic-*.jsonl"))
    if not pending():
        return 0
    with TrafficLog(settings):
        wait_until(lambda: not pending(), timeout_s, 0.2)
    return len(pending())


def stored_counts(data_dir: Path, database_url: str | None) -> dict[str, int]:
    """request_id -> rows in `traffic`."""
    query = "SELECT request_id, COUNT(*) FROM traffic GROUP BY request_id"
    if database_url:
        import psycopg

        with psycopg.connect(database_url) as connection:
            return {str(rid): int(n) for rid, n in connection.execute(query).fetchall()}
    with sqlite3.connect(data_dir / "tollgate.db", timeout=30) as connection:
        return {str(rid): int(n) for rid, n in connection.execute(query).fetchall()}


def reckon(load: Load, counts: dict[str, int]) -> dict[str, int]:
    """Answered 200 against rows stored: lost (answered, no row) and duplicates (extra rows)."""
    answered = load.answered
    return {
        "answered_200": len(answered),
        "stored": sum(1 for rid in answered if counts.get(rid, 0) > 0),
        "lost": sum(1 for rid in answered if counts.get(rid, 0) == 0),
        "duplicates": sum(counts.get(rid, 0) - 1 for rid in answered if counts.get(rid, 0) > 1),
        "refused_503": load.refused,
    }


def log_lines(path: Path, pattern: str, limit: int = 30) -> list[str]:
    """Lines of a child's log matching `pattern` (warnings about spooling, holding, restarts)."""
    if not path.exists():
        return []
    found = [line for line in path.read_text(errors="replace").splitlines() if re.search(pattern, line)]
    return found[:limit]


def mount_tmpfs(where: Path, size: str) -> str | None:
    """Mount a tmpfs of `size` at `where`; None on success, else why not."""
    where.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        return result.stderr.strip() or f"mount exited {result.returncode}"
    return None


def fill_disk(path: Path) -> int:
    """Write `path` until its filesystem is full; returns the bytes written."""
    written = 0
    with path.open("wb", buffering=0) as handle:
        for size in (1 << 20, 1 << 16, 1 << 12, 1 << 9):
            while True:
                try:
                    written += handle.write(b"\0" * size)
                except OSError:
                    break
    os.sync()
    return written
