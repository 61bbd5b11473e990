"""Latency percentiles from rollups vs a brute-force scan of the traffic table, on SQLite.

Run: python benchmarks/latency_rollups.py [--rows 1000000] [--days 7] [--postgres URL]
Writes synthetic traffic through the real insert path (`insert_rows`: traffic rows plus rollups, batches
of 500, as the writer does), then times percentile queries on the rollups and the same percentiles
computed by reading every matching traffic row and sorting it (numpy). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from core.database import open_database
from core.latency import RELATIVE_ERROR, latency_percentiles, latency_percentiles_over_time, record_latencies
from sidecar.traffic.store import TRAFFIC_TABLE, insert_rows

MODELS = [f"model-{index}" for index in range(5)]
PROMPTS = [f"prompt-{index}" for index in range(8)]
SEGMENTS = ["free", "pro", "enterprise"]
BATCH = 500
CHUNK = 20_000
END = datetime(2026, 11, 27, tzinfo=UTC)


def synthetic_rows(count: int, days: float, seed: int = 1) -> Iterator[list[dict[str, Any]]]:
    """Finalised traffic rows in chunks: lognormal latencies per model, 3 % failures, 70 % streamed."""
    rng = np.random.default_rng(seed)
    start = END.timestamp() - days * 86400
    for offset in range(0, count, CHUNK):
        size = min(CHUNK, count - offset)
        stamps = np.sort(rng.uniform(start, END.timestamp(), size))
        models = rng.integers(len(MODELS), size=size)
        latency = rng.lognormal(np.log(100.0 * (models + 1)), 0.7)
        ttft = np.where(rng.random(size) < 0.7, latency * rng.uniform(0.05, 0.4, size), np.nan)
        prompts, segments = rng.integers(len(PROMPTS), size=size), rng.integers(len(SEGMENTS), size=size)
        failed = rng.random(size) < 0.03
        yield [
            _row(
                offset + index,
                stamps[index],
                MODELS[models[index]],
                PROMPTS[prompts[index]],
                SEGMENTS[segments[index]],
                float(latency[index]),
                float(ttft[index]),
                bool(failed[index]),
            )
            for index in range(size)
        ]


def _row(
    index: int, stamp: float, model: str, prompt: str, segment: str, latency: float, ttft: float, failed: bool
) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(column.name for column in TRAFFIC_TABLE.columns)
    row.update(
        id=f"r{index}",
        request_id=f"req-{index}",
        created_at=datetime.fromtimestamp(stamp, UTC),
        endpoint="chat.completions",
        requested_model=model,
        served_model=model,
        prompt_name=prompt,
        segment=segment,
        stream=not math.isnan(ttft),
        status=502 if failed else 200,
        error_class="upstream_error" if failed else None,
        redactions=0,
        usage_estimated=False,
        ttft_ms=None if math.isnan(ttft) else ttft,
        latency_ms=latency,
        attempts=1,
    )
    return row


def load(engine: sa.Engine, rollups_only: sa.Engine, rows: int, days: float) -> dict[str, float]:
    """Store the rows (traffic + rollups) and, separately, only their rollups; time both."""
    insert_s = rollup_s = 0.0
    for chunk in synthetic_rows(rows, days):
        for start in range(0, len(chunk), BATCH):
            batch = chunk[start : start + BATCH]
            began = time.perf_counter()
            with engine.begin() as connection:
                insert_rows(connection, batch)
            insert_s += time.perf_counter() - began
            began = time.perf_counter()
            with rollups_only.begin() as connection:
                record_latencies(connection, batch)
            rollup_s += time.perf_counter() - began
    return {"insert_s": insert_s, "rollup_s": rollup_s}


def timed(action: Callable[[], Any], repeat: int = 5) -> tuple[float, Any]:
    """Median milliseconds of `repeat` runs, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        began = time.perf_counter()
        result = action()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times), result


def brute_force(engine: sa.Engine, since: datetime, until: datetime, model: str | None) -> dict[str, Any]:
    """What a query without rollups does: read every matching latency and sort them."""
    query = sa.select(TRAFFIC_TABLE.c.latency_ms).where(
        TRAFFIC_TABLE.c.created_at >= since,
        TRAFFIC_TABLE.c.created_at < until,
        TRAFFIC_TABLE.c.status < 400,
        TRAFFIC_TABLE.c.error_class.is_(None),
    )
    if model is not None:
        query = query.where(TRAFFIC_TABLE.c.served_model == model)
    with engine.connect() as connection:
        values = np.sort(np.fromiter(connection.execute(query).scalars(), dtype=float))
    ranks = [max(1, math.ceil(round(q * len(values), 9))) - 1 for q in (0.5, 0.95, 0.99)]
    return {
        "count": len(values),
        **{key: float(values[rank]) for key, rank in zip(("p50", "p95", "p99"), ranks)},
    }


