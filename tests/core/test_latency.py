"""Latency percentiles from rollups, checked against exact percentiles of the same traffic (numpy)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from core.database import open_database
from core.latency import (
    GROWTH,
    MAX_MS,
    MIN_MS,
    RELATIVE_ERROR,
    LatencyQueryError,
    bucket_of,
    bucket_value,
    estimate_percentiles,
    latency_percentiles,
    latency_percentiles_over_time,
    record_latencies,
)

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
MODELS = ("small", "large")
PROMPTS = ("search", "book", None)
SEGMENTS = ("free", "pro")
QUANTILES = (0.5, 0.95, 0.99)


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    engine = open_database(db_url)
    yield engine
    engine.dispose()


def traffic(count: int, seed: int = 7, minutes: int = 300) -> list[dict[str, Any]]:
    """Random rows as the finaliser makes them: lognormal latencies, some failures, some without TTFT."""
    rng = np.random.default_rng(seed)
    rows = []
    for index in range(count):
        model = MODELS[index % 2]
        latency = float(rng.lognormal(math.log(400 if model == "large" else 80), 0.8))
        rows.append(
            {
                "created_at": START + timedelta(seconds=float(rng.uniform(0, minutes * 60))),
                "served_model": model,
                "requested_model": "alias",
                "prompt_name": PROMPTS[int(rng.integers(3))],
                "segment": SEGMENTS[int(rng.integers(2))],
                "status": 200 if rng.random() > 0.05 else 502,
                "error_class": None,
                "ttft_ms": latency * float(rng.uniform(0.05, 0.5)) if rng.random() > 0.3 else None,
                "latency_ms": latency,
            }
        )
    return rows


def store(engine: sa.Engine, rows: list[dict[str, Any]]) -> None:
    with engine.begin() as connection:
        for start in range(0, len(rows), 500):
            record_latencies(connection, rows[start : start + 500])


def exact(rows: list[dict[str, Any]], column: str, quantile: float) -> float:
    """Nearest-rank percentile of the successful rows, straight from the values."""
    values = np.sort([row[column] for row in rows if row["status"] < 400 and row[column] is not None])
    return float(values[math.ceil(round(quantile * len(values), 9)) - 1])


def assert_close(estimate: float, truth: float) -> None:
    assert abs(estimate - truth) / truth <= RELATIVE_ERROR + 1e-9, (estimate, truth)


def test_buckets_cover_values_within_the_stated_bound() -> None:
    values = np.geomspace(MIN_MS, MAX_MS, 5_000)
    for value in values:
        bucket = bucket_of(float(value))
        assert GROWTH**bucket <= value * (1 + 1e-12) and value < GROWTH ** (bucket + 1) * (1 + 1e-12)
        assert_close(bucket_value(bucket), float(value))
    assert bucket_of(0.0) == bucket_of(MIN_MS / 10) == bucket_of(MIN_MS)
    assert bucket_of(MAX_MS * 100) == bucket_of(MAX_MS)
    assert round(RELATIVE_ERROR, 4) == 0.0488


def test_nearest_rank_walks_the_cumulative_counts() -> None:
    counts = {10: 50, 20: 45, 30: 4, 40: 1}
    result = estimate_percentiles(counts, (0.5, 0.95, 0.99, 1.0))
    assert result == {
        "count": 100,
        "p50": bucket_value(10),
        "p95": bucket_value(20),
        "p99": bucket_value(30),
        "p100": bucket_value(40),
    }
    assert estimate_percentiles({}) == {"count": 0, "p50": None, "p95": None, "p99": None}


@pytest.mark.parametrize("metric, column", [("latency", "latency_ms"), ("ttft", "ttft_ms")])
def test_percentiles_match_the_traffic_within_the_bucket_bound(
    engine: sa.Engine, metric: str, column: str
) -> None:
    rows = traffic(3_000)
    store(engine, rows)
    result = latency_percentiles(
        engine,
        metric,  # type: ignore[arg-type]
        since=START,
        until=START + timedelta(hours=5),
        quantiles=QUANTILES,
    )
    ok = [row for row in rows if row["status"] < 400 and row[column] is not None]
    assert result["count"] == len(ok)
    for quantile in QUANTILES:
        assert_close(result[f"p{quantile * 100:g}"], exact(rows, column, quantile))


def test_filters_select_the_matching_requests_only(engine: sa.Engine) -> None:
    rows = traffic(3_000, seed=11)
    store(engine, rows)
    until = START + timedelta(hours=5)
    cases: list[tuple[dict[str, Any], Any]] = [
        ({"model": "large"}, lambda row: row["served_model"] == "large"),
        (
            {"prompt": "book", "segment": "pro"},
            lambda row: row["prompt_name"] == "book" and row["segment"] == "pro",
        ),
        ({"prompt": ""}, lambda row: row["prompt_name"] is None),
    ]
    for filters, keep in cases:
        subset = [row for row in rows if keep(row)]
        result = latency_percentiles(engine, "latency", since=START, until=until, **filters)
        assert result["count"] == sum(row["status"] < 400 for row in subset)
        for quantile in QUANTILES:
            assert_close(result[f"p{quantile * 100:g}"], exact(subset, "latency_ms", quantile))
    assert latency_percentiles(engine, "latency", since=START, until=until, model="nope")["p99"] is None


def test_a_range_with_ragged_edges_counts_exactly_its_minutes(engine: sa.Engine) -> None:
    rows = traffic(3_000, seed=3)
    store(engine, rows)
    since, until = START + timedelta(minutes=37), START + timedelta(hours=3, minutes=12)
    inside = [row for row in rows if since <= row["created_at"] < until]
    # Hour rows cover 10:00-12:00, minute rows 09:37-10:00 and 12:00-12:12: nothing counted twice.
    result = latency_percentiles(engine, "latency", since=since, until=until)
    assert result["count"] == sum(row["status"] < 400 for row in inside)
    assert_close(result["p95"], exact(inside, "latency_ms", 0.95))


def test_a_range_of_days_mixes_day_hour_and_minute_rows_without_overlap(engine: sa.Engine) -> None:
    rows = traffic(4_000, seed=13, minutes=4 * 1440)
    store(engine, rows)
    # 09:00 + 14h41m is 23:41 on day 0, so: minutes to 00:00, whole days 1-2, hours and minutes of day 3.
    since = START + timedelta(hours=14, minutes=41)
    until = START + timedelta(days=3, hours=7, minutes=5, seconds=30)
    inside = [row for row in rows if since <= row["created_at"] < until]
    for metric, column in (("latency", "latency_ms"), ("ttft", "ttft_ms")):
        result = latency_percentiles(engine, metric, since=since, until=until)  # type: ignore[arg-type]
        assert result["count"] == sum(row["status"] < 400 and row[column] is not None for row in inside)
        for quantile in QUANTILES:
            assert_close(result[f"p{quantile * 100:g}"], exact(inside, column, quantile))
    daily = latency_percentiles_over_time(engine, "latency", since=START, until=until, step="1d", group_by=())
    assert [row["start"] for row in daily] == [
        START.replace(hour=0) + timedelta(days=day) for day in range(4)
    ]
    assert sum(row["count"] for row in daily) == sum(
        row["status"] < 400 for row in rows if START <= row["created_at"] < until
    )


@pytest.mark.parametrize("step, minutes", [("1h", 60), ("15m", 15), (timedelta(hours=2), 120)])
def test_over_time_buckets_by_step_and_groups(engine: sa.Engine, step: Any, minutes: int) -> None:
    rows = traffic(4_000, seed=5)
    store(engine, rows)
    since, until = START + timedelta(minutes=30), START + timedelta(hours=5)
    result = latency_percentiles_over_time(
        engine, "latency", since=since, until=until, step=step, group_by=("model", "segment")
    )
    expected: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in rows:
        if since <= row["created_at"] < until and row["status"] < 400:
            minute = int(row["created_at"].timestamp()) // 60
            start = datetime.fromtimestamp(minute // minutes * minutes * 60, UTC)
            expected.setdefault((start, row["served_model"], row["segment"]), []).append(row)
    assert [(row["start"], row["model"], row["segment"]) for row in result] == sorted(expected)
    for row in result:
        group = expected[(row["start"], row["model"], row["segment"])]
        assert row["count"] == len(group)
        assert_close(row["p50"], exact(group, "latency_ms", 0.5))
        assert_close(row["p99"], exact(group, "latency_ms", 0.99))


def test_upserts_add_to_existing_counts(engine: sa.Engine) -> None:
    rows = traffic(400, seed=9)
    store(engine, rows)
    store(engine, rows)
    result = latency_percentiles(engine, "latency", since=START, until=START + timedelta(hours=5))
    assert result["count"] == 2 * sum(row["status"] < 400 for row in rows)


def test_bad_questions_get_a_clear_error(engine: sa.Engine) -> None:
    window: dict[str, Any] = {"since": START, "until": START + timedelta(hours=1)}
    with pytest.raises(LatencyQueryError, match="unknown latency metric"):
        latency_percentiles(engine, "tpot", **window)  # type: ignore[arg-type]
    with pytest.raises(LatencyQueryError, match="step"):
        latency_percentiles_over_time(engine, "latency", step="1w", **window)
    with pytest.raises(LatencyQueryError, match="group"):
        latency_percentiles_over_time(engine, "latency", group_by=("user",), **window)
    with pytest.raises(LatencyQueryError, match="timezone"):
        latency_percentiles(engine, "latency", since=datetime(2026, 1, 1), until=datetime(2026, 1, 2))
