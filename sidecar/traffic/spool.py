"""The on-disk spool: append-only JSON lines of finalised, redacted rows the database could not take.

Files are `traffic-<time_ns>-<pid>-<seq>.jsonl` under the spool folder, rotated by size. The file being
appended to holds an exclusive `flock`, so a replay (in this or another process sharing the folder)
only ever reads sealed files. Replay inserts with ON CONFLICT (id) DO NOTHING and deletes a file only
after its rows are committed, so replaying twice never duplicates a row.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

import orjson
from sqlalchemy.engine import Engine

from sidecar.traffic.record import TrafficRow
from sidecar.traffic.store import ROW_ERRORS, describe_error, insert_rows

logger = logging.getLogger("tollgate.traffic")

SPOOL_GLOB = "traffic-*.jsonl"
DEFAULT_MAX_FILE_BYTES = 16 * 1024 * 1024


@dataclass(slots=True, frozen=True)
class ReplayResult:
    """What one replay did: rows now in the database, rows set aside as unstorable, files removed."""

    replayed: int = 0
    rejected: int = 0
    files: int = 0


class Spool:
    """Appends rows to the current spool file and replays sealed files into the database. Thread-safe."""

    def __init__(self, directory: Path, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> None:
        self.directory = directory
        self._max_file_bytes = max_file_bytes
        self._lock = threading.Lock()
        self._file: BinaryIO | None = None
        self._path: Path | None = None
        self._size = 0
        self._sequence = 0

    def append(self, rows: Sequence[TrafficRow]) -> None:
        """Write `rows` to disk (flushed to the OS). Raises OSError when the disk refuses."""
        data = b"".join(orjson.dumps(row) + b"\n" for row in rows)
        with self._lock:
            if self._file is None or self._size + len(data) > self._max_file_bytes:
                self._open_next()
            assert self._file is not None
            self._file.write(data)
            self._file.flush()
            self._size += len(data)

    def seal(self) -> None:
        """Close the current file so it can be replayed; the next append starts a new one."""
        with self._lock:
            self._close_current()

    def pending(self) -> list[Path]:
        """Spool files on disk, oldest first (including ones still being written)."""
        try:
            return sorted(self.directory.glob(SPOOL_GLOB))
        except OSError:
            return []

    def replay(self, engine: Engine, batch_size: int = 500) -> ReplayResult:
        """Insert every sealed file's rows, then delete the file.

        Raises the database's error when it is unavailable (files stay for the next attempt). Rows
        the database rejects as data (too long, constraint) go to `rejected-*.jsonl` and are counted.
        """
        replayed = rejected = files = 0
        for path in self.pending():
            handle = self._claim(path)
            if handle is None:
                continue  # still being written, or already gone
            try:
                rows, unreadable = _read_rows(handle, path)
                stored, refused = self._insert_file(engine, rows, batch_size)
                path.unlink(missing_ok=True)
            finally:
                handle.close()
            replayed += stored
            rejected += refused + unreadable
            files += 1
        return ReplayResult(replayed, rejected, files)

    def close(self) -> None:
        """Close the current file (its rows stay on disk for the next replay)."""
        self.seal()

    def _claim(self, path: Path) -> BinaryIO | None:
        # Under the lock so an append cannot create and lock a file between our listing and our flock.
        with self._lock:
            if path == self._path:
                return None
            try:
                handle = path.open("rb")
            except FileNotFoundError:
                return None
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                return None
            return handle

    def _insert_file(self, engine: Engine, rows: list[TrafficRow], batch_size: int) -> tuple[int, int]:
        try:
            with engine.begin() as connection:
                for start in range(0, len(rows), batch_size):
                    insert_rows(connection, rows[start : start + batch_size])
            return len(rows), 0
        except ROW_ERRORS as exc:
            logger.warning("spool replay: a batch was refused (%s); retrying row by row", describe_error(exc))
        stored = 0
        refused: list[TrafficRow] = []
        for row in rows:
            try:
                with engine.begin() as connection:
                    insert_rows(connection, [row])
                stored += 1
            except ROW_ERRORS as exc:
                logger.error(
                    "spool replay: row %s refused by the database: %s", row.get("id"), describe_error(exc)
                )
                refused.append(row)
        if refused:
            self._set_aside(refused)
        return stored, len(refused)

    def _set_aside(self, rows: list[TrafficRow]) -> None:
        path = self.directory / f"rejected-{time.time_ns()}-{os.getpid()}.jsonl"
        with path.open("ab") as handle:
            handle.write(b"".join(orjson.dumps(row) + b"\n" for row in rows))

    def _open_next(self) -> None:
        self._close_current()
        self.directory.mkdir(parents=True, exist_ok=True)
        while True:
            self._sequence += 1
            path = self.directory / f"traffic-{time.time_ns()}-{os.getpid()}-{self._sequence}.jsonl"
            handle = path.open("ab")
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            if os.fstat(handle.fileno()).st_nlink > 0:
                break
            handle.close()  # another process replayed and removed it before we locked it
        self._file, self._path, self._size = handle, path, 0

    def _close_current(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            finally:
                self._file, self._path, self._size = None, None, 0


def _read_rows(handle: BinaryIO, path: Path) -> tuple[list[TrafficRow], int]:
    """Parsed rows, plus the number of lines that could not be parsed (e.g. cut short by a crash)."""
    rows: list[TrafficRow] = []
    unreadable = 0
    for number, line in enumerate(_lines(handle), start=1):
        try:
            row = orjson.loads(line)
            row["created_at"] = datetime.fromisoformat(row["created_at"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            logger.error("spool replay: %s line %d is unreadable and is dropped: %s", path.name, number, exc)
            unreadable += 1
            continue
        rows.append(row)
    return rows, unreadable


def _lines(handle: BinaryIO) -> Iterator[bytes]:
    for line in handle:
        line = line.strip()
        if line:
            yield line
