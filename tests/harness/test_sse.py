"""The harness client reads streams in every valid SSE framing (the fake upstream's `sse_style`)."""

from __future__ import annotations

import asyncio

import pytest

from harness.client import SidecarClient
from sidecar.fake_upstream import FakeBehaviour, SseStyle, start_fake_upstream_thread

CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize("style", [style.value for style in SseStyle])
def test_the_client_reads_text_usage_and_done_in_every_framing(style: str) -> None:
    behaviour = FakeBehaviour(reply="alpha beta gamma", sse_style=SseStyle(style))
    with start_fake_upstream_thread(behaviour) as fake:

        async def call() -> dict:
            client = SidecarClient(fake.url, timeout_s=10)
            try:
                return await client.acomplete(CHAT)
            finally:
                await client.aclose()

        record = asyncio.run(call())
    assert record["text"] == "alpha beta gamma"
    assert record["finish_reason"] == "stop"
    assert record["usage"]["completion_tokens"] > 0 and record["ttft_ms"] is not None
