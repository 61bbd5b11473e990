"""What the provider fakes share: the echo answer, timing, the prompt cache and the app scaffolding.

Each provider fake is an aiohttp app carrying the same `ServerState` as the OpenAI-compatible fake, so the
runner's `set_behaviour`, `script`, `reset` and `stats` work on it unchanged. Of the behaviour fields they
honour `reply`, `output_tokens`, `ttft_s`, `inter_token_s` and the `status` fault (answered in the provider's
own error shape); the connection-level faults belong to the OpenAI-compatible fake.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from sidecar.fake_upstream.app import STATE, ServerState
from sidecar.fake_upstream.behaviour import (
    FAULT_HEADER,
    BehaviourState,
    FakeBehaviour,
    FakeUpstreamError,
    Fault,
)
from sidecar.fake_upstream.replies import count_tokens, split_tokens
from sidecar.fake_upstream.stats import DEFAULT_HISTORY, RequestLog

PROMPT_CACHE = web.AppKey("fake_provider_prompt_cache", set)
Handler = Callable[[web.Request, FakeBehaviour, bytes], Awaitable[web.StreamResponse]]
ErrorRenderer = Callable[[int, str], web.Response]


@dataclass(frozen=True, slots=True)
class Answer:
    """The fake model's answer: token pieces (joining to the text) and why it stopped."""

    pieces: list[str]
    truncated: bool

    @property
    def text(self) -> str:
        return "".join(self.pieces)


def make_answer(last_user_text: str, behaviour: FakeBehaviour, limit: int | None) -> Answer:
    """`echo:` and the words of the last user message cycled to `output_tokens` (or the fixed `reply`)."""
    if behaviour.reply is not None:
        pieces = split_tokens(behaviour.reply)
    else:
        words = last_user_text.split() or ["(empty)"]
        wanted = behaviour.output_tokens
        cycled = [words[i % len(words)] for i in range(max(wanted - 1, 0))]
        pieces = split_tokens(" ".join(["echo:", *cycled])) if wanted else []
    truncated = isinstance(limit, int) and 0 <= limit < len(pieces)
    return Answer(pieces[:limit] if truncated and limit is not None else pieces, truncated)


def tokens(text: str) -> int:
    """Token count of the fakes: whitespace words."""
    return count_tokens(text)


def cache_lookup(app: web.Application, prefix: Any) -> bool:
    """True when `prefix` (any JSON-able value) was seen before; remembers it either way."""
    key = hashlib.blake2b(orjson.dumps(prefix, option=orjson.OPT_SORT_KEYS), digest_size=16).digest()
    seen: set[bytes] = app[PROMPT_CACHE]
    if key in seen:
        return True
    seen.add(key)
    return False


async def pace(behaviour: FakeBehaviour, index: int) -> None:
    """Wait before sending token `index` of a stream (ttft before the first, inter-token after)."""
    delay = behaviour.ttft_s if index == 0 else behaviour.inter_token_s
    if delay:
        await asyncio.sleep(delay)


async def open_sse(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(
        status=200, headers={"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    return response


def build_provider_app(
    behaviour: FakeBehaviour | None,
    history: int,
    routes: list[tuple[str, str, Handler]],
    render_error: ErrorRenderer,
) -> web.Application:
    """An app with the shared state, the given API routes and the `/_fake/stats` and `/_fake/reset` routes."""
    app = web.Application()
    app[STATE] = ServerState(BehaviourState(behaviour or FakeBehaviour()), RequestLog(history or DEFAULT_HISTORY))
    app[PROMPT_CACHE] = set()
    for method, path, handler in routes:
        app.router.add_route(method, path, _wrap(handler, render_error))
    app.router.add_get("/_fake/stats", _stats)
    app.router.add_post("/_fake/reset", _reset)
    return app


def _wrap(handler: Handler, render_error: ErrorRenderer) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE]
        body = await request.read()
        try:
            behaviour = state.behaviours.resolve(request.headers.get(FAULT_HEADER))
        except FakeUpstreamError as exc:
            state.log.record(request.method, request.path, request.headers, body, Fault.NONE)
            return render_error(400, str(exc))
        state.log.record(request.method, request.path_qs, request.headers, body, behaviour.fault)
        if behaviour.fault is Fault.STATUS:
            return render_error(behaviour.status, f"fake provider injected status {behaviour.status}")
        return await handler(request, behaviour, body)

    return handle


async def _stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].stats(), dumps=lambda v: orjson.dumps(v).decode())


async def _reset(request: web.Request) -> web.Response:
    request.app[STATE].reset()
    request.app[PROMPT_CACHE].clear()
    return web.json_response({"reset": True})


def parse_body(body: bytes) -> dict[str, Any] | None:
    """The request as a JSON object, or None."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def sse(event: str | None, data: dict[str, Any]) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + orjson.dumps(data) + b"\n\n"
