"""A full disk: rows neither the database nor the spool takes are held in memory, never dropped; a full
buffer refuses new requests (503 `traffic_log_full`, before the upstream) or sheds them; when room comes
back every held row lands exactly once.

Proven twice: with an injected ENOSPC (a fake disk layer under the spool and the inserts, so it runs
anywhere) and on a real, tiny tmpfs (skipped with the reason where mounting is not allowed).
"""

from __future__ import annotations

import errno
import logging
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from core.database import open_database
from sidecar.fake_upstream import FakeUpstreamThread
from sidecar.testing import ThreadedSidecar
from sidecar.traffic import ProcessTrafficLog, TrafficLog
from sidecar.traffic import child as child_module
from sidecar.traffic import spool as spool_module
from sidecar.traffic import writer as writer_module
from sidecar.traffic.holding import HeldRows
from sidecar.traffic.record import TrafficRow
from sidecar.traffic.wire import Hello, Report, decode_report, encode_batch, encode_hello
from tests.sidecar.conftest import sidecar_settings
from tests.sidecar.test_traffic_finaliser import chat_raw, make_settings
from tests.sidecar.test_traffic_process import replay_leftovers
from tests.sidecar.test_traffic_writer import count_rows, distinct_requests, wait_for

CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": "hello"}]}


