"""Latency rollups kept by the traffic writer: same transaction as the rows, never counted twice."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from core.database import open_database
from core.latency import bucket_of, latency_percentiles
from core.tables import LatencyRollup
from sidecar.traffic import RawTraffic, TrafficLog
from tests.sidecar.test_traffic_finaliser import chat_raw, make_settings

ROLLUPS: sa.Table = LatencyRollup.__table__  # type: ignore[attr-defined]
NOW = time.time()
WINDOW: dict[str, Any] = {
    "since": datetime.fromtimestamp(NOW - 3600, UTC),
    "until": datetime.fromtimestamp(NOW + 3600, UTC),
}


@pytest.fixture
def read_engine(db_url: str) -> Iterator[sa.Engine]:
    engine = open_database(db_url)
    yield engine
    engine.dispose()


def batch(count: int, seed: int = 1) -> list[RawTraffic]:
    """Requests with random latencies and fixed row ids, as the writer process receives them."""
    rng = np.random.default_rng(seed)
    raws = []
    for index in range(count):
        latency = float(rng.lognormal(4, 1))
        raws.append(
            replace(
                chat_raw(index, model="small" if index % 3 else "large"),
                started_at=NOW - float(rng.uniform(0, 1800)),
                latency_ms=latency,
                ttft_ms=latency / 4,
                prompt_name="search",
                segment="pro" if index % 2 else "free",
                status=200 if index % 10 else 500,
                row_id=f"row-{seed}-{index}",
            )
        )
    return raws


def histogram(engine: sa.Engine) -> dict[tuple[str, str, int], int]:
    """Minute-row counts per (metric, model, bucket)."""
    query = (
        sa.select(ROLLUPS.c.metric, ROLLUPS.c.model, ROLLUPS.c.bucket, sa.func.sum(ROLLUPS.c.count))
        .where(ROLLUPS.c.span_minutes == 1)
        .group_by(ROLLUPS.c.metric, ROLLUPS.c.model, ROLLUPS.c.bucket)
    )
    with engine.connect() as connection:
        return {
            (metric, model, bucket): int(count) for metric, model, bucket, count in connection.execute(query)
        }


def histogram_of_traffic(engine: sa.Engine) -> dict[tuple[str, str, int], int]:
    """The same histogram computed by scanning the traffic table."""
    counts: dict[tuple[str, str, int], int] = {}
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT served_model, ttft_ms, latency_ms FROM traffic WHERE status < 400")
        )
        for model, ttft, latency in rows:
            for metric, value in (("ttft", ttft), ("latency", latency)):
                key = (metric, model, bucket_of(value))
                counts[key] = counts.get(key, 0) + 1
    return counts


def test_written_batches_update_the_rollups_once(tmp_path: Path, db_url: str, read_engine: sa.Engine) -> None:
    settings = make_settings(tmp_path, db_url)
    raws = batch(300)
    log = TrafficLog(settings)
    try:
        log.write(raws)
        log.write(raws[:120])  # a batch re-sent after a lost acknowledgement: same row ids
    finally:
        log.close()
    expected = histogram_of_traffic(read_engine)
    assert sum(expected.values()) == 2 * 270
    assert histogram(read_engine) == expected
    result = latency_percentiles(read_engine, "latency", model="small", **WINDOW)
    assert result["count"] == sum(1 for index in range(300) if index % 3 and index % 10)


def test_replaying_a_spool_twice_does_not_double_the_counts(
    tmp_path: Path, db_url: str, read_engine: sa.Engine
) -> None:
    settings = make_settings(tmp_path, db_url)
    raws = batch(200, seed=2)
    log = TrafficLog(settings, replay_interval_s=0.0)
    try:
        log.spool(raws)
        log.seal_spool()
        shutil.copytree(settings.spool_dir, tmp_path / "spool-copy")
        log.replay_if_due()
        assert log.stats.replayed == 200
        shutil.copytree(tmp_path / "spool-copy", settings.spool_dir, dirs_exist_ok=True)
        log.replay_if_due()
        assert log.stats.replayed == 400  # the rows were offered again...
    finally:
        log.close()
    expected = histogram_of_traffic(read_engine)
    assert sum(expected.values()) == 2 * 180  # ...but each request is stored and counted once
    assert histogram(read_engine) == expected


def test_hour_and_day_rows_agree_with_minute_rows(
    tmp_path: Path, db_url: str, read_engine: sa.Engine
) -> None:
    settings = make_settings(tmp_path, db_url)
    log = TrafficLog(settings)
    try:
        log.write(batch(150, seed=3))
    finally:
        log.close()
    query = sa.select(ROLLUPS.c.span_minutes, sa.func.sum(ROLLUPS.c.count)).group_by(ROLLUPS.c.span_minutes)
    with read_engine.connect() as connection:
        totals = {int(span): int(total) for span, total in connection.execute(query)}
    assert totals == {1: 2 * 135, 60: 2 * 135, 1440: 2 * 135}
    hours: dict[str, Any] = {
        "since": WINDOW["since"] - timedelta(minutes=WINDOW["since"].minute),
        "until": WINDOW["until"],
    }
    assert latency_percentiles(read_engine, "ttft", **hours)["count"] == 135
