"""Reading an OpenAI-style server-sent-event body from aiohttp, shared by the harness client and `tollgate bench`.

Events are read with the one event-stream parser (`core.sse`), so any valid framing works: `data:` with or
without a space, CRLF or CR line ends, comments, `id`/`event`/`retry` lines, data split over several lines.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import aiohttp

from core.sse import EventStreamParser


class StreamState:
    """Set by `sse_payloads`: whether the stream ended with `[DONE]`."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = False


async def sse_payloads(response: aiohttp.ClientResponse, state: StreamState) -> AsyncIterator[tuple[float, bytes]]:
    """Yield `(arrival time, data)` for each event before `[DONE]`, reading the body to its end so the
    connection goes back to the pool. Lines are split by the parser rather than with `response.content`'s
    readline, which fails on lines over 128 KiB."""
    parser = EventStreamParser()
    async for chunk in response.content.iter_any():
        now = time.perf_counter()
        for event in parser.feed(chunk):
            if state.done:
                continue
            if event.done:
                state.done = True
                continue
            yield now, event.data