class FakeDisk:
    """While `full`, the spool's appends fail with ENOSPC and inserts fail as SQLite does on a full disk."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.full = False
        append = spool_module.Spool.append
        insert = writer_module.insert_rows

        def full_append(spool: spool_module.Spool, rows: Any) -> None:
            if self.full:
                raise OSError(errno.ENOSPC, "No space left on device")
            append(spool, rows)

        def full_insert(connection: sa.Connection, rows: Any) -> None:
            if self.full:
                raise sa.exc.OperationalError(
                    "INSERT INTO traffic", {}, sqlite3.OperationalError("database or disk is full")
                )
            insert(connection, rows)

        monkeypatch.setattr(spool_module.Spool, "append", full_append)
        monkeypatch.setattr(writer_module, "insert_rows", full_insert)


@pytest.fixture
def disk(monkeypatch: pytest.MonkeyPatch) -> FakeDisk:
    return FakeDisk(monkeypatch)


@pytest.fixture
def read_engine(sqlite_url: str) -> Iterator[sa.Engine]:
    engine = open_database(sqlite_url)
    yield engine
    engine.dispose()


def test_rows_nothing_will_store_are_held_and_all_land_once_there_is_room(
    tmp_path: Path, sqlite_url: str, disk: FakeDisk, read_engine: sa.Engine
) -> None:
    settings = make_settings(tmp_path, sqlite_url, memory_buffer_rows=10, flush_interval_s=0.01)
    with TrafficLog(settings) as log:
        assert log.admits()
        disk.full = True
        for index in range(25):
            log.submit(chat_raw(index))
        wait_for(lambda: log.unwritable == 25)
        assert not log.admits()
        assert (log.stats.written, log.stats.spooled, log.stats.failed) == (0, 0, 0)
        disk.full = False
        wait_for(lambda: log.unwritable == 0)
        assert log.admits()
    assert log.stats.failed == 0 and log.stats.written + log.stats.spooled == 25
    replay_leftovers(settings)
    assert count_rows(read_engine) == distinct_requests(read_engine) == 25


def test_shed_serves_unlogged_and_counts_what_was_not_logged(
    tmp_path: Path, sqlite_url: str, disk: FakeDisk, read_engine: sa.Engine
) -> None:
    settings = make_settings(
        tmp_path, sqlite_url, memory_buffer_rows=5, flush_interval_s=0.01, when_full="shed"
    )
    with TrafficLog(settings) as log:
        disk.full = True
        for index in range(5):
            log.submit(chat_raw(index))
        wait_for(lambda: log.unwritable == 5)
        for index in range(5, 12):
            log.submit(chat_raw(index))
        assert (log.stats.shed, log.stats.submitted) == (7, 5)
        disk.full = False
        wait_for(lambda: log.unwritable == 0)
    replay_leftovers(settings)
    assert count_rows(read_engine) == 5


def _reports_until(reports: Connection, condition: Any) -> list[Report]:
    seen: list[Report] = []
    while True:
        assert reports.poll(30), f"no report from the writer; seen {seen}"
        seen.append(decode_report(reports.recv_bytes()))
        if condition(seen[-1]):
            return seen


def test_the_writer_acknowledges_a_batch_only_once_it_is_durable(
    tmp_path: Path, sqlite_url: str, disk: FakeDisk, read_engine: sa.Engine
) -> None:
    # The child's loop, in a thread of this process so the fake disk applies: while its rows are held, the
    # batch stays unacknowledged (the sidecar keeps it and counts it against its memory buffer).
    settings = make_settings(tmp_path, sqlite_url)
    data_reader, data_writer = Pipe(duplex=False)
    report_reader, report_writer = Pipe(duplex=False)
    serving = threading.Thread(target=child_module.serve, args=(data_reader, report_writer), daemon=True)
    serving.start()
    data_writer.send_bytes(encode_hello(Hello(settings, logging.WARNING)))
    _reports_until(report_reader, lambda report: report.ready)
    disk.full = True
    data_writer.send_bytes(encode_batch(1, "cd" * 8, 0, [chat_raw(index) for index in range(3)]))
    held = _reports_until(report_reader, lambda report: report.counters[4] == 3)
    assert all(report.acknowledged is None for report in held)
    disk.full = False
    _reports_until(report_reader, lambda report: report.acknowledged == 1)
    data_writer.close()
    serving.join(30)
    assert not serving.is_alive()
    replay_leftovers(settings)
    assert count_rows(read_engine) == 3


def test_a_full_buffer_refuses_before_the_upstream_and_recovers_by_itself(
    tmp_path: Path, fake: FakeUpstreamThread, disk: FakeDisk
) -> None:
    traffic = {"writer": "thread", "memory_buffer_rows": 3, "flush_interval_s": 0.01}
    settings = sidecar_settings(
        tmp_path, {"fake-model": {"deployments": [{"base_url": fake.url}]}}, traffic=traffic
    )
    with ThreadedSidecar(settings) as proxy, httpx.Client(base_url=proxy.url, timeout=30) as client:
        traffic_log = proxy.app.runtime.traffic
        disk.full = True
        for _ in range(3):
            assert client.post("/chat/completions", json=CHAT).status_code == 200
        wait_for(lambda: not traffic_log.admits())
        upstream_calls = fake.stats()["requests_total"]
        refused = client.post("/chat/completions", json=CHAT)
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "traffic_log_full"
        assert refused.json()["error"]["type"] == "server_error"
        assert fake.stats()["requests_total"] == upstream_calls  # refused before any upstream call
        ready = httpx.get(proxy.url.removesuffix("/v1") + "/readyz")
        assert ready.status_code == 503 and ready.json()["status"] == "traffic_log_full"
        metrics = httpx.get(proxy.url.removesuffix("/v1") + "/metrics").text
        assert "tollgate_traffic_unwritable_rows 3.0" in metrics
        assert "tollgate_traffic_log_full 1.0" in metrics
        disk.full = False
        wait_for(traffic_log.admits)
        assert client.post("/chat/completions", json=CHAT).status_code == 200
        wait_for(lambda: traffic_log.stats.written + traffic_log.stats.spooled == 4)
        assert httpx.get(proxy.url.removesuffix("/v1") + "/readyz").status_code == 200
        assert traffic_log.stats.refused == 1 and traffic_log.stats.failed == 0


# -- a real full filesystem ------------------------------------------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs (needs root or CAP_SYS_ADMIN); skipped with the reason where mounting is refused."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip() or result.returncode}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _fill(path: Path) -> None:
    """Write `path` until the filesystem is full."""
    chunk = b"\0" * 65536
    with path.open("wb", buffering=0) as handle:
        while True:
            try:
                handle.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                break
        while True:  # the last few bytes
            try:
                handle.write(b"\0" * 512)
            except OSError:
                return


def test_on_a_real_full_tmpfs_nothing_is_lost_and_refusal_lifts(tiny_disk: Path) -> None:
    url = f"sqlite:///{(tiny_disk / 'tollgate.db').as_posix()}"
    settings = make_settings(tiny_disk, url, memory_buffer_rows=100, batch_size=10, flush_interval_s=0.01)
    big = "x" * 4000  # rows large enough that the database needs new pages for them
    log = ProcessTrafficLog(settings).start()
    try:
        assert log.wait_ready(60)
        for index in range(20):
            log.submit(chat_raw(index))
        wait_for(lambda: log.stats.written == 20)
        filler = tiny_disk / "filler"
        _fill(filler)
        for index in range(20, 170):
            log.submit(chat_raw(index, content=big))
        wait_for(lambda: not log.admits())  # sent, and not acknowledged: the writer cannot store them
        wait_for(lambda: log.stats.unwritable > 0)  # it holds them in memory
        assert log.stats.failed == 0
        filler.unlink()
        wait_for(lambda: log.admits() and log.stats.in_flight == 0 and log.stats.queue_depth == 0)
    finally:
        log.close()
    stats = log.stats
    assert (stats.submitted, stats.failed, stats.unwritable) == (170, 0, 0)
    engine = sa.create_engine(url)
    try:
        replay_leftovers(settings)  # anything spooled, as the next start would
        assert count_rows(engine) == distinct_requests(engine) == 170
    finally:
        engine.dispose()


def test_held_rows_are_retried_in_chunks_and_keep_what_a_small_room_takes() -> None:
    held = HeldRows(max_rows=100, max_bytes=1 << 30)
    held.hold([{"id": str(index)} for index in range(25)])
    taken: list[list[TrafficRow]] = []

    def room_for_two_chunks(rows: list[TrafficRow]) -> bool:
        if len(taken) == 2:
            return False
        taken.append(rows)
        return True

    held.retry_at_once()
    assert held.retry(room_for_two_chunks, chunk=10) == 20
    assert [row["id"] for chunk in taken for row in chunk] == [str(index) for index in range(20)]
    assert len(held) == 5 and not held.full


def test_a_sidecar_on_a_real_full_tmpfs_refuses_then_recovers_and_stores_every_answer(
    tiny_disk: Path, fake: FakeUpstreamThread
) -> None:
    traffic = {
        "memory_buffer_rows": 30,
        "batch_size": 5,
        "flush_interval_s": 0.01,
    }  # writer in a child process
    settings = sidecar_settings(
        tiny_disk, {"fake-model": {"deployments": [{"base_url": fake.url}]}}, traffic=traffic
    )
    big = {"model": "fake-model", "messages": [{"role": "user", "content": "y" * 4000}]}
    answered: list[str] = []
    with ThreadedSidecar(settings) as proxy, httpx.Client(base_url=proxy.url, timeout=30) as client:
        readyz = proxy.url.removesuffix("/v1") + "/readyz"
        log = proxy.app.runtime.traffic
        assert log.wait_ready(60)

        def ask() -> httpx.Response:
            response = client.post("/chat/completions", json=big)
            if response.status_code == 200:
                answered.append(response.headers["x-request-id"])
            return response

        for _ in range(5):
            assert ask().status_code == 200
        wait_for(lambda: log.stats.written == 5)
        filler = tiny_disk / "filler"
        _fill(filler)
        refused = None
        for _ in range(1_000):  # a bound for the test only: refusal comes once 30 records are held
            response = ask()
            if response.status_code != 200:
                refused = response
                break
        assert refused is not None and refused.status_code == 503
        assert refused.json()["error"]["code"] == "traffic_log_full"
        assert httpx.get(readyz).status_code == 503
        filler.unlink()
        wait_for(lambda: httpx.get(readyz).status_code == 200)
        for _ in range(5):
            assert ask().status_code == 200
    replay_leftovers(settings)
    engine = sa.create_engine(settings.resolved_database_url)
    try:
        with engine.connect() as connection:
            counts = dict(
                connection.execute(
                    sa.text("SELECT request_id, COUNT(*) FROM traffic GROUP BY request_id")
                ).all()
            )
    finally:
        engine.dispose()
    assert len(answered) >= 40
    assert [rid for rid in answered if counts.get(rid) != 1] == []  # every answer stored, exactly once
