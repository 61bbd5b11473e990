"""The framings of a server-sent-event stream the fake upstream can send (`--sse-style`).

Every style carries the same events; they differ only in bytes that the WHATWG event-stream rules say do not
matter, and that real servers do emit: no space after `data:`, CRLF or CR line ends, `id:`/`event:`/`retry:`
lines, comments and heartbeat (data-less) events, an event's JSON split over several `data:` lines, and an
event arriving in many tiny network writes. A correct reader gets identical events from all of them.
"""

from __future__ import annotations

import enum

import orjson


class SseStyle(enum.StrEnum):
    """How the fake upstream frames the events of a stream."""

    CANONICAL = "canonical"  # data: <json>\n\n
    NO_SPACE = "no-space"  # data:<json>\n\n
    CRLF = "crlf"  # CRLF line ends
    CR = "cr"  # lone CR line ends
    FIELDS = "fields"  # id:, event: and retry: lines before the data
    COMMENTS = "comments"  # comment lines and heartbeat (data-less) events between events
    MULTILINE = "multiline"  # the JSON split over several data: lines (joined by the reader with "\n")
    TINY_CHUNKS = "tiny-chunks"  # canonical bytes written a few at a time


TINY_CHUNK_BYTES = 3
"""The size of each network write in the `tiny-chunks` style."""


def frame_event(event: bytes, style: SseStyle, index: int) -> bytes:
    """`event` (canonical `data: <json>\\n\\n`) in `style`; events in another shape are returned unchanged."""
    if style is SseStyle.CANONICAL or style is SseStyle.TINY_CHUNKS:
        return event
    if not (event.startswith(b"data: ") and event.endswith(b"\n\n") and event.count(b"\n") == 2):
        return event
    data = event[6:-2]
    if style is SseStyle.NO_SPACE:
        return b"data:" + data + b"\n\n"
    if style is SseStyle.CRLF:
        return b"data: " + data + b"\r\n\r\n"
    if style is SseStyle.CR:
        return b"data: " + data + b"\r\r"
    if style is SseStyle.FIELDS:
        return b"id: %d\nevent: message\nretry: 3000\ndata: %s\n\n" % (index, data)
    if style is SseStyle.COMMENTS:
        return b": keep-alive\n\n:\n\n: comment inside the event\ndata: " + data + b"\n\n"
    # MULTILINE: the JSON pretty-printed, one `data:` line per line (its line breaks fall between tokens).
    if data == b"[DONE]":
        return event
    lines = orjson.dumps(orjson.loads(data), option=orjson.OPT_INDENT_2).split(b"\n")
    return b"".join(b"data: " + line + b"\n" for line in lines) + b"\n"


def network_writes(payload: bytes, style: SseStyle) -> list[bytes]:
    """The writes that send `payload`: one, or many tiny ones in the `tiny-chunks` style."""
    if style is not SseStyle.TINY_CHUNKS:
        return [payload]
    return [payload[i : i + TINY_CHUNK_BYTES] for i in range(0, len(payload), TINY_CHUNK_BYTES)]
