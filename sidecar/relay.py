"""Relaying a server-sent-event stream to the client as it arrives.

Events are forwarded as soon as they are complete, never held back for more, re-framed canonically
(`data: <json>\n\n`) by `stream_events.UpstreamEvents`, which reads any valid SSE framing. The raw upstream
bytes are kept (by reference) for the traffic log, which parses them off the request path. A stream that
breaks off, goes silent, sends an event that is not JSON or ends without `[DONE]` is finished with an
explicit error event, so a client can never mistake a truncated or garbled answer for a complete one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import orjson

from core.sse import EventStreamError
from sidecar.asgi import Receive, Send
from sidecar.pipeline import StreamBlocked, StreamFilter
from sidecar.stream_events import NotJsonEvent, UpstreamEvents
from sidecar.upstreams.base import UpstreamResponse, UpstreamStreamError, UpstreamTimeoutError


class StreamOutcome:
    """What happened to one relayed stream."""

    __slots__ = ("chunks", "client_gone", "error_class", "error_message", "events", "first_event_at")

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.events: UpstreamEvents | None = None  # what the stream said: [DONE], usage, finish reasons
        self.first_event_at: float | None = None
        self.error_class: str | None = None
        self.error_message: str | None = None
        self.client_gone = False


def error_event(message: str, code: str, type_: str = "upstream_error") -> bytes:
    """An SSE event carrying an OpenAI-shaped error, sent in place of `[DONE]`."""
    payload = {"error": {"message": message, "type": type_, "param": None, "code": code}}
    return b"data: " + orjson.dumps(payload) + b"\n\n"


async def relay_stream(
    response: UpstreamResponse,
    send: Send,
    receive: Receive,
    *,
    forward_usage: bool,
    filters: Sequence[StreamFilter] = (),
) -> StreamOutcome:
    """Copy `response`'s events to the client through `filters`; stop the upstream if the client goes away."""
    outcome = StreamOutcome()
    watcher = asyncio.ensure_future(_wait_for_disconnect(receive))
    relay = asyncio.ensure_future(_copy_events(response, send, outcome, forward_usage, filters))
    try:
        done, _ = await asyncio.wait({watcher, relay}, return_when=asyncio.FIRST_COMPLETED)
        if relay not in done:
            outcome.client_gone = True
            outcome.error_class = "cancelled"
            outcome.error_message = "client disconnected during the stream"
            relay.cancel()
            await asyncio.gather(relay, return_exceptions=True)
        else:
            relay.result()
    finally:
        watcher.cancel()
        response.release()
    return outcome


async def _wait_for_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def _copy_events(
    response: UpstreamResponse,
    send: Send,
    outcome: StreamOutcome,
    forward_usage: bool,
    filters: Sequence[StreamFilter],
) -> None:
    events = outcome.events = UpstreamEvents(forward_usage=forward_usage)
    try:
        async for chunk in response.iter_chunks():
            outcome.chunks.append(chunk)
            ready = events.feed(chunk)
            if ready:
                await _send_events(send, outcome, ready, filters)
    except NotJsonEvent as exc:
        try:
            if exc.ready:  # the good events before the bad one still go out (through the filters)
                await _send_events(send, outcome, exc.ready, filters)
        except StreamBlocked as blocked:
            await _finish_with_error(send, outcome, blocked.error_class, blocked.message, blocked.code,
                                     "invalid_request_error")
            return
        await _finish_with_error(send, outcome, "parse_failure", str(exc), "upstream_invalid_response")
        return
    except UpstreamTimeoutError as exc:
        await _finish_with_error(send, outcome, "timeout", str(exc), "upstream_timeout")
        return
    except (UpstreamStreamError, EventStreamError) as exc:
        await _finish_with_error(send, outcome, "stream_error", str(exc), "stream_interrupted")
        return
    except StreamBlocked as exc:
        await _finish_with_error(send, outcome, exc.error_class, exc.message, exc.code, "invalid_request_error")
        return
    if not events.done:
        await _finish_with_error(
            send, outcome, "stream_error", "upstream stream ended without [DONE]", "stream_incomplete"
        )
        return
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _send_events(send: Send, outcome: StreamOutcome, ready: bytes, filters: Sequence[StreamFilter]) -> None:
    """Pass complete events through the filters (which may raise `StreamBlocked`) to the client."""
    for stream_filter in filters:
        ready = stream_filter.feed(ready)
    if ready:
        if outcome.first_event_at is None:
            outcome.first_event_at = time.perf_counter()
        await send({"type": "http.response.body", "body": ready, "more_body": True})


async def _finish_with_error(
    send: Send, outcome: StreamOutcome, error_class: str, message: str, code: str, type_: str = "upstream_error"
) -> None:
    outcome.error_class = error_class
    outcome.error_message = message
    await send({"type": "http.response.body", "body": error_event(message, code, type_), "more_body": False})
