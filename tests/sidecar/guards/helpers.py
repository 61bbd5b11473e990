"""Shared pieces of the guard tests: settings builders, requests, and a tiny upstream that returns logprobs."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import orjson
from aiohttp import web

from tests.sidecar.test_proxy import sse_events

MODEL = "fake-model"


def models(fake: Any, *extra: tuple[str, Any]) -> dict[str, Any]:
    routes = {MODEL: {"deployments": [{"base_url": fake.url}]}}
    for name, upstream in extra:
        routes[name] = {"deployments": [{"base_url": upstream.url, "model": MODEL}]}
    return routes


def policy(*guards: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"policies": [{"guards": list(guards), **fields}]}


def chat(text: str, **fields: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": text}], **fields}


def post(proxy: Any, body: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.post(proxy.url + "/chat/completions", json=body, headers=headers, timeout=30)


def stream(proxy: Any, body: dict[str, Any]) -> tuple[int, str, list[str]]:
    """Status, request id and the data of each SSE event of a streamed request."""
    with httpx.stream("POST", proxy.url + "/chat/completions", json={**body, "stream": True}, timeout=30) as response:
        lines = list(response.iter_lines())
        return response.status_code, response.headers["x-request-id"], sse_events(lines)


def streamed_text(events: list[str]) -> str:
    parts = []
    for event in events:
        if event == "[DONE]":
            continue
        data = orjson.loads(event)
        for choice in data.get("choices") or ():
            parts.append((choice.get("delta") or {}).get("content") or "")
    return "".join(parts)


def upstream_bodies(fake: Any) -> list[Any]:
    return [entry["body"] for entry in fake.stats()["recent"]]


class LogprobUpstream:
    """An OpenAI-compatible upstream whose answers carry the given token logprobs (stream and non-stream)."""

    def __init__(self, tokens: list[tuple[str, float]]) -> None:
        self.tokens = tokens
        self.url = ""
        self.requests: list[dict[str, Any]] = []

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        entries = [{"token": t, "logprob": lp, "bytes": None, "top_logprobs": []} for t, lp in self.tokens]
        base = {"id": "lp", "created": 0, "model": body["model"]}
        wants = bool(body.get("logprobs"))
        if not body.get("stream"):
            choice = {"index": 0, "message": {"role": "assistant", "content": "".join(t for t, _ in self.tokens)},
                      "logprobs": {"content": entries} if wants else None, "finish_reason": "stop"}
            return web.json_response({**base, "object": "chat.completion", "choices": [choice],
                                      "usage": {"prompt_tokens": 1, "completion_tokens": len(entries), "total_tokens": 2}})
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        for entry in entries:
            choice = {"index": 0, "delta": {"content": entry["token"]},
                      "logprobs": {"content": [entry]} if wants else None, "finish_reason": None}
            await response.write(b"data: " + orjson.dumps({**base, "object": "chat.completion.chunk",
                                                           "choices": [choice]}) + b"\n\n")
        final = {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
        await response.write(b"data: " + orjson.dumps({**base, "object": "chat.completion.chunk",
                                                       "choices": [final]}) + b"\n\ndata: [DONE]\n\n")
        await response.write_eof()
        return response

    @contextmanager
    def running(self) -> Iterator[LogprobUpstream]:
        loop = asyncio.new_event_loop()
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        runner = web.AppRunner(app)
        ready = threading.Event()

        async def start() -> None:
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self.url = f"http://127.0.0.1:{port}/v1"
            ready.set()

        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        asyncio.run_coroutine_threadsafe(start(), loop).result(10)
        ready.wait(10)
        try:
            yield self
        finally:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()
