"""The spool on its own: rotation, sealed-file replay, idempotence, unreadable lines and refused rows."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa

from core.database import open_database
from core.pricing import PriceBook
from sidecar.traffic import RecordFinaliser, Spool, TrafficRow
from tests.sidecar.test_traffic_finaliser import chat_raw, make_settings


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    engine = open_database(db_url)
    yield engine
    engine.dispose()


def rows(tmp_path: Path, count: int, start: int = 0) -> list[TrafficRow]:
    settings = make_settings(tmp_path)
    finaliser = RecordFinaliser(settings, PriceBook(settings))
    return [finaliser.finalise(chat_raw(index)) for index in range(start, start + count)]


def request_ids(engine: sa.Engine) -> list[str]:
    with engine.connect() as connection:
        return list(
            connection.execute(sa.text("SELECT request_id FROM traffic ORDER BY request_id")).scalars()
        )


def test_files_rotate_by_size_and_hold_one_row_per_line(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", max_file_bytes=4096)
    batch = rows(tmp_path, 30)
    for row in batch:
        spool.append([row])
    spool.close()
    files = spool.pending()
    assert len(files) > 1
    assert all(path.stat().st_size <= 4096 for path in files)
    lines = [orjson.loads(line) for path in files for line in path.read_bytes().splitlines()]
    assert [line["id"] for line in lines] == [row["id"] for row in batch]


def test_replay_moves_rows_and_deletes_files(tmp_path: Path, engine: sa.Engine) -> None:
    spool = Spool(tmp_path / "spool")
    spool.append(rows(tmp_path, 25))
    spool.seal()
    result = spool.replay(engine, batch_size=10)
    assert (result.replayed, result.rejected, result.files) == (25, 0, 1)
    assert request_ids(engine) == sorted(f"req-{index}" for index in range(25))
    assert spool.pending() == []


def test_replaying_the_same_rows_twice_stores_them_once(tmp_path: Path, engine: sa.Engine) -> None:
    spool = Spool(tmp_path / "spool")
    batch = rows(tmp_path, 5)
    for _ in range(2):
        spool.append(batch)
        spool.seal()
        assert spool.replay(engine).replayed == 5
    assert len(request_ids(engine)) == 5


def test_the_file_being_written_is_not_replayed(tmp_path: Path, engine: sa.Engine) -> None:
    spool = Spool(tmp_path / "spool")
    spool.append(rows(tmp_path, 3))
    assert spool.replay(engine).files == 0  # still open for appends
    spool.seal()
    assert spool.replay(engine).replayed == 3


def test_a_file_locked_by_another_writer_is_skipped(tmp_path: Path, engine: sa.Engine) -> None:
    directory = tmp_path / "spool"
    directory.mkdir()
    foreign = directory / "traffic-1-99999-1.jsonl"
    foreign.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows(tmp_path, 2)))
    with foreign.open("rb") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        assert Spool(directory).replay(engine).files == 0
    assert Spool(directory).replay(engine).replayed == 2
    assert not foreign.exists()


def test_unreadable_lines_and_refused_rows_are_counted_and_set_aside(
    tmp_path: Path, engine: sa.Engine
) -> None:
    directory = tmp_path / "spool"
    spool = Spool(directory)
    good = rows(tmp_path, 3)
    refused = dict(rows(tmp_path, 1, start=10)[0], status=None)  # NOT NULL column: the database says no
    spool.append([*good, refused])
    spool.seal()
    with spool.pending()[0].open("ab") as handle:
        handle.write(b'{"id": "cut short by a cra')  # a crash mid-line
    result = spool.replay(engine)
    assert (result.replayed, result.rejected) == (3, 2)
    assert request_ids(engine) == ["req-0", "req-1", "req-2"]
    set_aside = list(directory.glob("rejected-*.jsonl"))
    assert len(set_aside) == 1
    assert orjson.loads(set_aside[0].read_bytes())["id"] == refused["id"]
    assert spool.pending() == []
