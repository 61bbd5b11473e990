"""A streamed answer is relayed as it is generated, proven by an upstream that waits for the client.

The upstream sends its first token, then holds the rest until the test has received that token through the
sidecar. A proxy that buffered the stream would never deliver it, and the test would fail on its read
timeout; a relaying proxy passes however slow the machine is, because nothing here is timed.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import orjson
from aiohttp import web

from sidecar.fake_upstream import FakeBehaviour, start_fake_upstream_thread
from sidecar.fake_upstream.app import build_app

CHAT = {"model": "fake-model", "stream": True, "messages": [{"role": "user", "content": "hello"}]}
HOLD_LIMIT_S = 120.0  # only so a broken run ends; a passing run releases the upstream at once


def _event(content: str | None, finish: str | None = None) -> bytes:
    delta = {} if content is None else {"content": content}
    chunk = {"id": "held", "object": "chat.completion.chunk", "created": 0, "model": "fake-model",
             "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def _holding_upstream(release: threading.Event) -> Callable[..., web.Application]:
    @web.middleware
    async def hold(request: web.Request, handler: Callable[[web.Request], Awaitable[Any]]) -> Any:
        if request.path != "/v1/chat/completions":
            return await handler(request)
        await request.read()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(_event("first"))
        if not await asyncio.to_thread(release.wait, HOLD_LIMIT_S):
            await response.write_eof()  # never released: the stream ends without its last token or [DONE]
            return response
        await response.write(_event("second"))
        await response.write(_event(None, "stop"))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    def factory(behaviour: FakeBehaviour | None, **kwargs: Any) -> web.Application:
        app = build_app(behaviour, **kwargs)
        app.middlewares.append(hold)
        return app

    return factory


def test_the_first_token_reaches_the_client_while_the_upstream_still_holds_the_rest(make_sidecar):
    release = threading.Event()
    with start_fake_upstream_thread(FakeBehaviour(), app_factory=_holding_upstream(release)) as upstream:
        proxy, _ = make_sidecar({"fake-model": {"deployments": [{"base_url": upstream.url}]}})
        try:
            with httpx.stream("POST", proxy.url + "/chat/completions", json=CHAT, timeout=2 * HOLD_LIMIT_S) as response:
                assert response.status_code == 200
                events = (line[len("data: "):] for line in response.iter_lines() if line.startswith("data: "))
                first = orjson.loads(next(events))  # only reachable if the sidecar relays as it receives
                release.set()
                rest = list(events)
        finally:
            release.set()
    assert first["choices"][0]["delta"]["content"] == "first"
    contents = [orjson.loads(e)["choices"][0]["delta"].get("content") for e in rest[:-1] if orjson.loads(e)["choices"]]
    assert "second" in contents and rest[-1] == "[DONE]"
