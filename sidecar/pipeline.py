"""The request pipeline: ordered stages that may inspect, change, answer or refuse a request.

Access control, prompt rendering, release arms, guards, routing, caching and shadowing are stages. The
endpoint runs, for each request:

1. `on_request` of every stage in order. A stage may change `exchange.payload` (then it sets
   `exchange.body = None` so the request is serialised again), add response headers, set fields on
   `exchange.record`, raise a `SidecarError` to refuse, or return a `Reply` to answer without an upstream
   call (a cache hit). After a stage answers, later stages' `on_request` are skipped.
2. The upstream call (retries, fallbacks, admission), unless a stage answered.
3. Non-stream: `on_reply` of the stages that ran, in reverse order, each receiving the reply of the one
   after it. A stage may validate, rewrite, or call `exchange.resend(payload)` to ask an upstream again.
   Streams: each stage's `stream_filter` (if it returns one) sees the complete events on their way out and
   may rewrite them or raise `StreamBlocked`, which ends the stream with an error event.
4. `on_done` of every stage that ran, after the response went out and the record is complete: for
   background work (shadow calls, cache stores, counters). It must not block; it schedules and returns.

A sidecar without stages pays one empty-list check per step.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from sidecar.traffic.record import RawTraffic


@dataclass(slots=True)
class Reply:
    """A complete answer: an upstream's (non-stream) or one a stage made.

    `sse` marks a body that is a whole server-sent-event stream (a cached answer replayed to a stream request).
    """

    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    sse: bool = False
    _document: Any = None

    def document(self) -> Any:
        """The body parsed as JSON (once), or None when it is not JSON."""
        if self._document is None and not self.sse:
            try:
                self._document = orjson.loads(self.body)
            except orjson.JSONDecodeError:
                self._document = False
        return self._document or None

    def replace_document(self, document: Any) -> None:
        """Set a new JSON body."""
        self._document = document
        self.body = orjson.dumps(document)


Resend = Callable[[dict[str, Any]], Awaitable[Reply]]


@dataclass(slots=True, eq=False)
class Exchange:
    """One request on its way through the stages.

    `headers` holds the request's lower-cased header names and values (decoded). `usage` is filled after the
    response: tokens in, tokens out, finish reasons as reported upstream (None when unknown). `state` is
    scratch space for stages, keyed by stage name.
    """

    endpoint: str
    payload: dict[str, Any]
    body: bytes | None
    record: RawTraffic
    headers: dict[str, str]
    stream: bool
    response_headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    usage: list[Any] = field(default_factory=lambda: [None, None, None])
    state: dict[str, Any] = field(default_factory=dict)
    escalate_to: str | None = None
    """A stronger model a stage may retry with when the answer fails a guard or validation (set by routing)."""
    resend: Resend | None = None
    """Ask an upstream again with a changed payload (non-stream only); counts in `record.attempts`."""
    reply: Reply | None = None
    """The final non-stream reply sent to the client (set before `on_done`)."""

    def request_body(self) -> bytes:
        """The bytes to send upstream: the original ones unless a stage changed the payload."""
        if self.body is None:
            self.body = orjson.dumps(self.payload)
        return self.body


class StreamBlocked(Exception):
    """Raised by a stream filter to end a stream with an error event instead of the rest of the answer."""

    def __init__(self, message: str, code: str = "guardrail_blocked", error_class: str = "guardrail") -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.error_class = error_class


class StreamFilter(Protocol):
    """Sees a stream's complete SSE events (bytes ending in a blank line) before they reach the client.

    The `data: [DONE]` event passes through `feed` too: a filter that holds text back (a look-back buffer)
    must emit it before passing `[DONE]` on; one that checks the whole answer does so when it sees `[DONE]`.
    """

    def feed(self, events: bytes) -> bytes: ...


class Stage(Protocol):
    """One step of the pipeline; see the module docstring for when each method runs."""

    name: str

    async def on_request(self, exchange: Exchange) -> Reply | None: ...

    async def on_reply(self, exchange: Exchange, reply: Reply) -> Reply: ...

    def stream_filter(self, exchange: Exchange) -> StreamFilter | None: ...

    def on_done(self, exchange: Exchange) -> None: ...


class BaseStage:
    """A stage that does nothing; subclass and override the steps you need."""

    name = "base"

    async def on_request(self, exchange: Exchange) -> Reply | None:
        return None

    async def on_reply(self, exchange: Exchange, reply: Reply) -> Reply:
        return reply

    def stream_filter(self, exchange: Exchange) -> StreamFilter | None:
        return None

    def on_done(self, exchange: Exchange) -> None:
        return None
