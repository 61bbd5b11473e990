"""Batch state: file and batch rows in the database, file contents and per-batch results on disk.

Every function here blocks (database and disk): callers on the event loop run them with
`asyncio.to_thread`. Result lines are appended to `data_dir/batches/<id>/results.jsonl` as requests finish,
so a restarted sidecar knows which requests are done and runs only the rest.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from core.tables.batches import BatchFile, BatchJob
from core.tables.common import utc_now
from sidecar.callers import Caller

ACTIVE = ("validating", "in_progress", "finalizing", "cancelling")
BATCH_ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings")


def new_id(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(12)}"


def epoch(moment: datetime | None) -> int | None:
    if moment is None:
        return None
    if moment.tzinfo is None:  # SQLite hands back naive datetimes; they were stored in UTC
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


@dataclass(frozen=True, slots=True)
class BatchStore:
    """Where batch state lives: one engine and one data directory."""

    engine: Engine
    data_dir: Path

    @property
    def files_dir(self) -> Path:
        return self.data_dir / "files"

    def file_path(self, file_id: str) -> Path:
        return self.files_dir / f"{file_id}.jsonl"

    def results_path(self, batch_id: str) -> Path:
        return self.data_dir / "batches" / batch_id / "results.jsonl"

    # -- files ---------------------------------------------------------------------------------------------

    def add_file(self, upload: Path, filename: str, purpose: str, owner_key_id: str | None) -> BatchFile:
        """Register an uploaded file (moved from `upload` into the files folder), owned by `owner_key_id`."""
        row = BatchFile(id=new_id("file-"), purpose=purpose, filename=filename[:255], bytes=upload.stat().st_size,
                        owner_key_id=owner_key_id)
        upload.replace(self.file_path(row.id))
        return self._save(row)

    def write_file(self, lines: list[bytes], filename: str, purpose: str, owner_key_id: str | None) -> BatchFile:
        """Create a file from result lines (an output or error file, owned by the batch's key)."""
        self.files_dir.mkdir(parents=True, exist_ok=True)
        file_id = new_id("file-")
        path = self.file_path(file_id)
        temporary = path.with_suffix(".tmp")
        temporary.write_bytes(b"".join(line + b"\n" for line in lines))
        temporary.replace(path)
        return self._save(BatchFile(id=file_id, purpose=purpose, filename=filename, bytes=path.stat().st_size,
                                    owner_key_id=owner_key_id))

    def get_file(self, file_id: str) -> BatchFile | None:
        with Session(self.engine) as session:
            return session.get(BatchFile, file_id)

    def list_files(self, limit: int, caller: Caller) -> list[BatchFile]:
        return self._newest(BatchFile, limit, caller)

    # -- batches -------------------------------------------------------------------------------------------

    def add_batch(self, row: BatchJob) -> BatchJob:
        return self._save(row)

    def get_batch(self, batch_id: str) -> BatchJob | None:
        with Session(self.engine) as session:
            return session.get(BatchJob, batch_id)

    def list_batches(self, limit: int, caller: Caller) -> list[BatchJob]:
        return self._newest(BatchJob, limit, caller)

    def active_batch_ids(self) -> list[str]:
        with Session(self.engine) as session:
            statement = select(BatchJob.id).where(col(BatchJob.status).in_(ACTIVE)).order_by(col(BatchJob.created_at))
            return list(session.exec(statement).all())

    def update_batch(self, batch_id: str, **changes: Any) -> BatchJob | None:
        """Apply `changes` to a batch row and return it (None when it does not exist)."""
        with Session(self.engine) as session:
            row = session.get(BatchJob, batch_id)
            if row is None:
                return None
            for name, value in changes.items():
                setattr(row, name, value)
            session.add(row)
            session.commit()
            session.refresh(row)
            return row

    def request_cancel(self, batch_id: str) -> BatchJob | None:
        """Move a running batch to `cancelling` (a finished one is returned as it is)."""
        with Session(self.engine) as session:
            row = session.get(BatchJob, batch_id)
            if row is None:
                return None
            if row.status in ("validating", "in_progress"):
                row.status = "cancelling"
                row.cancelling_at = utc_now()
                session.add(row)
                session.commit()
                session.refresh(row)
            return row

    def _newest(self, table: Any, limit: int, caller: Caller) -> list[Any]:
        """The newest rows `caller` sees: its key's own (or, without a key, those made without one); all for the admin."""
        with Session(self.engine) as session:
            statement = select(table).order_by(col(table.created_at).desc()).limit(limit)
            if not caller.admin:
                owner = col(table.owner_key_id)
                statement = statement.where(owner.is_(None) if caller.key_id is None else owner == caller.key_id)
            return list(session.exec(statement).all())

    def _save(self, row: Any) -> Any:
        with Session(self.engine) as session:
            session.add(row)
            session.commit()
            session.refresh(row)
            return row

    # -- input and results ---------------------------------------------------------------------------------

    def input_lines(self, file_id: str) -> Iterator[tuple[int, bytes]]:
        """The non-blank lines of an input file, numbered from 1."""
        with self.file_path(file_id).open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    yield number, line

    def read_results(self, batch_id: str) -> list[bytes]:
        """The complete result lines written so far; a line torn by a crash is dropped from the file."""
        path = self.results_path(batch_id)
        if not path.exists():
            return []
        raw = path.read_bytes()
        lines = raw.split(b"\n")
        complete = [line for line in lines[:-1] if _parses(line)]
        if lines[-1] or len(complete) != len(lines) - 1:
            path.write_bytes(b"".join(line + b"\n" for line in complete))
        return complete


def _parses(line: bytes) -> bool:
    try:
        return isinstance(orjson.loads(line), dict)
    except orjson.JSONDecodeError:
        return False


class ResultWriter:
    """Appends result lines to a batch's results file; each line reaches the kernel when it is written."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def append(self, line: bytes) -> None:
        os.write(self._fd, line + b"\n")

    def close(self) -> None:
        os.close(self._fd)


def expiry(created: datetime, window_s: float) -> datetime:
    return created + timedelta(seconds=window_s)


def file_document(row: BatchFile) -> dict[str, Any]:
    """The OpenAI file object."""
    return {"id": row.id, "object": "file", "bytes": row.bytes, "created_at": epoch(row.created_at),
            "filename": row.filename, "purpose": row.purpose, "status": "processed"}


def batch_document(row: BatchJob) -> dict[str, Any]:
    """The OpenAI batch object."""
    return {
        "id": row.id,
        "object": "batch",
        "endpoint": row.endpoint,
        "errors": orjson.loads(row.errors) if row.errors else None,
        "input_file_id": row.input_file_id,
        "completion_window": row.completion_window,
        "status": row.status,
        "output_file_id": row.output_file_id,
        "error_file_id": row.error_file_id,
        "created_at": epoch(row.created_at),
        "in_progress_at": epoch(row.in_progress_at),
        "expires_at": epoch(row.expires_at),
        "finalizing_at": epoch(row.finalizing_at),
        "completed_at": epoch(row.completed_at),
        "failed_at": epoch(row.failed_at),
        "expired_at": epoch(row.expired_at),
        "cancelling_at": epoch(row.cancelling_at),
        "cancelled_at": epoch(row.cancelled_at),
        "request_counts": {"total": row.total, "completed": row.completed, "failed": row.failed},
        "metadata": orjson.loads(row.metadata_json) if row.metadata_json else None,
    }