def report(engine: sa.Engine, label: str, days: float, brute: bool) -> None:
    since = END - timedelta(days=days)
    last_hour = END - timedelta(hours=1)
    cases: list[tuple[str, Callable[[], Any], Callable[[], Any] | None]] = [
        (
            "p50/p95/p99, whole range, all traffic",
            lambda: latency_percentiles(engine, "latency", since=since, until=END),
            lambda: brute_force(engine, since, END, None),
        ),
        (
            "same, one model",
            lambda: latency_percentiles(engine, "latency", since=since, until=END, model=MODELS[2]),
            lambda: brute_force(engine, since, END, MODELS[2]),
        ),
        (
            "ragged range (:17 to :43), TTFT, one prompt+segment",
            lambda: latency_percentiles(
                engine,
                "ttft",
                since=since + timedelta(minutes=17),
                until=END - timedelta(minutes=17),
                prompt=PROMPTS[1],
                segment="pro",
            ),
            None,
        ),
        (
            "last hour, all traffic",
            lambda: latency_percentiles(engine, "latency", since=last_hour, until=END),
            lambda: brute_force(engine, last_hour, END, None),
        ),
        (
            "over time: 1h steps by model, whole range",
            lambda: len(latency_percentiles_over_time(engine, "latency", since=since, until=END, step="1h")),
            None,
        ),
        (
            "over time: 1d steps by model+prompt+segment",
            lambda: len(
                latency_percentiles_over_time(
                    engine,
                    "latency",
                    since=since,
                    until=END,
                    step="1d",
                    group_by=("model", "prompt", "segment"),
                )
            ),
            None,
        ),
        (
            "over time: 1m steps by model, last hour",
            lambda: len(
                latency_percentiles_over_time(engine, "latency", since=last_hour, until=END, step="1m")
            ),
            None,
        ),
    ]
    print(f"\n{label}: median of 5 runs (ms)")
    for name, rollup, scan in cases:
        rollup_ms, result = timed(rollup)
        line = f"  {name:<52} rollups {rollup_ms:8.1f}"
        if brute and scan is not None:
            scan_ms, truth = timed(scan, repeat=3)
            worst = max(abs(result[key] - truth[key]) / truth[key] for key in ("p50", "p95", "p99"))
            line += f"   scan {scan_ms:8.1f}   counts {result['count']}/{truth['count']}   worst error {worst:.2%}"
        elif isinstance(result, int):
            line += f"   ({result} result rows)"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument(
        "--postgres", help="also load the rollups into this PostgreSQL URL and time queries there"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        engine = open_database(f"sqlite:///{Path(folder) / 'traffic.db'}")
        rollups_only = open_database(f"sqlite:///{Path(folder) / 'rollups.db'}")
        figures = load(engine, rollups_only, args.rows, args.days)
        with engine.connect() as connection:
            rollup_rows = connection.execute(sa.text("SELECT COUNT(*) FROM latency_rollup")).scalar_one()
        print(
            f"{args.rows:,} requests over {args.days:g} days, {len(MODELS)} models x {len(PROMPTS)} prompts "
            f"x {len(SEGMENTS)} segments; {rollup_rows:,} rollup rows (minute + hour + day)"
        )
        print(
            f"  insert_rows (traffic + rollups): {figures['insert_s']:.1f} s "
            f"({args.rows / figures['insert_s']:,.0f} rows/s); rollups alone: {figures['rollup_s']:.1f} s "
            f"({figures['rollup_s'] / args.rows * 1e6:.1f} us per request)"
        )
        print(f"  stated bound: estimates within {RELATIVE_ERROR:.2%} of the exact nearest-rank percentile")
        report(engine, "SQLite", args.days, brute=True)
        if args.postgres:
            postgres = open_database(args.postgres)
            for chunk in synthetic_rows(args.rows, args.days):
                with postgres.begin() as connection:
                    record_latencies(connection, chunk)
            report(postgres, "PostgreSQL (rollups only)", args.days, brute=False)
            postgres.dispose()
        engine.dispose()
        rollups_only.dispose()


if __name__ == "__main__":
    main()
