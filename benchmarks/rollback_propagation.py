"""How long a rollback takes to reach every sidecar: from `tollgate release rollback` to all serving the old version.

    python benchmarks/rollback_propagation.py                  # 3 sidecars, 5 rounds, SQLite; plus Redis if up
    python benchmarks/rollback_propagation.py --sidecars 4 --rounds 10 --database postgres

Starts the fake upstream and N sidecar processes (`tollgate serve`) sharing one database, with releases on at
the shipped refresh interval (`releases.refresh_interval_s`, 1 s) unless `--interval` says otherwise. A prompt has
v1 then v2 in production. Each round runs the real CLI, `tollgate release rollback greet`, while one thread per
sidecar sends prompt-by-name requests back to back and notes when the answer's `x-tollgate-prompt-version` turns
to v1. Between rounds v2 is promoted again and every sidecar is seen serving it. Reported per round and overall:
the CLI's own run time (a Python start-up), and each sidecar's switch time measured from launching the CLI and
from the commit (the audit row's time). With Redis reachable, the same runs again with `redis_url` set, where a
change is published and sidecars reload at once instead of at their next poll.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from overhead_processes import Child, child_env, redis_reachable, start_child, start_fake_upstream, tollgate

REDIS_URL = "redis://127.0.0.1:6379/15"
POSTGRES_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PROMPT = """---
name: greet
model: fake-model
parameters: {{temperature: 0, max_tokens: 8}}
---
[SYSTEM]
{system}
[INSTRUCTION]
Say hello to {{{{ name }}}}.
"""
BODY = {"model": "fake-model", "prompt": {"name": "greet", "variables": {"name": "Ada"}}}


@dataclass
class Round:
    cli_s: float
    from_launch_s: list[float]
    from_commit_s: list[float]


def write_config(scratch: Path, name: str, database_url: str, prompts: Path, upstream: str, interval: float,
                 redis_url: str | None) -> Path:
    config: dict[str, Any] = {
        "data_dir": str(scratch / name / ".tollgate"),
        "database_url": database_url,
        "models": {"fake-model": {"deployments": [{"base_url": upstream}]}},
        "traffic": {"enabled": False},
        "embedded": {"enabled": "never"},
        "releases": {"enabled": True, "prompts_dir": str(prompts), "refresh_interval_s": interval},
    }
    if redis_url:
        config["redis_url"] = redis_url
    (scratch / name).mkdir(parents=True, exist_ok=True)
    path = scratch / name / "tollgate.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def serving(client: httpx.Client, url: str) -> str:
    return client.post(url + "/chat/completions", json=BODY).headers.get("x-tollgate-prompt-version", "")


def wait_all(urls: list[str], version: str, timeout_s: float = 30.0) -> None:
    with httpx.Client(timeout=5) as client:
        for url in urls:
            deadline = time.monotonic() + timeout_s
            while serving(client, url) != version:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{url} never served {version}")
                time.sleep(0.02)


def watch(url: str, version: str, switched: list[float], index: int, stop: threading.Event) -> None:
    """Ask `url` back to back; note the wall time of the first answer at `version`."""
    with httpx.Client(timeout=5) as client:
        while not stop.is_set():
            if serving(client, url) == version:
                switched[index] = time.time()
                return


def one_round(config: Path, urls: list[str], v1: str, engine: Any) -> Round:
    from core.releases import audit_log

    switched = [0.0] * len(urls)
    stop = threading.Event()
    threads = [threading.Thread(target=watch, args=(url, v1, switched, i, stop)) for i, url in enumerate(urls)]
    for thread in threads:
        thread.start()
    launched = time.time()
    subprocess.run([*tollgate(), "release", "--config", str(config), "--actor", "benchmark", "rollback", "greet",
                    "--reason", "benchmark"], check=True, env=child_env(), stdout=subprocess.DEVNULL)
    cli_s = time.time() - launched
    for thread in threads:
        thread.join(30)
    stop.set()
    if not all(switched):
        raise RuntimeError("a sidecar never switched back within 30 s")
    committed = audit_log(engine, "greet", 1)[0].at
    committed_ts = (committed if committed.tzinfo else committed.replace(tzinfo=UTC)).timestamp()
    return Round(cli_s, [t - launched for t in switched], [t - committed_ts for t in switched])


def run_mode(scratch: Path, label: str, database_url: str, sidecars: int, rounds: int, interval: float,
             redis_url: str | None) -> list[Round]:
    from core.database import open_database
    from core.prompts import PromptRegistry
    from core.releases import promote

    prompts = scratch / label / "prompts"
    prompts.mkdir(parents=True)
    registry = PromptRegistry(prompts)
    engine = open_database(database_url)
    children: list[Child] = []
    try:
        (prompts / "greet.prompt").write_text(PROMPT.format(system="You are polite."))
        v1 = registry.get("greet").version
        promote(engine, "greet", version=v1, registry=registry, force=True, reason="benchmark setup")
        (prompts / "greet.prompt").write_text(PROMPT.format(system="You are terse."))
        v2 = registry.get("greet").version
        promote(engine, "greet", version=v2, registry=registry, force=True, reason="benchmark setup")
        fake = start_fake_upstream(0.0)
        children.append(fake)
        ready = re.compile(r"listening on (http://\S+/v1)")
        config = write_config(scratch, f"{label}/cli", database_url, prompts, fake.url, interval, redis_url)
        for i in range(sidecars):
            path = write_config(scratch, f"{label}/sidecar{i}", database_url, prompts, fake.url, interval, redis_url)
            command = [*tollgate(), "serve", "--config", str(path), "--port", "0", "--log-level", "warning"]
            children.append(start_child(f"sidecar{i}", command, ready, log=path.parent / "sidecar.log"))
        urls = [child.url for child in children[1:]]
        results = []
        for number in range(rounds):
            wait_all(urls, v2)
            time.sleep(0.3 + (number % 4) * 0.23)  # rounds start at different points of the poll cycle
            results.append(one_round(config, urls, v1, engine))
            promote(engine, "greet", version=v2, registry=registry, force=True, reason="benchmark: next round")
            if redis_url:
                from core.releases.notify import publish_change

                publish_change(redis_url)
        return results
    finally:
        for child in reversed(children):
            child.stop()
        engine.dispose()


def postgres_database() -> tuple[str, Any]:
    import sqlalchemy as sa

    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"tollgate_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    url = sa.engine.make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    return url, drop


def report(label: str, results: list[Round]) -> None:
    print(f"\n{label}")
    print("round  cli s   per sidecar from launching the CLI (s)        from the commit (s)")
    for number, result in enumerate(results, 1):
        launch = " ".join(f"{v:5.2f}" for v in result.from_launch_s)
        commit = " ".join(f"{v:5.2f}" for v in result.from_commit_s)
        print(f"{number:>5}  {result.cli_s:5.2f}   {launch:<40}  {commit}")
    every_launch = [v for r in results for v in r.from_launch_s]
    every_commit = [v for r in results for v in r.from_commit_s]
    last_launch = [max(r.from_launch_s) for r in results]
    print(f"all sidecars serving the old version after launching the CLI: median {statistics.median(last_launch):.2f} s, "
          f"max {max(last_launch):.2f} s")
    print(f"per sidecar after the commit: median {statistics.median(every_commit):.2f} s, "
          f"max {max(every_commit):.2f} s  (after launch: median {statistics.median(every_launch):.2f} s)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sidecars", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--interval", type=float, default=1.0, help="releases.refresh_interval_s (default 1.0)")
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--no-redis", action="store_true", help="skip the Redis pub/sub run")
    args = parser.parse_args()
    modes: list[tuple[str, str | None]] = [("polling", None)]
    if not args.no_redis and redis_reachable(REDIS_URL):
        modes.append(("polling + Redis pub/sub", REDIS_URL))
    print(f"{args.sidecars} sidecars, {args.rounds} rounds, {args.database}, refresh interval {args.interval:g} s")
    with tempfile.TemporaryDirectory(prefix="tollgate-rollback-bench-") as folder:
        scratch = Path(folder)
        for index, (label, redis_url) in enumerate(modes):
            drop = None
            if args.database == "postgres":
                database_url, drop = postgres_database()
            else:
                database_url = f"sqlite:///{scratch / f'mode{index}.db'}"
            try:
                results = run_mode(scratch, f"mode{index}", database_url, args.sidecars, args.rounds, args.interval,
                                   redis_url)
            finally:
                if drop is not None:
                    drop()
            report(label, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
