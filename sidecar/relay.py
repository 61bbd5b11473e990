"""Relaying a server-sent-event stream to the client as it arrives.

Bytes are forwarded at every complete event boundary, never held back for more. The raw upstream bytes
are kept (by reference) for the traffic log, which parses usage off the request path. A stream that breaks
off, goes silent or ends without `[DONE]` is finished with an explicit error event, so a client can never
mistake a truncated answer for a complete one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import orjson

from sidecar.asgi import Receive, Send
from sidecar.pipeline import StreamBlocked, StreamFilter
from sidecar.upstreams.base import UpstreamResponse, UpstreamStreamError, UpstreamTimeoutError

DONE = b"data: [DONE]"


class StreamOutcome:
    """What happened to one relayed stream."""

    __slots__ = ("chunks", "client_gone", "error_class", "error_message", "first_event_at")

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
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
    pending = b""
    saw_done = False
    try:
        async for chunk in response.iter_chunks():
            outcome.chunks.append(chunk)
            pending = pending + chunk if pending else chunk
            cut = _last_boundary(pending)
            if cut < 0:
                continue
            ready, pending = pending[:cut], pending[cut:]
            if not forward_usage and b'"usage"' in ready:
                ready = _drop_usage_only_events(ready)
            if DONE in ready:
                saw_done = True
            for stream_filter in filters:
                ready = stream_filter.feed(ready)
            if ready:
                if outcome.first_event_at is None:
                    outcome.first_event_at = time.perf_counter()
                await send({"type": "http.response.body", "body": ready, "more_body": True})
    except UpstreamTimeoutError as exc:
        await _finish_with_error(send, outcome, "timeout", str(exc), "upstream_timeout")
        return
    except UpstreamStreamError as exc:
        await _finish_with_error(send, outcome, "stream_error", str(exc), "stream_interrupted")
        return
    except StreamBlocked as exc:
        await _finish_with_error(send, outcome, exc.error_class, exc.message, exc.code, "invalid_request_error")
        return
    if not saw_done:
        await _finish_with_error(
            send, outcome, "stream_error", "upstream stream ended without [DONE]", "stream_incomplete"
        )
        return
    await send({"type": "http.response.body", "body": pending, "more_body": False})


async def _finish_with_error(
    send: Send, outcome: StreamOutcome, error_class: str, message: str, code: str, type_: str = "upstream_error"
) -> None:
    outcome.error_class = error_class
    outcome.error_message = message
    await send({"type": "http.response.body", "body": error_event(message, code, type_), "more_body": False})


def _last_boundary(buffer: bytes) -> int:
    """Index just past the last complete event in `buffer`, or -1."""
    lf = buffer.rfind(b"\n\n")
    crlf = buffer.rfind(b"\r\n\r\n")
    if crlf >= 0 and crlf + 4 > lf + 2:
        return crlf + 4
    return lf + 2 if lf >= 0 else -1


def _drop_usage_only_events(ready: bytes) -> bytes:
    """Remove the usage-only final chunk the sidecar asked for but the client did not."""
    kept = []
    for event in ready.split(b"\n\n"):
        if not event.strip():
            continue
        if event.startswith(b"data: {") and b'"usage"' in event:
            try:
                data = orjson.loads(event[6:])
            except orjson.JSONDecodeError:
                data = None
            if isinstance(data, dict) and not data.get("choices") and data.get("usage"):
                continue
        kept.append(event + b"\n\n")
    return b"".join(kept)
