"""Streams in every valid SSE framing real servers use: relayed, measured, cached and logged the same way.

Each test runs once per fake-upstream style (`EVERY_SSE_STYLE`): canonical, no space after `data:`, CRLF,
CR, `id`/`event`/`retry` lines, comments and heartbeats, JSON split over `data` lines, tiny network writes.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
import pytest

from core.sse import parse_events
from sidecar.cache.replay import sse_to_document
from sidecar.pipeline import BaseStage, Exchange, StreamBlocked
from sidecar.relay import relay_stream
from sidecar.stream_events import NotJsonEvent, UpstreamEvents
from sidecar.traffic.usage import summarise_stream
from tests.sidecar.conftest import EVERY_SSE_STYLE
from tests.sidecar.test_proxy import CHAT, wait_record

REPLY = "one two three four five six"


class UsageSeen(BaseStage):
    """Keeps what the endpoint noted about the answer (tokens in, tokens out, finish reasons)."""

    name = "usage-seen"

    def __init__(self) -> None:
        self.usage: list[Any] = []

    def on_done(self, exchange: Exchange) -> None:
        self.usage = list(exchange.usage)


def models(fake: Any) -> dict[str, Any]:
    return {"fake-model": {"deployments": [{"base_url": fake.url}]}}


def client_events(proxy: Any, body: dict[str, Any]) -> tuple[httpx.Response, list[bytes], bytes]:
    with httpx.stream("POST", proxy.url + "/chat/completions", json={**body, "stream": True}) as response:
        raw = response.read()
    return response, [event.data for event in parse_events([raw])], raw


@EVERY_SSE_STYLE
def test_a_stream_is_relayed_in_canonical_form_with_done_usage_and_finish_reasons(make_sidecar, fake):
    seen = UsageSeen()
    proxy, collector = make_sidecar(models(fake), stages=lambda _rt: [seen])
    fake.set_behaviour(reply=REPLY)
    expected = httpx.post(fake.url + "/chat/completions", json=CHAT).json()["usage"]
    response, events, raw = client_events(proxy, CHAT)
    assert events[-1] == b"[DONE]"
    chunks = [orjson.loads(data) for data in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == REPLY
    assert all(c["choices"] for c in chunks), "the usage-only chunk reached a client that did not ask for it"
    # Whatever the upstream's framing, the client gets `data: <json>` events.
    assert raw == b"".join(b"data: " + data + b"\n\n" for data in events)
    record = wait_record(collector, response.headers["x-request-id"])  # submitted after `on_done` ran
    assert record.error_class is None, record.error_message  # `data:[DONE]` etc. are not "incomplete"
    assert seen.usage == [expected["prompt_tokens"], expected["completion_tokens"], ["stop"]]


@EVERY_SSE_STYLE
def test_the_logged_chunks_give_usage_text_and_a_cache_entry(make_sidecar, fake):
    proxy, collector = make_sidecar(models(fake))
    fake.set_behaviour(reply=REPLY)
    expected = httpx.post(fake.url + "/chat/completions", json=CHAT).json()["usage"]
    response, _, _ = client_events(proxy, CHAT)
    chunks = wait_record(collector, response.headers["x-request-id"]).response_chunks
    summary = summarise_stream(chunks)
    assert summary.text == REPLY
    assert summary.usage is not None
    assert (summary.usage.tokens_in, summary.usage.tokens_out) == (
        expected["prompt_tokens"], expected["completion_tokens"])
    document = sse_to_document(chunks, "chat.completions")
    assert document is not None and document["choices"][0]["message"]["content"] == REPLY


@EVERY_SSE_STYLE
def test_a_client_asking_for_usage_gets_the_usage_chunk(make_sidecar, fake):
    proxy, _ = make_sidecar(models(fake))
    _, events, _ = client_events(proxy, {**CHAT, "stream_options": {"include_usage": True}})
    usage = [orjson.loads(data) for data in events[:-1] if b'"usage":{' in data]
    assert len(usage) == 1 and usage[0]["choices"] == [] and usage[0]["usage"]["completion_tokens"] > 0


def test_html_in_a_stream_ends_with_an_error_event_not_done(make_sidecar, fake):
    proxy, collector = make_sidecar(models(fake))
    fake.set_behaviour(fault="garbage")
    response, events, _ = client_events(proxy, CHAT)
    assert response.status_code == 200
    assert b"[DONE]" not in events and all(b"<html>" not in data for data in events)
    error = orjson.loads(events[-1])["error"]
    assert (error["type"], error["code"]) == ("upstream_error", "upstream_invalid_response")
    record = wait_record(collector, response.headers["x-request-id"])
    assert record.error_class == "parse_failure" and "not JSON" in (record.error_message or "")


def test_the_reader_normalises_notes_usage_and_never_quotes_bad_data() -> None:
    events = UpstreamEvents(forward_usage=False)
    chunk = b'data:{"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":"stop"}]}\r\n\r\n'
    assert events.feed(chunk) == b'data: {"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":"stop"}]}\n\n'
    assert events.feed(b'data: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}\n\n') == b""
    assert events.usage is not None and events.finish_reasons == ["stop"]
    assert events.feed(b"data:[DONE]\n\ndata: {\"late\": 1}\n\n") == b"data: [DONE]\n\n" and events.done
    with pytest.raises(NotJsonEvent) as bad:
        UpstreamEvents().feed(b'data: {"choices":[]}\n\ndata: <html>secret@example.com</html>\n\n')
    assert bad.value.ready == b'data: {"choices":[]}\n\n' and "secret" not in str(bad.value)


class _Chunks:
    """An upstream response that yields fixed chunks."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = chunks

    async def iter_chunks(self):
        for chunk in self.chunks:
            yield chunk

    def release(self) -> None:
        return None


class _BlockEverything:
    def feed(self, events: bytes) -> bytes:
        raise StreamBlocked("blocked by policy")


def test_a_filter_blocking_the_events_before_non_json_data_still_ends_the_stream_cleanly() -> None:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()
        return {}

    upstream = _Chunks(b'data: {"choices":[]}\n\ndata: <html>\n\n')
    outcome = asyncio.run(relay_stream(upstream, send, receive, forward_usage=True,  # type: ignore[arg-type]
                                       filters=[_BlockEverything()]))
    assert outcome.error_class == "guardrail"
    last = sent[-1]
    assert last["more_body"] is False and b"guardrail_blocked" in last["body"] and b"<html>" not in last["body"]
