"""An upstream's OpenAI-style event stream, read with the one event-stream parser (`core.sse`).

`UpstreamEvents` turns the chunks an upstream sends into the canonical events the sidecar sends on
(`data: <json>\\n\\n`), whatever framing the upstream used (no space after `data:`, CRLF or CR line ends,
`id:`/`event:`/`retry:` lines, comments, JSON split over several `data` lines), and notes on the way what
the traffic log, metrics and traces need: `[DONE]`, the usage chunk and the finish reasons. An event whose
data is not JSON is never passed on: `NotJsonEvent` ends the stream.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from core.sse import DONE, DONE_EVENT, EventStreamParser


class NotJsonEvent(Exception):
    """The upstream sent a stream event whose data is not JSON; `ready` holds the events before it."""

    def __init__(self, ready: bytes, data: bytes) -> None:
        # The data itself is never quoted: it may hold text that output guards would have redacted.
        super().__init__(f"upstream sent a stream event that is not JSON ({len(data)} bytes)")
        self.ready = ready


class UpstreamEvents:
    """Reads one upstream stream: feed chunks, get the canonical bytes to send (see the module docstring).

    With `forward_usage` false, the usage-only chunk (the sidecar always asks for it) is noted but not sent.
    """

    __slots__ = ("done", "finish_reasons", "forward_usage", "parser", "usage")

    def __init__(self, *, forward_usage: bool = True) -> None:
        self.parser = EventStreamParser()
        self.forward_usage = forward_usage
        self.done = False
        self.usage: dict[str, Any] | None = None  # the last event that carried usage
        self.finish_reasons: list[str] = []

    def feed(self, chunk: bytes) -> bytes:
        """The canonical events completed by `chunk` (b"" when none); raises `NotJsonEvent`."""
        events = self.parser.feed(chunk)
        if not events:
            return b""
        out: list[bytes] = []
        for event in events:
            data = event.data
            if self.done:
                continue  # nothing after [DONE] is an answer
            if data == DONE:
                self.done = True
                out.append(DONE_EVENT)
                continue
            try:
                document = orjson.loads(data)
            except orjson.JSONDecodeError:
                raise NotJsonEvent(b"".join(out), data) from None
            if type(document) is dict and not self._note(document):
                continue
            if b"\n" in data:
                data = orjson.dumps(document)
            out.append(b"data: " + data + b"\n\n")
        return b"".join(out)

    def _note(self, document: dict[str, Any]) -> bool:
        """Note usage and finish reasons; whether the event is sent on."""
        choices = document.get("choices")
        if choices:
            for choice in choices:
                reason = choice.get("finish_reason") if type(choice) is dict else None
                if isinstance(reason, str) and reason:
                    self.finish_reasons.append(reason)
        if document.get("usage"):
            self.usage = document
            return self.forward_usage or bool(choices)
        return True


def read_stream(chunks: Iterable[bytes]) -> UpstreamEvents:
    """A whole stream read at once (a cached answer replayed); non-JSON events are skipped, not raised."""
    reader = UpstreamEvents()
    for chunk in chunks:
        try:
            reader.feed(chunk)
        except NotJsonEvent:
            continue
    return reader
