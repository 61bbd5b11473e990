"""Reading an OpenAI-style server-sent-event body from aiohttp, shared by the harness client and `tollgate bench`."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import aiohttp


class StreamState:
    """Set by `sse_payloads`: whether the stream ended with `[DONE]`."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = False


async def sse_payloads(response: aiohttp.ClientResponse, state: StreamState) -> AsyncIterator[tuple[float, bytes]]:
    """Yield `(arrival time, payload)` for each `data:` event before `[DONE]`, reading the body to its end so the
    connection goes back to the pool. Lines are split here rather than with `response.content`'s readline,
    which fails on lines over 128 KiB."""
    tail = b""
    async for data in response.content.iter_any():
        now = time.perf_counter()
        *lines, tail = (tail + data).split(b"\n")
        for line in lines:
            if state.done or not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if payload == b"[DONE]":
                state.done = True
                continue
            yield now, payload
