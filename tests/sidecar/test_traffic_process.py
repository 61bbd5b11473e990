"""The traffic log with its writer in a child process: rows through the child, a killed child, shutdown,
overflow, the merged counters, and the sidecar process staying free of the database stack."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from core.database import open_database
from core.settings import Settings
from sidecar.traffic import ProcessTrafficLog, TrafficLog, create_traffic_log
from sidecar.traffic.wire import decode_batch, encode_batch
from tests.sidecar.test_traffic_finaliser import chat_raw, make_settings, stream_raw
from tests.sidecar.test_traffic_writer import count_rows, distinct_requests, spool_files, stored, wait_for

READY_TIMEOUT_S = 60.0


@pytest.fixture
def read_engine(db_url: str) -> Iterator[sa.Engine]:
    engine = open_database(db_url)
    yield engine
    engine.dispose()


def started(settings: Settings) -> ProcessTrafficLog:
    log = ProcessTrafficLog(settings).start()
    assert log.wait_ready(READY_TIMEOUT_S), "the writer process did not report ready"
    return log


def replay_leftovers(settings: Settings) -> None:
    """Store whatever a test left in the spool, the way the next start of a sidecar would."""
    if spool_files(settings):
        with TrafficLog(settings) as log:
            wait_for(lambda: not spool_files(settings))
        assert log.stats.failed == 0


def test_rows_are_written_by_the_child_with_usage_cost_and_redaction(
    tmp_path: Path, db_url: str, read_engine: sa.Engine
) -> None:
    settings = make_settings(tmp_path, db_url)
    log = started(settings)
    writer_pid = log.writer_pid
    assert writer_pid is not None and writer_pid != os.getpid()
    log.submit(chat_raw(1))
    log.submit(stream_raw(2))
    log.submit(chat_raw(3, model="acme/unpriced-model-1b", usage=False))
    log.close()
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
        "sent": 3,
        "in_flight": 0,
        "overflowed": 0,
        "spooled_in_parent": 0,
        "writer_restarts": 0,
    }
    first, second, third = stored(read_engine)
    assert (first.tokens_in, first.tokens_out, first.usage_estimated) == (12, 5, False)
    assert first.cost_usd == pytest.approx((12 * 3.0 + 5 * 15.0) / 1e6)
    assert "[EMAIL]" in first.request_body and "ana@example.com" not in first.request_body
    assert (second.stream, second.tokens_out, second.response_body) == (
        True,
        9,
        "The answer is 42 (call [PHONE]).",
    )
    assert third.usage_estimated is True and third.cost_usd is None
    # Row ids come from the sidecar: one prefix per log, then the record's number.
    assert len({row.id[:16] for row in (first, second, third)}) == 1
    assert sorted(int(row.id[16:], 16) for row in (first, second, third)) == [0, 1, 2]


def test_close_drains_everything_queued(tmp_path: Path, db_url: str, read_engine: sa.Engine) -> None:
    # A long flush interval and a batch larger than the load: only close() can make these rows land.
    settings = make_settings(tmp_path, db_url, batch_size=10_000, flush_interval_s=3600)
    log = started(settings)
    for index in range(250):
        log.submit(chat_raw(index))
    assert log.stats.queue_depth == 250 and log.stats.sent == 0
    log.close()
    assert count_rows(read_engine) == 250
    assert (log.stats.written, log.stats.sent, log.stats.queue_depth) == (250, 250, 0)
    assert spool_files(settings) == []
    assert log.writer_pid is None


def test_sigkill_of_the_child_loses_nothing_and_a_new_child_takes_over(
    tmp_path: Path, db_url: str, read_engine: sa.Engine
) -> None:
    settings = make_settings(tmp_path, db_url, batch_size=20, flush_interval_s=0.01)
    log = started(settings)
    first_pid = log.writer_pid
    assert first_pid is not None
    for index in range(1_500):
        log.submit(chat_raw(index))
        if index == 600:
            os.kill(first_pid, signal.SIGKILL)
        if index % 50 == 0:
            time.sleep(0.005)  # a steady stream rather than one burst
    wait_for(lambda: log.writer_pid not in (None, first_pid))
    log.close()
    stats = log.stats
    assert stats.writer_restarts >= 1
    assert stats.submitted == 1_500 and stats.failed == 0
    assert stats.written + stats.spooled == 1_500
    replay_leftovers(settings)
    assert count_rows(read_engine) == 1_500
    assert distinct_requests(read_engine) == 1_500


def test_a_batch_stored_and_spooled_again_is_one_row(
    tmp_path: Path, db_url: str, read_engine: sa.Engine
) -> None:
    # What happens when a child stores a batch and dies before acknowledging it: the sidecar spools
    # the same batch again. The row ids travel with the batch, so the replay skips those rows.
    settings = make_settings(tmp_path, db_url)
    payload = encode_batch(7, "ab" * 8, 100, [chat_raw(index) for index in range(5)])
    with TrafficLog(settings) as log:
        log.write(decode_batch(payload).records)
        log.spool(decode_batch(payload).records)
        log.seal_spool()
    assert log.stats.written == 5 and log.stats.spooled == 5
    replay_leftovers(settings)
    assert count_rows(read_engine) == 5
    assert sorted(row.id for row in stored(read_engine)) == [f"{'ab' * 8}{n:016x}" for n in range(100, 105)]


def test_overflow_is_spooled_in_the_sidecar_and_counted(
    tmp_path: Path, db_url: str, read_engine: sa.Engine
) -> None:
    settings = make_settings(tmp_path, db_url, queue_size=5, batch_size=1_000, flush_interval_s=3600)
    log = started(settings)
    for index in range(100):
        log.submit(chat_raw(index))
    log.close()
    stats = log.stats
    assert (stats.submitted, stats.overflowed, stats.spooled_in_parent) == (100, 95, 95)
    assert (stats.written, stats.spooled, stats.failed, stats.queue_depth) == (5, 95, 0, 0)
    on_disk = b"".join(path.read_bytes() for path in spool_files(settings))
    assert on_disk.count(b"\n") == 95 and b"ana@example.com" not in on_disk
    replay_leftovers(settings)
    assert distinct_requests(read_engine) == 100


def test_the_childs_failures_are_reported_back(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, sqlite_url)
    broken = chat_raw(1)
    broken.status = "not a status"  # type: ignore[assignment]
    with ProcessTrafficLog(settings) as log:
        log.submit(broken)
        log.submit(chat_raw(2))
    assert (log.stats.submitted, log.stats.written, log.stats.failed) == (2, 1, 1)


def test_the_child_ignores_sigterm_and_sigint_and_finishes_its_work(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, sqlite_url, batch_size=10_000, flush_interval_s=3600)
    log = started(settings)
    pid = log.writer_pid
    assert pid is not None
    os.kill(pid, signal.SIGTERM)
    os.kill(pid, signal.SIGINT)
    for index in range(20):
        log.submit(chat_raw(index))
    assert log.writer_pid == pid
    log.close()
    assert (log.stats.written, log.stats.writer_restarts, log.stats.spooled) == (20, 0, 0)


def test_the_child_drains_and_exits_when_the_sidecar_dies(tmp_path: Path, sqlite_url: str) -> None:
    script = textwrap.dedent(
        f"""
        import os, signal, time
        from tests.sidecar.test_traffic_finaliser import chat_raw, make_settings
        from pathlib import Path
        from sidecar.traffic import ProcessTrafficLog
        log = ProcessTrafficLog(make_settings(Path({str(tmp_path)!r}), {sqlite_url!r}, flush_interval_s=0.01)).start()
        assert log.wait_ready(60)
        for index in range(30):
            log.submit(chat_raw(index))
        while log.stats.sent < 30:
            time.sleep(0.01)
        print(log.writer_pid, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    parent = subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parents[2],
    )
    assert parent.returncode == -signal.SIGKILL, parent.stderr
    child_pid = int(parent.stdout.split()[0])
    wait_for(lambda: not _running(child_pid))
    engine = sa.create_engine(sqlite_url)
    try:
        assert count_rows(engine) == 30
    finally:
        engine.dispose()


