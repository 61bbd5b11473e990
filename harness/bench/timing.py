"""Per-request measurements of a streamed chat completion: TTFT, inter-token gaps, end-to-end, tokens.

Every latency is measured from the moment the request was *due* (its scheduled send time), not from when
the client got round to sending it. In a closed loop the two are the same instant; in an open-loop (rate)
run a request that waits for a free slot or a late event loop has that wait counted in its TTFT and
end-to-end latency, and reported on its own as `queue_ms`. Leaving it out is the "coordinated omission"
error: a saturated client then reports the latency of the requests it managed to send, not of the load
it was asked to offer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from harness.sse import StreamState, sse_payloads

_ERROR_TEXT_LIMIT = 200


@dataclass(slots=True)
class RequestRecord:
    """What one request measured; times in milliseconds, `scheduled_s` in seconds from the level's start.

    `ttft_ms` and `e2e_ms` count from the scheduled send time, so they include `queue_ms`.
    `status` is the HTTP status, 0 when no response arrived (connection error, timeout).
    """

    index: int
    level: str
    scheduled_s: float
    queue_ms: float
    ttft_ms: float | None = None
    e2e_ms: float | None = None
    itl_ms: list[float] = field(default_factory=list)
    tokens_in: int | None = None
    tokens_out: int | None = None
    status: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def tpot_ms(self) -> float | None:
        """Time per output token after the first: (e2e - ttft) / (tokens_out - 1); None below 2 tokens."""
        if self.ttft_ms is None or self.e2e_ms is None or not self.tokens_out or self.tokens_out < 2:
            return None
        return (self.e2e_ms - self.ttft_ms) / (self.tokens_out - 1)

    @property
    def itl_max_ms(self) -> float | None:
        """The longest gap between two content chunks (the stall a reader of the stream saw)."""
        return max(self.itl_ms) if self.itl_ms else None


class _StreamFailure(Exception):
    """The stream broke its contract (bad event, error event, no [DONE]); the message says how."""


class BenchClient:
    """One aiohttp session to an OpenAI-compatible chat endpoint; `measure` times one streamed request.

    `url` is the base URL (`http://host:port/v1`) or the full `/chat/completions` URL. Create it inside the
    event loop that uses it and close it with `aclose`. `connections` bounds open sockets; the runner keeps
    its own in-flight limit at or below it, so no request waits for a socket without that wait being seen.
    """

    def __init__(self, url: str, *, api_key: str | None = None, timeout_s: float = 300.0,
                 connections: int = 256) -> None:
        self.url = chat_url(url)
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=connections, limit_per_host=connections),
            timeout=aiohttp.ClientTimeout(total=timeout_s, sock_connect=min(timeout_s, 10.0)),
            headers=headers,
        )

    async def aclose(self) -> None:
        await self._session.close()

    async def measure(self, body: bytes, *, due: float, index: int, level: str, start: float) -> RequestRecord:
        """Send `body` (a streaming chat request) and time it from `due` (a `time.perf_counter()` value)."""
        sent = time.perf_counter()
        record = RequestRecord(index=index, level=level, scheduled_s=due - start, queue_ms=(sent - due) * 1e3)
        for attempt in range(2):
            try:
                await self._send(body, record, due)
            except _StreamFailure as exc:
                record.error = str(exc)
            except TimeoutError:
                record.error = "timed out"
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
                # A server may close a kept-alive connection right after a stream (llama.cpp's server does);
                # a request sent on it at that instant fails before any answer. Send it once more on a new
                # connection: the lost time stays in its latency, but it is not counted as a server error.
                if attempt == 0 and record.status == 0:
                    continue
                record.error = f"{exc.__class__.__name__}: {exc}"[:_ERROR_TEXT_LIMIT]
            except aiohttp.ClientError as exc:
                record.error = f"{exc.__class__.__name__}: {exc}"[:_ERROR_TEXT_LIMIT]
            break
        record.e2e_ms = (time.perf_counter() - due) * 1e3
        return record

    async def _send(self, body: bytes, record: RequestRecord, due: float) -> None:
        async with self._session.post(self.url, data=body) as response:
            record.status = response.status
            if response.status != 200:
                record.error = _http_error(response.status, await response.read())
            else:
                await _read_events(response, record, due)


def chat_url(url: str) -> str:
    """The chat-completions URL for a base URL (`.../v1`) or a URL that already names the route."""
    url = url.rstrip("/")
    return url if url.endswith("/chat/completions") else f"{url}/chat/completions"


async def _read_events(response: aiohttp.ClientResponse, record: RequestRecord, due: float) -> None:
    """Read the SSE body to the end, stamping each read that carries content (reads the whole body,
    so the connection goes back to the pool)."""
    last_chunk: float | None = None
    chunks = 0
    stream = StreamState()
    async for now, payload in sse_payloads(response, stream):
        if not _has_content(_decode(payload), record):
            continue
        chunks += 1
        if last_chunk is None:
            record.ttft_ms = (now - due) * 1e3
        else:
            record.itl_ms.append((now - last_chunk) * 1e3)
        last_chunk = now
    if not stream.done:
        raise _StreamFailure("stream ended without [DONE]")
    if record.tokens_out is None:
        record.tokens_out = chunks  # no usage reported: one chunk per token is the usual framing


def _decode(payload: bytes) -> dict[str, Any]:
    try:
        event = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise _StreamFailure(f"stream sent an event that is not JSON: {payload[:60]!r}") from exc
    if not isinstance(event, dict):
        raise _StreamFailure("stream sent an event that is not a JSON object")
    error = event.get("error")
    if error:
        message = error.get("message") if isinstance(error, dict) else error
        raise _StreamFailure(f"stream ended with an error: {str(message)[:_ERROR_TEXT_LIMIT]}")
    return event


def _has_content(event: dict[str, Any], record: RequestRecord) -> bool:
    """Whether the event carries generated text; takes the token counts from a usage block on the way."""
    usage = event.get("usage")
    if isinstance(usage, dict):
        record.tokens_in = usage.get("prompt_tokens", record.tokens_in)
        record.tokens_out = usage.get("completion_tokens", record.tokens_out)
    for choice in event.get("choices") or ():
        delta = choice.get("delta") or {}
        # Reasoning models stream their thinking as `reasoning_content`: those are generated tokens too.
        if delta.get("content") or delta.get("reasoning_content"):
            return True
    return False


def _http_error(status: int, body: bytes) -> str:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return f"HTTP {status}: {body[:_ERROR_TEXT_LIMIT].decode('utf-8', 'replace')}"
    error = data.get("error") if isinstance(data, dict) else None
    message = error.get("message") if isinstance(error, dict) else error
    return f"HTTP {status}: {str(message or data)[:_ERROR_TEXT_LIMIT]}"
