"""The traffic log end to end on SQLite and PostgreSQL: batches, spool on overflow and outage, replay."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from datetime import UTC
from pathlib import Path

import pytest
import sqlalchemy as sa

from core.database import open_database
from core.settings import Settings
from sidecar.traffic import TrafficLog, TrafficStats
from sidecar.traffic.store import TRAFFIC_TABLE
from tests.sidecar.test_traffic_finaliser import chat_raw, make_settings, stream_raw

UNREACHABLE_URL = "postgresql+psycopg://postgres@127.0.0.1:1/x"


@pytest.fixture
def read_engine(db_url: str) -> Iterator[sa.Engine]:
    engine = open_database(db_url)
    yield engine
    engine.dispose()


def stored(engine: sa.Engine) -> list[sa.Row]:
    with engine.connect() as connection:
        return list(connection.execute(sa.select(TRAFFIC_TABLE).order_by(TRAFFIC_TABLE.c.request_id)))


def count_rows(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(sa.text("SELECT COUNT(*) FROM traffic")).scalar_one())


def distinct_requests(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(sa.text("SELECT COUNT(DISTINCT request_id) FROM traffic")).scalar_one())


def spool_files(settings: Settings) -> list[Path]:
    return sorted(settings.spool_dir.glob("traffic-*.jsonl"))


def wait_for(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def test_rows_are_written_with_usage_cost_and_redaction(
    tmp_path: Path, db_url: str, read_engine: sa.Engine
) -> None:
    settings = make_settings(tmp_path, db_url)
    raw = chat_raw(1)
    with TrafficLog(settings) as log:
        log.submit(raw)
        log.submit(stream_raw(2))
        log.submit(chat_raw(3, model="acme/unpriced-model-1b", usage=False))
    assert log.stats == TrafficStats(submitted=3, written=3)
    assert log.stats.as_dict() == {
        "submitted": 3,
        "written": 3,
        "spooled": 0,
        "replayed": 0,
        "failed": 0,
        "queue_depth": 0,
        "unwritable": 0,
        "shed": 0,
        "refused": 0,
    }
    first, second, third = stored(read_engine)
    assert (first.tokens_in, first.tokens_out, first.usage_estimated) == (12, 5, False)
    assert first.cost_usd == pytest.approx((12 * 3.0 + 5 * 15.0) / 1e6)
    assert "[EMAIL]" in first.request_body and "ana@example.com" not in first.request_body
    assert first.redactions == 1 and first.user == "u1" and first.feature == "search"
    created = first.created_at if first.created_at.tzinfo else first.created_at.replace(tzinfo=UTC)
    assert created.timestamp() == pytest.approx(raw.started_at, abs=1e-3)
    assert (second.stream, second.tokens_out, second.response_body) == (
        True,
        9,
        "The answer is 42 (call [PHONE]).",
    )
    assert second.tpot_ms == pytest.approx(10.0)
    assert third.usage_estimated is True and third.tokens_out > 0
    assert third.cost_usd is None


def test_close_flushes_everything_queued(tmp_path: Path, db_url: str, read_engine: sa.Engine) -> None:
    # A long flush interval and a batch larger than the load: only close() can make these rows land.
    settings = make_settings(tmp_path, db_url, batch_size=10_000, flush_interval_s=3600)
    log = TrafficLog(settings).start()
    for index in range(250):
        log.submit(chat_raw(index))
    log.close()
    assert count_rows(read_engine) == 250
    assert log.stats == TrafficStats(submitted=250, written=250)
    assert spool_files(settings) == []


def test_overflow_spools_and_replay_stores_every_row_once(
    tmp_path: Path, db_url: str, read_engine: sa.Engine
) -> None:
    settings = make_settings(tmp_path, db_url, queue_size=1, batch_size=1)
    log = TrafficLog(settings, replay_interval_s=3600).start()
    for index in range(300):
        log.submit(chat_raw(index))
    log.close()
    first = log.stats
    assert first.submitted == 300 and first.failed == 0
    assert first.spooled > 0
    assert first.written + first.spooled == 300

    with TrafficLog(settings) as again:  # replays the spool on start
        wait_for(lambda: again.stats.replayed + first.replayed == first.spooled)
    assert count_rows(read_engine) == 300
    assert distinct_requests(read_engine) == 300
    assert spool_files(settings) == []


def test_spool_is_replayed_periodically_while_running(
    tmp_path: Path, db_url: str, read_engine: sa.Engine
) -> None:
    settings = make_settings(tmp_path, db_url, queue_size=1, batch_size=1)
    log = TrafficLog(settings, replay_interval_s=0.05).start()
    for index in range(200):
        log.submit(chat_raw(index))
    wait_for(lambda: log.stats.spooled > 0 and log.stats.replayed == log.stats.spooled)
    wait_for(lambda: count_rows(read_engine) == 200)
    log.close()
    assert log.stats.written + log.stats.spooled == 200
    assert count_rows(read_engine) == 200


def test_database_down_spools_then_replays_exactly_once(
    tmp_path: Path, db_url: str, read_engine: sa.Engine
) -> None:
    down = make_settings(tmp_path, UNREACHABLE_URL)
    with TrafficLog(down) as log:
        for index in range(120):
            log.submit(chat_raw(index, content="reach me on +44 20 7946 0958"))
    assert log.stats == TrafficStats(submitted=120, spooled=120)
    files = spool_files(down)
    assert files
    on_disk = b"".join(path.read_bytes() for path in files)
    assert on_disk.count(b"\n") == 120
    # Redacted before touching disk.
    assert b"ana@example.com" not in on_disk and b"20 7946 0958" not in on_disk
    assert on_disk.count(b"[PHONE]") == 120 and on_disk.count(b"[EMAIL]") == 120
    backup = tmp_path / "spool-copy"
    shutil.copytree(down.spool_dir, backup)

    up = make_settings(tmp_path, db_url)
    with TrafficLog(up) as first_replay:
        wait_for(lambda: first_replay.stats.replayed == 120)
    assert count_rows(read_engine) == 120
    assert spool_files(up) == []

    shutil.copytree(backup, up.spool_dir, dirs_exist_ok=True)  # the same rows again: must not duplicate
    with TrafficLog(up) as second_replay:
        wait_for(lambda: second_replay.stats.replayed == 120)
    assert count_rows(read_engine) == 120
    assert distinct_requests(read_engine) == 120
    assert spool_files(up) == []


def test_database_that_comes_back_is_used_again(tmp_path: Path, db_url: str, read_engine: sa.Engine) -> None:
    settings = make_settings(tmp_path, db_url)
    attempts: list[int] = []

    def flaky_factory() -> sa.Engine:
        attempts.append(1)
        if len(attempts) == 1:
            raise sa.exc.OperationalError("connect", {}, Exception("connection refused"))
        return open_database(db_url)

    with TrafficLog(settings, flaky_factory, replay_interval_s=0.05) as log:
        log.submit(chat_raw(1))
        wait_for(lambda: log.stats.spooled == 1)
        # Without new traffic, the writer retries after its backoff and replays what it spooled.
        wait_for(lambda: log.stats.replayed == 1)
        log.submit(chat_raw(2))
    assert len(attempts) == 2
    assert log.stats == TrafficStats(submitted=2, written=1, spooled=1, replayed=1)
    assert [row.request_id for row in stored(read_engine)] == ["req-1", "req-2"]


def test_submit_after_close_is_spooled_not_lost(tmp_path: Path, db_url: str, read_engine: sa.Engine) -> None:
    settings = make_settings(tmp_path, db_url)
    log = TrafficLog(settings).start()
    log.close()
    log.submit(chat_raw(7))
    assert log.stats == TrafficStats(submitted=1, spooled=1)
    with TrafficLog(settings) as again:
        wait_for(lambda: again.stats.replayed == 1)
    assert [row.request_id for row in stored(read_engine)] == ["req-7"]


def test_rows_that_cannot_be_spooled_are_counted_as_failed(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, UNREACHABLE_URL)
    settings.data_dir.mkdir(parents=True)
    settings.spool_dir.write_text("a file where the spool folder should be")
    with TrafficLog(settings) as log:
        for index in range(5):
            log.submit(chat_raw(index))
    assert log.stats == TrafficStats(submitted=5, failed=5)


def test_a_malformed_record_is_counted_and_does_not_stop_the_others(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, sqlite_url)
    broken = chat_raw(1)
    broken.status = "not a status"  # type: ignore[assignment]
    with TrafficLog(settings) as log:
        log.submit(broken)
        log.submit(chat_raw(2))
    assert log.stats == TrafficStats(submitted=2, written=1, failed=1)


@pytest.mark.asyncio
async def test_aclose_drains_without_blocking_the_loop(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, sqlite_url, flush_interval_s=3600, batch_size=1000)
    log = TrafficLog(settings).start()
    for index in range(10):
        log.submit(chat_raw(index))
    await log.aclose()
    assert log.stats == TrafficStats(submitted=10, written=10)
    engine = sa.create_engine(sqlite_url)
    try:
        assert count_rows(engine) == 10
    finally:
        engine.dispose()


def test_close_without_start_still_stores_what_was_submitted(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, sqlite_url)
    log = TrafficLog(settings)
    for index in range(3):
        log.submit(chat_raw(index))
    log.close()
    assert log.stats == TrafficStats(submitted=3, written=3)
    assert log.stats.as_dict() == {
        "submitted": 3,
        "written": 3,
        "spooled": 0,
        "replayed": 0,
        "failed": 0,
        "queue_depth": 0,
        "unwritable": 0,
        "shed": 0,
        "refused": 0,
    }
