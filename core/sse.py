"""The one parser of server-sent-event streams (`text/event-stream`), incremental and spec-compliant.

It follows the WHATWG HTML "event stream interpretation" rules: lines end in CRLF, LF or a lone CR; a line
starting with `:` is a comment; `field: value` loses at most one space after the colon (`data:x` and
`data: x` are the same); `data` lines of one event are joined with "\\n"; `event`, `id` and `retry` are
kept; a blank line dispatches the event, and an event without `data` lines (a heartbeat) dispatches nothing;
a UTF-8 byte-order mark at the start of the stream is skipped; an event not ended by a blank line when the
stream ends is discarded. Bytes can be fed split anywhere, even inside a CRLF pair.

It works on bytes (field names and line ends are ASCII, so this is the same as decoding first) because the
data is handed to a JSON parser as bytes. The common `data: {...}\\n\\n` event costs one `split` and two
comparisons per line; `benchmarks/sse_parser.py` measures it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from core.errors import TollgateError

DONE = b"[DONE]"
"""The data of the OpenAI stream terminator event."""

_BOM = b"\xef\xbb\xbf"
_DEFAULT_MAX_LINE = 16 * 1024 * 1024


class EventStreamError(TollgateError):
    """The stream cannot be parsed (a line longer than the parser's limit)."""


@dataclass(slots=True)
class Event:
    """One dispatched event: its data (bytes, lines joined by LF), type, last event id and retry."""

    data: bytes
    event: str = "message"
    id: str = ""
    retry: int | None = None

    @property
    def done(self) -> bool:
        """Whether this is OpenAI's `[DONE]` terminator."""
        return self.data == DONE


class EventStreamParser:
    """Feed bytes as they arrive, get the complete events back (see the module docstring)."""

    __slots__ = ("_data", "_event", "_last_id", "_max_line", "_retry", "_skip_lf", "_start", "_tail")

    def __init__(self, *, max_line_bytes: int = _DEFAULT_MAX_LINE) -> None:
        self._tail = b""  # the incomplete last line
        self._data: list[bytes] = []
        self._event: str | None = None
        self._last_id = ""
        self._retry: int | None = None
        self._skip_lf = False  # the previous chunk ended in CR: a LF starting the next one belongs to it
        self._start = True  # nothing seen yet: a BOM may come
        self._max_line = max_line_bytes

    @property
    def pending(self) -> bool:
        """Whether part of an event (a line or undispatched fields) is buffered."""
        return bool(self._tail or self._data or self._event is not None)

    def feed(self, chunk: bytes) -> list[Event]:
        """Parse `chunk` (any slice of the stream); return the events it completed, in order."""
        if (
            not self._tail  # the common case first: exactly one `data: ...` event, nothing buffered
            and chunk.endswith(b"\n\n")
            and chunk.startswith(b"data: ")
            and chunk.find(b"\n") == len(chunk) - 2
            and not self._data
            and not self._skip_lf
            and not self._start
            and b"\r" not in chunk
        ):
            event = Event(chunk[6:-2], self._event or "message", self._last_id, self._retry)
            self._event = None
            return [event]
        if self._start:
            chunk = self._strip_bom(chunk)
            if self._start:
                return []
        if self._skip_lf and chunk:
            self._skip_lf = False
            if chunk[0] == 10:  # b"\n"
                chunk = chunk[1:]
        if b"\r" in chunk:
            self._skip_lf = chunk.endswith(b"\r")
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if self._tail:
            chunk = self._tail + chunk
        lines = chunk.split(b"\n")
        tail = lines.pop()
        if len(tail) > self._max_line:
            raise EventStreamError(f"an event-stream line is longer than {self._max_line} bytes")
        self._tail = tail
        events: list[Event] = []
        data = self._data
        for line in lines:
            if not line:
                if data:
                    events.append(self._dispatch())
                    data = self._data
                else:
                    self._event = None
            elif line.startswith(b"data:"):
                data.append(line[6:] if line[5:6] == b" " else line[5:])
            elif line[0] != 58:  # not a comment (b":")
                self._field(line)
        return events

    def _dispatch(self) -> Event:
        data = self._data
        payload = data[0] if len(data) == 1 else b"\n".join(data)
        event = Event(payload, self._event or "message", self._last_id, self._retry)
        self._data = []
        self._event = None
        return event

    def _field(self, line: bytes) -> None:
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"id":
            if b"\0" not in value:
                self._last_id = value.decode("utf-8", "replace")
        elif name == b"retry":
            if value.isdigit():
                self._retry = int(value)
        elif name == b"data":  # `data` without a colon: an empty data line
            self._data.append(b"")

    def _strip_bom(self, chunk: bytes) -> bytes:
        """Drop a BOM at the very start; wait while the bytes seen so far could still be one."""
        seen = self._tail + chunk
        if len(seen) < len(_BOM) and _BOM.startswith(seen):
            self._tail = seen
            return b""
        self._start = False
        self._tail = b""
        return seen.removeprefix(_BOM)


def parse_events(chunks: Iterable[bytes]) -> list[Event]:
    """Every complete event in a whole stream given as chunks (an unfinished last event is discarded)."""
    parser = EventStreamParser()
    events: list[Event] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    return events


def encode_event(data: bytes) -> bytes:
    """The canonical framing of an event with `data`: `data: <data>\\n\\n`, one `data` line per line of it."""
    if b"\n" not in data and b"\r" not in data:
        return b"data: " + data + b"\n\n"
    lines = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
    return b"".join(b"data: " + line + b"\n" for line in lines) + b"\n"


DONE_EVENT = encode_event(DONE)
"""`data: [DONE]\\n\\n`"""
