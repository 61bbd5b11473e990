"""Record and replay model responses, keyed by a canonical hash of the request.

Recordings live in a directory of JSONL files (`recordings/<name>.jsonl`, one per suite or prompt) meant to be
committed to git: writes only ever append one line per response, so diffs stay small and a crashed run loses at
most the line being written (a cut-short last line is skipped, then dropped on the next write). All files are
read into one dict on first use; when a hash appears more than once the last record wins (files in name order,
lines in file order).

Modes (`RecordMode`): `off` calls the model and stores nothing; `record` calls and stores; `replay` answers only
from the store and a miss is an error; `auto` replays when a recording exists, else calls and records.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson

from harness.errors import HarnessError

log = logging.getLogger(__name__)

# Fields removed before hashing. They change how a response is delivered or accounted for, never its content,
# so a request replays whatever the transport or the caller's bookkeeping:
#   stream, stream_options: the same completion sent whole or as chunks (usage included or not);
#   user: the end-user id a provider uses for abuse monitoring;
#   metadata, store: tags and retention of the completion on the provider's side.
EXCLUDED_FIELDS: frozenset[str] = frozenset({"stream", "stream_options", "user", "metadata", "store"})
DEFAULT_NAME = "recordings"
_FILE_NAME_RE = re.compile(r"[^A-Za-z0-9_.-]")


class RecordingError(HarnessError):
    """A recording file is unreadable or corrupt, or a replay found no recording."""


class RecordingMissError(RecordingError):
    """Replay mode met a request that was never recorded."""


class RecordMode(StrEnum):
    """How model calls use the recording store."""

    OFF = "off"
    RECORD = "record"
    REPLAY = "replay"
    AUTO = "auto"

    @classmethod
    def parse(cls, value: str | RecordMode) -> RecordMode:
        """The mode named `value`; anything else is a RecordingError listing the modes."""
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            modes = ", ".join(mode.value for mode in cls)
            raise RecordingError(f"unknown record mode {value!r} (use one of: {modes})") from None


def canonical_request(body: dict[str, Any]) -> dict[str, Any]:
    """The request without the transport-only fields listed in `EXCLUDED_FIELDS`."""
    return {key: value for key, value in body.items() if key not in EXCLUDED_FIELDS}


def request_hash(body: dict[str, Any]) -> str:
    """The sha256 (hex) of the canonical request serialised with sorted keys."""
    try:
        data = orjson.dumps(canonical_request(body), option=orjson.OPT_SORT_KEYS)
    except TypeError as exc:
        raise RecordingError(f"request cannot be hashed: {exc}") from exc
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class Fetched:
    """A response and whether it came from the store."""

    response: dict[str, Any]
    replayed: bool
    request_hash: str


class RecordingStore:
    """A directory of append-only JSONL recordings; safe to share between concurrent asyncio tasks and threads."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._responses: dict[str, dict[str, Any]] | None = None
        # Files whose last line was cut short, and the length of their complete lines.
        self._unterminated: dict[Path, int] = {}
        self._lock = threading.Lock()

    def get(self, hash: str) -> dict[str, Any] | None:
        """The recorded response for a request hash, or None."""
        return self._loaded().get(hash)

    def __contains__(self, hash: object) -> bool:
        return hash in self._loaded()

    def __len__(self) -> int:
        return len(self._loaded())

    def put(
        self, hash: str, request: dict[str, Any], response: dict[str, Any], *, name: str = DEFAULT_NAME
    ) -> None:
        """Append one recording to `<path>/<name>.jsonl`; it is served by `get` at once."""
        record = {
            "hash": hash,
            "recorded_at": datetime.now(UTC).isoformat(),
            "request": canonical_request(request),
            "response": response,
        }
        try:
            line = orjson.dumps(record) + b"\n"
        except TypeError as exc:
            raise RecordingError(f"response for request {hash} cannot be stored as JSON: {exc}") from exc
        target = self.path / f"{_FILE_NAME_RE.sub('_', name) or DEFAULT_NAME}.jsonl"
        responses = self._loaded()
        with self._lock:
            self.path.mkdir(parents=True, exist_ok=True)
            complete = self._unterminated.pop(target, None)
            if complete is not None:
                # A run stopped mid-line: drop the partial line so the file stays valid JSONL.
                os.truncate(target, complete)
            with target.open("ab") as handle:
                handle.write(line)
            responses[hash] = response

    async def afetch(
        self,
        request: dict[str, Any],
        call: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]],
        mode: RecordMode,
        *,
        name: str | None = None,
        prompt: str | None = None,
        case: str | None = None,
    ) -> Fetched:
        """Answer `request` according to `mode`, calling `call(request)` when the model must be asked.

        Recordings go to `<name or prompt>.jsonl`; `prompt` and `case` also name the request in a replay miss.
        """
        digest = request_hash(request)
        if mode in (RecordMode.REPLAY, RecordMode.AUTO):
            recorded = self.get(digest)
            if recorded is not None:
                return Fetched(response=recorded, replayed=True, request_hash=digest)
            if mode is RecordMode.REPLAY:
                raise RecordingMissError(f"no recording for request {digest}{_context(prompt, case)}")
        response = await call(request)
        if mode is not RecordMode.OFF:
            self.put(digest, request, response, name=name or prompt or DEFAULT_NAME)
        return Fetched(response=response, replayed=False, request_hash=digest)

    def _loaded(self) -> dict[str, dict[str, Any]]:
        responses = self._responses
        if responses is not None:
            return responses
        with self._lock:
            if self._responses is None:
                self._responses = self._read_all()
            return self._responses

    def _read_all(self) -> dict[str, dict[str, Any]]:
        responses: dict[str, dict[str, Any]] = {}
        if not self.path.is_dir():
            return responses
        for file in sorted(self.path.glob("*.jsonl")):
            try:
                data = file.read_bytes()
            except OSError as exc:
                raise RecordingError(f"{file}: cannot read recordings ({exc.strerror})") from exc
            lines = data.split(b"\n")
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                record = _parse_record(line, file, number, last=number == len(lines))
                if record is not None:
                    responses[record["hash"]] = record["response"]
            if data and not data.endswith(b"\n"):
                self._unterminated[file] = data.rfind(b"\n") + 1
        return responses


def _parse_record(line: bytes, file: Path, number: int, last: bool) -> dict[str, Any] | None:
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        if last:
            # An unterminated last line is a write cut short by a crash: skip it, the call will be re-made.
            log.warning("%s:%d: skipping an incomplete recording (%s)", file, number, exc)
            return None
        raise RecordingError(f"{file}:{number}: invalid JSON in recording ({exc})") from exc
    if not (isinstance(record, dict) and isinstance(record.get("hash"), str) and "response" in record):
        raise RecordingError(f"{file}:{number}: a recording needs 'hash' (string) and 'response'")
    return record


def _context(prompt: str | None, case: str | None) -> str:
    parts = [f"prompt {prompt}" if prompt else "", f"case {case}" if case else ""]
    joined = ", ".join(part for part in parts if part)
    return f" ({joined})" if joined else ""
