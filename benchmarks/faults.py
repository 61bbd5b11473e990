"""Fault injection: is every answered request in the traffic log, exactly once, whatever breaks?

Each scenario starts a real `tollgate serve` (writer in a child process, as deployed) in front of the
project's fake upstream, keeps it under load (aiohttp workers counting the 200s and their request ids),
breaks something, lets it recover, stops the sidecar with SIGTERM (it drains), replays any spool left
behind as the next start would, and compares the answered ids with the rows stored:

    sigterm          SIGTERM to the sidecar under load
    writer-kill      SIGKILL to the traffic writer process, four times
    sqlite-lock      another connection holds SQLite's write lock (BEGIN EXCLUSIVE), 45 s
    pg-outage        PostgreSQL refuses and terminates the database's connections, 30 s
    pg-table-lock    LOCK TABLE traffic IN ACCESS EXCLUSIVE MODE, 45 s
    disk-full        database and spool on a 256 MiB tmpfs filled to the last byte, 30 s (needs mount rights)
    upstream-kill    one of the model's two upstreams is SIGKILLed

    python benchmarks/faults.py [--quick] [--only NAME ...] [--concurrency 8]

`--quick` shortens every hold to a few seconds (a smoke run; the SQLite lock then ends before the
writer's 30 s busy timeout, so it only delays writes). Goal: 0 lost and 0 duplicates everywhere.
Prints a table and writes benchmarks/results/faults-<UTC timestamp>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shlex
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from faults_harness import (
    Load,
    fill_disk,
    log_lines,
    mount_tmpfs,
    reckon,
    replay_spool,
    start_sidecar,
    start_upstream,
    stop_sidecar,
    stored_counts,
    wait_until,
    write_config,
    writer_pid,
)
from overhead_processes import HERE, Child

POSTGRES_ADMIN_URL = os.environ.get(
    "TOLLGATE_FAULTS_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@dataclass
class Run:
    """One scenario in progress: its folder, children, load, and notes for the report."""

    name: str
    folder: Path
    hold_s: float
    database_url: str | None = None
    upstreams: list[Child] = field(default_factory=list)
    sidecar: Child | None = None
    load: Load | None = None
    config: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def data_dir(self) -> Path:
        return self.folder / "data" / ".tollgate"

    @property
    def log(self) -> Path:
        return self.folder / "sidecar.log"


Fault = Callable[[Run], None]


# -- the faults ------------------------------------------------------------------------------------------


def sigterm(run: Run) -> None:
    assert run.sidecar is not None
    status = stop_sidecar(run.sidecar)  # under load: the load keeps sending until the port closes
    run.notes.append(f"sidecar exit status {status}")


def writer_kill(run: Run) -> None:
    assert run.sidecar is not None
    killed = 0
    for _ in range(4):
        pid = writer_pid(run.sidecar.process.pid)
        if pid is None and not wait_until(lambda: writer_pid(run.sidecar.process.pid) is not None, 30):
            run.notes.append("no writer process found")
            break
        pid = pid or writer_pid(run.sidecar.process.pid)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        killed += 1
        time.sleep(run.hold_s / 4)
    run.notes.append(f"writer killed {killed} times")


def sqlite_lock(run: Run) -> None:
    connection = sqlite3.connect(run.data_dir / "tollgate.db", timeout=30, isolation_level=None)
    try:
        connection.execute("BEGIN EXCLUSIVE")
        time.sleep(run.hold_s)
        connection.execute("COMMIT")
    finally:
        connection.close()
    run.notes.append(f"write lock held {run.hold_s:g} s")


def pg_outage(run: Run) -> None:
    import psycopg

    name = _database_name(run)
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        terminated = 0
        deadline = time.monotonic() + run.hold_s
        try:
            while time.monotonic() < deadline:
                rows = admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                    (name,),
                ).fetchall()
                terminated += len(rows)
                time.sleep(0.2)
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    run.notes.append(f"connections refused for {run.hold_s:g} s, {terminated} backends terminated")


def pg_table_lock(run: Run) -> None:
    import psycopg

    assert run.database_url is not None
    with psycopg.connect(run.database_url) as connection:
        connection.execute("LOCK TABLE traffic IN ACCESS EXCLUSIVE MODE")
        time.sleep(run.hold_s)
        connection.rollback()
    run.notes.append(f"table locked {run.hold_s:g} s")


def disk_full(run: Run) -> None:
    filler = run.data_dir.parent / "filler"
    written = fill_disk(filler)
    time.sleep(run.hold_s)
    filler.unlink()
    run.notes.append(f"disk full for {run.hold_s:g} s ({written // 1024} KiB filler)")


def upstream_kill(run: Run) -> None:
    victim = run.upstreams[0]
    victim.process.kill()
    victim.process.wait()
    time.sleep(run.hold_s)
    run.notes.append("upstream 1 of 2 killed")


@dataclass(frozen=True)
class Scenario:
    name: str
    fault: Fault
    hold_s: float
    database: str = "sqlite"  # or "postgresql"
    upstreams: int = 1
    tmpfs: bool = False


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("sigterm", sigterm, 0),
    Scenario("writer-kill", writer_kill, 20),
    Scenario("sqlite-lock", sqlite_lock, 45),
    Scenario("pg-outage", pg_outage, 30, database="postgresql"),
    Scenario("pg-table-lock", pg_table_lock, 45, database="postgresql"),
    Scenario("disk-full", disk_full, 30, tmpfs=True),
    Scenario("upstream-kill", upstream_kill, 10, upstreams=2),
)


# -- running one scenario ----------------------------------------------------------------------------------


def run_scenario(scenario: Scenario, scratch: Path, args: argparse.Namespace) -> dict[str, Any]:
    hold = min(scenario.hold_s, args.quick_hold_s) if args.quick else scenario.hold_s
    run = Run(scenario.name, scratch / scenario.name, hold)
    run.data_dir.mkdir(parents=True)
    mounted = False
    try:
        if scenario.tmpfs:
            refused = mount_tmpfs(run.data_dir.parent, "256m")
            if refused is not None:
                return {"scenario": scenario.name, "skipped": f"cannot mount a tmpfs: {refused}"}
            mounted = True
            run.data_dir.mkdir(parents=True, exist_ok=True)
        if scenario.database == "postgresql":
            run.database_url = _create_database(run)
            if run.database_url is None:
                return {
                    "scenario": scenario.name,
                    "skipped": "PostgreSQL not reachable at " + POSTGRES_ADMIN_URL,
                }
        return _measure(run, scenario, args)
    finally:
        _teardown(run, mounted)


def _measure(run: Run, scenario: Scenario, args: argparse.Namespace) -> dict[str, Any]:
    for index in range(scenario.upstreams):
        run.upstreams.append(start_upstream(run.folder / f"upstream-{index}.log"))
    traffic = {"memory_buffer_rows": args.buffer_rows} if args.buffer_rows else {}
    run.config = write_config(run.data_dir, [u.url for u in run.upstreams], run.database_url, traffic)
    run.sidecar = start_sidecar(run.config, run.log)
    run.load = Load(run.sidecar.url, scenario.name, args.concurrency).start()
    started = time.monotonic()
    time.sleep(args.warmup_s)
    if not wait_until(lambda: _rows_stored(run) > 0, 60, 0.2):  # the writer has migrated and is writing
        run.notes.append("no row stored before the fault")
    scenario.fault(run)
    time.sleep(0 if scenario.name == "sigterm" else args.tail_s)
    run.load.stop()
    status = stop_sidecar(run.sidecar)
    elapsed = time.monotonic() - started
    left = replay_spool(run.config)
    result = {
        "scenario": scenario.name,
        "hold_s": run.hold_s,
        **reckon(run.load, stored_counts(run.data_dir, run.database_url)),
        "statuses": dict(run.load.statuses),
        "seconds": round(elapsed, 1),
        "spool_files_left": left,
        "sidecar_exit": status,
        "notes": run.notes,
        "log": log_lines(run.log, r"spool|held|holding|memory buffer|lost|restart|exited|refus"),
    }
    return result


def _rows_stored(run: Run) -> int:
    try:
        return len(stored_counts(run.data_dir, run.database_url))
    except Exception:  # noqa: BLE001  (no table yet, database locked: not yet)
        return 0


def _teardown(run: Run, mounted: bool) -> None:
    for child in [run.sidecar, *run.upstreams]:
        if child is not None and child.process.poll() is None:
            child.process.kill()
            child.process.wait()
    if run.load is not None:
        run.load.stop()
    if mounted:
        subprocess.run(["umount", "-l", str(run.data_dir.parent)], check=False)
    if run.database_url is not None:
        _drop_database(run)


def _database_name(run: Run) -> str:
    assert run.database_url is not None
    return run.database_url.rsplit("/", 1)[1]


def _create_database(run: Run) -> str | None:
    try:
        import psycopg

        name = f"tollgate_faults_{secrets.token_hex(4)}"
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
    except Exception as exc:  # noqa: BLE001  (no server, no driver: the scenario is skipped with the reason)
        run.notes.append(f"{type(exc).__name__}: {exc}")
        return None
    return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def _drop_database(run: Run) -> None:
    import psycopg

    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{_database_name(run)}" WITH (FORCE)')


# -- report ------------------------------------------------------------------------------------------------


def render(results: list[dict[str, Any]]) -> str:
    head = f"{'scenario':<15} {'hold s':>6} {'answered 200':>12} {'stored':>7} {'lost':>5} {'dups':>5} {'503 full':>8}  other"
    lines = [head, "-" * len(head)]
    for result in results:
        if "skipped" in result:
            lines.append(f"{result['scenario']:<15} skipped: {result['skipped']}")
            continue
        other = {k: v for k, v in result["statuses"].items() if k not in ("200", "503 traffic_log_full")}
        lines.append(
            f"{result['scenario']:<15} {result['hold_s']:>6g} {result['answered_200']:>12,} {result['stored']:>7,} "
            f"{result['lost']:>5} {result['duplicates']:>5} {result['refused_503']:>8,}  {other or ''}"
        )
    return "\n".join(lines)


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
        "quick": args.quick,
        "concurrency": args.concurrency,
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "python": platform.python_version(),
        "commit": commit.stdout.strip(),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="hold every fault a few seconds only")
    parser.add_argument("--quick-hold-s", type=float, default=4.0, help="the hold under --quick (default 4)")
    parser.add_argument(
        "--only", nargs="+", choices=[s.name for s in SCENARIOS], help="run these scenarios only"
    )
    parser.add_argument("--concurrency", type=int, default=8, help="load workers (default 8)")
    parser.add_argument("--warmup-s", type=float, default=3.0, help="load before the fault (default 3)")
    parser.add_argument("--tail-s", type=float, default=5.0, help="load after the fault ends (default 5)")
    parser.add_argument(
        "--buffer-rows", type=int, default=0, help="traffic.memory_buffer_rows (default: the sidecar's)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    chosen = [s for s in SCENARIOS if not args.only or s.name in args.only]
    facts = run_facts(args)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="tollgate-faults-") as scratch:
        for scenario in chosen:
            print(f"running {scenario.name} ...", file=sys.stderr, flush=True)
            try:
                results.append(run_scenario(scenario, Path(scratch), args))
            except Exception as exc:  # noqa: BLE001  (one broken scenario must not hide the others' figures)
                results.append({"scenario": scenario.name, "skipped": f"failed: {type(exc).__name__}: {exc}"})
    print(render(results))
    out = HERE / "results" / f"faults-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"facts": facts, "results": results}, indent=2))
    print(f"\nwritten to {out}")
    failed = [r for r in results if r.get("lost") or r.get("duplicates")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
