"""Dashboard pages over 1M traffic records: how long each page takes to render.

Run: python benchmarks/dashboard_pages.py [--rows 1000000] [--days 7] [--postgres URL] [--keep PATH]
Seeds synthetic traffic with bulk inserts (one DB-API executemany per chunk on SQLite, COPY on PostgreSQL),
fills the latency and cost rollups and the review queue with the same public functions the traffic writer
calls, adds judge scores, two suite runs and release labels, then renders every page with Streamlit's
AppTest as a signed-in lead and prints the median of a few renders (the script run that builds the page:
every query and every element). The goal is at most 2 s per page. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
import yaml

from core.costs import record_costs
from core.database import open_database
from core.latency import record_latencies
from core.offline import apply_offline_env
from core.releases.labels import promote, store_prompt_source
from core.reviews import queue_reviews
from core.tables import JudgeScore, TrafficRecord
from dashboards.auth import hash_password
from dashboards.context import dispose_engines
from harness.store import RunStore

TRAFFIC: sa.Table = TrafficRecord.__table__  # type: ignore[attr-defined]
MODELS = [f"model-{index}" for index in range(5)]
USERS = [f"user-{index}" for index in range(2_000)]
FEATURES = [f"feature-{index}" for index in range(12)]
PROMPTS = [f"prompt-{index}" for index in range(8)]
SEGMENTS = ["free", "pro", "enterprise"]
ARMS = ["production"] * 17 + ["canary", "canary", "shadow"]
GUARDS = ['[{"guard": "pii", "reason": "email", "action": "redact"}]',
          '[{"guard": "injection", "reason": "ignore previous", "action": "block"}]']
CHUNK = 20_000
PAGES = (
    "release_gate", "suite_runs", "latency", "cost", "traffic", "quality", "guardrails", "reviews",
)
COLUMNS = [column.name for column in TRAFFIC.columns]


def synthetic(count: int, days: float, end: datetime, seed: int = 7) -> Iterator[list[dict[str, Any]]]:
    """Finalised traffic rows in chunks: 5 models, 2,000 users, 3 % failures, 2 % guarded, 0.5 % flagged."""
    rng = np.random.default_rng(seed)
    start = end.timestamp() - days * 86400
    for offset in range(0, count, CHUNK):
        size = min(CHUNK, count - offset)
        # Chunks follow each other in time, as the writer's batches do: rollup keys and index entries of one
        # chunk land next to each other instead of all over the B-trees.
        step = (end.timestamp() - start) / count
        stamps = np.sort(rng.uniform(start + offset * step, start + (offset + size) * step, size))
        models = rng.integers(len(MODELS), size=size)
        latency = rng.lognormal(np.log(150.0 * (models + 1)), 0.6)
        users, features = rng.integers(len(USERS), size=size), rng.integers(len(FEATURES), size=size)
        prompts, segments = rng.integers(len(PROMPTS), size=size), rng.integers(len(SEGMENTS), size=size)
        arms, draws = rng.integers(len(ARMS), size=size), rng.random(size)
        tokens_in, tokens_out = rng.integers(20, 800, size=size), rng.integers(5, 400, size=size)
        chunk = []
        for index in range(size):
            number = offset + index
            failed = draws[index] < 0.03
            model = MODELS[models[index]]
            request = f'{{"model":"{model}","messages":[{{"role":"user","content":"question {number} [EMAIL]"}}]}}'
            chunk.append({
                **dict.fromkeys(COLUMNS),
                "id": f"{number:012x}", "request_id": f"req-{number}",
                "created_at": datetime.fromtimestamp(stamps[index], UTC), "endpoint": "chat.completions",
                "requested_model": model, "served_model": model, "user": USERS[users[index]],
                "feature": FEATURES[features[index]], "segment": SEGMENTS[segments[index]],
                "prompt_name": PROMPTS[prompts[index]], "stream": False, "status": 502 if failed else 200,
                "error_class": "upstream_error" if failed else None, "request_body": request,
                "response_body": None if failed else f'{{"choices":[{{"message":{{"content":"answer {number}"}}}}]}}',
                "redactions": 1, "tokens_in": int(tokens_in[index]), "tokens_out": 0 if failed else int(tokens_out[index]),
                "usage_estimated": False, "cost_usd": float(tokens_in[index] + 3 * tokens_out[index]) * 1e-6,
                "ttft_ms": float(latency[index]) * 0.2, "latency_ms": float(latency[index]), "attempts": 1,
                "variant": ARMS[arms[index]],
                "guard_events": GUARDS[number % 2] if 0.03 <= draws[index] < 0.05 else None,
                "review_reason": "guard: flagged output" if 0.05 <= draws[index] < 0.055 else None,
            })
        yield chunk


def insert_chunk(connection: sa.Connection, rows: list[dict[str, Any]]) -> None:
    """Bulk insert (executemany on SQLite, COPY on PostgreSQL), then the rollups and the review queue."""
    if connection.dialect.name == "postgresql":
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        quoted = ", ".join(f'"{name}"' for name in COLUMNS)
        with cursor.copy(f"COPY traffic ({quoted}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row[name] for name in COLUMNS])
    else:
        marks = ", ".join("?" for _ in COLUMNS)
        quoted = ", ".join(f'"{name}"' for name in COLUMNS)
        values = [tuple(_sqlite_value(row[name]) for name in COLUMNS) for row in rows]
        connection.exec_driver_sql(f"INSERT INTO traffic ({quoted}) VALUES ({marks})", values)
    record_latencies(connection, rows)
    record_costs(connection, rows)
    queue_reviews(connection, rows)


def _sqlite_value(value: Any) -> Any:
    # The format SQLAlchemy's SQLite DateTime type stores, so the app reads these rows as it reads its own.
    return value.strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(value, datetime) else value


def seed(engine: sa.Engine, rows: int, days: float, end: datetime) -> dict[str, float]:
    began = time.perf_counter()
    judged: list[dict[str, Any]] = []
    for chunk in synthetic(rows, days, end):
        with engine.begin() as connection:
            insert_chunk(connection, chunk)
        judged += [_judge_score(row) for row in chunk[::50] if row["status"] < 400]
    traffic_s = time.perf_counter() - began
    with engine.begin() as connection:
        connection.execute(sa.insert(JudgeScore.__table__), judged)  # type: ignore[attr-defined]
    _runs(engine, end)
    if engine.dialect.name == "postgresql":
        # What autovacuum does after a bulk load; without statistics the planner scans the traffic table.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("ANALYZE")
    return {"traffic_s": traffic_s, "judge_scores": len(judged)}


def _judge_score(row: dict[str, Any]) -> dict[str, Any]:
    value = 0.6 if row["variant"] == "canary" else 0.8
    return {"created_at": row["created_at"], "traffic_id": row["id"], "metric": "helpfulness", "rubric_hash": "r",
            "judges": "judge", "value": value, "passed": value >= 0.7, "threshold": 0.7, "spread": 0.0,
            "cached": False, "error": None, "details": {}}


def _runs(engine: sa.Engine, end: datetime) -> None:
    """Two runs of 2,000 cases x 2 repeats using two versions of prompt-0, the first one in production."""
    store = RunStore(engine)
    for number, (version, exit_status) in enumerate((("a" * 16, 0), ("b" * 16, 1))):
        run_id = store.start_run(
            {"git_commit": "abc", "git_branch": "main", "git_dirty": False, "harness_version": "0.1.0",
             "machine": {}, "started_at": end - timedelta(hours=10 - number)},
            label=f"run-{number}", prompt_versions={PROMPTS[0]: version},
        )
        results = [
            {"suite": f"suite-{case % 4}", "case_id": f"c{case}", "repeat": repeat, "inputs": {"q": case},
             "output": {"text": "x"}, "passed": (case + number) % 17 != 0,
             "scores": [{"name": "exact", "value": 1.0, "passed": True, "threshold": 1.0}]}
            for case in range(2_000) for repeat in range(2)
        ]
        store.add_case_results(run_id, results)
        store.finish_run(run_id, exit_status=exit_status, suites={f"suite-{i}": {"prompt": PROMPTS[0]} for i in range(4)})
        if number == 0:
            store.save_baseline("main", run_id)
        store.record_prompt_versions({PROMPTS[0]: (version, None)})
        store_prompt_source(engine, PROMPTS[0], version, f"[SYSTEM]\nversion {version}\n")
    promote(engine, PROMPTS[0], version="a" * 16, actor="bench")


def render_times(url: str, folder: Path, repeat: int) -> dict[str, list[float]]:
    """Seconds per render of each page, for a signed-in lead."""
    from streamlit.testing.v1 import AppTest

    config = folder / "tollgate.yaml"
    config.write_text(yaml.safe_dump({
        "database_url": url,
        "dashboard": {"users": {"lead": {"role": "lead", "password_hash": hash_password("bench-password")}}},
        "releases": {"prompts_dir": str(folder / "prompts")},
    }))
    os.environ["TOLLGATE_CONFIG"] = str(config)  # the documented way to point the dashboard (in-process) at a file
    app = str(Path(__file__).parents[1] / "dashboards" / "app.py")
    at = AppTest.from_file(app, default_timeout=120).run()
    at.text_input(key="sign_in_name").set_value("lead")
    at.text_input(key="sign_in_password").set_value("bench-password")
    at.button[0].click().run()
    times: dict[str, list[float]] = {}
    for page in PAGES:
        at.switch_page(f"pages/{page}.py").run()  # warm: imports and the engine's first connections
        if at.exception:
            raise SystemExit(f"{page}: {at.exception[0].message}")
        times[page] = []
        for _ in range(repeat):
            began = time.perf_counter()
            at.run()
            times[page].append(time.perf_counter() - began)
    dispose_engines()
    return times


def report(label: str, times: dict[str, list[float]]) -> None:
    print(f"\n{label}: page render, seconds (median of {len(next(iter(times.values())))}, worst)")
    for page, values in times.items():
        verdict = "ok" if statistics.median(values) <= 2.0 else "OVER 2 s"
        print(f"  {page:<14} {statistics.median(values):6.3f}  {max(values):6.3f}  {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--postgres", help="also seed this (empty) PostgreSQL database and time the pages there")
    parser.add_argument("--keep", help="SQLite file to seed and keep (reused as is when it exists)")
    parser.add_argument("--seeded", action="store_true", help="the --postgres database is already seeded")
    args = parser.parse_args()
    apply_offline_env()  # quiet and offline, Streamlit usage stats included
    end = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        path = Path(args.keep) if args.keep else folder / "dashboard.db"
        targets = [("SQLite", f"sqlite:///{path}", args.keep is not None and path.exists())]
        if args.postgres:
            targets.append(("PostgreSQL", args.postgres, args.seeded))
        for label, url, reuse in targets:
            if not reuse:
                engine = open_database(url)
                figures = seed(engine, args.rows, args.days, end)
                engine.dispose()
                print(f"{label}: seeded {args.rows:,} requests over {args.days:g} days in {figures['traffic_s']:.1f} s "
                      f"({args.rows / figures['traffic_s']:,.0f} rows/s, rollups and review queue included), "
                      f"{figures['judge_scores']:,} judge scores, 2 runs x 4,000 case results")
            report(label, render_times(url, folder, args.repeat))


if __name__ == "__main__":
    main()