def test_submit_after_close_is_spooled_not_lost(tmp_path: Path, db_url: str, read_engine: sa.Engine) -> None:
    settings = make_settings(tmp_path, db_url)
    log = started(settings)
    log.close()
    log.submit(chat_raw(7))
    assert (log.stats.submitted, log.stats.spooled, log.stats.overflowed) == (1, 1, 0)
    replay_leftovers(settings)
    assert [row.request_id for row in stored(read_engine)] == ["req-7"]


def test_close_without_start_spools_what_was_submitted(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, sqlite_url)
    log = ProcessTrafficLog(settings)
    for index in range(3):
        log.submit(chat_raw(index))
    log.close()
    assert (log.stats.submitted, log.stats.spooled_in_parent, log.stats.queue_depth) == (3, 3, 0)


def test_the_factory_follows_the_writer_setting(tmp_path: Path) -> None:
    assert isinstance(create_traffic_log(make_settings(tmp_path)), ProcessTrafficLog)
    assert isinstance(create_traffic_log(make_settings(tmp_path, writer="thread")), TrafficLog)


def test_the_request_path_does_not_load_the_database_stack() -> None:
    # The point of the child process: SQLAlchemy, the tables and the price book stay out of the sidecar.
    code = (
        "import sys, sidecar.app, sidecar.handlers, sidecar.server, sidecar.traffic.process;"
        "print(sorted(m for m in ('sqlalchemy', 'sqlmodel', 'alembic', 'litellm', 'core.pricing') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # an unreaped zombie has finished
