"""How `BenchClient` reads streams the fake upstream does not produce, from a tiny loopback server."""

from __future__ import annotations

import time

import orjson
import pytest
from aiohttp import web

from harness.bench import BenchClient, chat_url


def sse(*events: dict | str) -> bytes:
    return b"".join(b"data: " + (e.encode() if isinstance(e, str) else orjson.dumps(e)) + b"\n\n" for e in events)


def delta(**fields) -> dict:
    return {"choices": [{"index": 0, "delta": fields}]}


async def serve(body: bytes, status: int = 200, content_type: str = "text/event-stream"):
    async def handle(request: web.Request) -> web.Response:
        return web.Response(body=body, status=status, content_type=content_type)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    return runner, f"http://127.0.0.1:{port}/v1"


async def measure(body: bytes, **kwargs):
    runner, url = await serve(body, **kwargs)
    client = BenchClient(url, timeout_s=5)
    try:
        now = time.perf_counter()
        return await client.measure(b"{}", due=now, index=0, level="t", start=now)
    finally:
        await client.aclose()
        await runner.cleanup()


@pytest.mark.asyncio
async def test_without_usage_tokens_out_counts_content_chunks():
    record = await measure(sse(delta(role="assistant"), delta(content="a"), delta(content=""), delta(content="b"),
                               delta(reasoning_content="c"), "[DONE]"))
    assert record.ok and record.tokens_out == 3 and record.tokens_in is None
    assert len(record.itl_ms) == 2  # three content chunks (empty content is not one), two gaps


@pytest.mark.asyncio
async def test_usage_wins_over_the_chunk_count():
    usage = {"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 40}}
    record = await measure(sse(delta(content="many tokens in one chunk"), usage, "[DONE]"))
    assert (record.tokens_in, record.tokens_out) == (12, 40)
    assert record.tpot_ms == pytest.approx((record.e2e_ms - record.ttft_ms) / 39)


@pytest.mark.asyncio
async def test_a_stream_without_done_is_an_error():
    record = await measure(sse(delta(content="a")))
    assert record.status == 200 and record.error == "stream ended without [DONE]"


@pytest.mark.asyncio
async def test_an_error_event_is_an_error():
    record = await measure(sse(delta(content="a"), {"error": {"message": "model overloaded"}}, "[DONE]"))
    assert record.error == "stream ended with an error: model overloaded"


@pytest.mark.asyncio
async def test_http_error_body_message_is_kept():
    body = orjson.dumps({"error": {"message": "no such model", "type": "invalid_request_error"}})
    record = await measure(body, status=404, content_type="application/json")
    assert record.status == 404 and record.error == "HTTP 404: no such model"
    assert record.ttft_ms is None and record.tpot_ms is None and record.e2e_ms is not None


def test_chat_url_accepts_base_or_full_url():
    assert chat_url("http://h:1/v1") == "http://h:1/v1/chat/completions"
    assert chat_url("http://h:1/v1/") == "http://h:1/v1/chat/completions"
    assert chat_url("http://h:1/v1/chat/completions") == "http://h:1/v1/chat/completions"
