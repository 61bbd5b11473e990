"""Recorded wire transcripts of real servers, served byte for byte over loopback, through the sidecar.

`transcripts/` (see its README) holds what the servers send: OpenAI, vLLM, TGI, llama.cpp (recorded from a
real llama.cpp server) and Ollama chat-completion streams, Anthropic Messages and Gemini bodies. OpenAI-style
streams go through the sidecar's own relay; Anthropic and Gemini through litellm, as in production. Each must
come out as correct OpenAI output with the right usage, whole or split into 5-byte network writes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from core.sse import parse_events
from sidecar.pipeline import BaseStage, Exchange
from sidecar.traffic.usage import summarise_stream
from tests.sidecar.providers.conftest import KEY_ENV
from tests.sidecar.providers.transcript_server import Recording, TranscriptServer, transcript_server
from tests.sidecar.test_proxy import wait_record

ASK = {"messages": [{"role": "user", "content": "Say hello from Paris."}], "max_tokens": 20}
JSON = "application/json"
# name -> (text, finish reason, prompt tokens, completion tokens)
OPENAI_STYLE_STREAMS = {
    "openai_chat_stream_usage.sse": ("Hello from Paris.", "stop", 19, 5),
    "vllm_chat_stream.sse": ("Hello from Paris.", "stop", 31, 5),
    "tgi_chat_stream.sse": ("Hello from Paris.", "stop", 40, 5),
    "llamacpp_chat_stream.sse": ("Alejandro, a wise and just soul with a", "length", 36, 12),
    "ollama_chat_stream.sse": ("Hello from Paris.", "stop", 27, 5),
}
WRITES = pytest.mark.parametrize("write_bytes", [0, 5], ids=["one-write", "5-byte-writes"])


class UsageSeen(BaseStage):
    name = "usage-seen"

    def __init__(self) -> None:
        self.usage: list[Any] = []

    def on_done(self, exchange: Exchange) -> None:
        self.usage = list(exchange.usage)


@pytest.fixture
def upstream() -> Iterator[TranscriptServer]:
    with transcript_server() as server:
        yield server


def chunks_of(raw: bytes) -> list[dict[str, Any]]:
    events = parse_events([raw])
    assert events and events[-1].done, raw[-200:]
    return [orjson.loads(event.data) for event in events[:-1]]


def text_of(chunks: list[dict[str, Any]]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))


@WRITES
@pytest.mark.parametrize("name", list(OPENAI_STYLE_STREAMS))
def test_openai_style_streams_are_relayed_with_usage(make_sidecar, upstream, name, write_bytes):
    text, finish, prompt_tokens, completion_tokens = OPENAI_STYLE_STREAMS[name]
    seen = UsageSeen()
    proxy, collector = make_sidecar({"m": {"deployments": [{"base_url": upstream.base_url + "/v1"}]}},
                                    stages=lambda _rt: [seen])
    upstream.recording = Recording(name, write_bytes=write_bytes)
    body = {**ASK, "model": "m", "stream": True, "stream_options": {"include_usage": True}}
    with httpx.stream("POST", proxy.url + "/chat/completions", json=body, timeout=30) as response:
        raw = response.read()
    chunks = chunks_of(raw)
    assert text_of(chunks) == text
    assert [c["choices"][0]["finish_reason"] for c in chunks if c.get("choices") and
            c["choices"][0].get("finish_reason")] == [finish]
    usage = [c["usage"] for c in chunks if c.get("usage")]
    assert usage[-1]["prompt_tokens"] == prompt_tokens and usage[-1]["completion_tokens"] == completion_tokens
    record = wait_record(collector, response.headers["x-request-id"])  # submitted after `on_done` ran
    assert seen.usage == [prompt_tokens, completion_tokens, [finish]]
    assert record.error_class is None, record.error_message
    summary = summarise_stream(record.response_chunks)
    assert summary.text == text and summary.usage is not None
    assert (summary.usage.tokens_in, summary.usage.tokens_out) == (prompt_tokens, completion_tokens)


def test_llamacpp_plain_answer_and_error_pass_through(make_sidecar, upstream):
    proxy, _ = make_sidecar({"m": {"deployments": [{"base_url": upstream.base_url + "/v1"}]}})
    upstream.recording = Recording("llamacpp_chat.json", content_type=JSON)
    answer = httpx.post(proxy.url + "/chat/completions", json={**ASK, "model": "m"}, timeout=30)
    assert answer.status_code == 200
    assert answer.json()["choices"][0]["message"]["content"] == "Alejandro, a wise and just soul with a"
    upstream.recording = Recording("llamacpp_error_400.json", status=400, content_type=JSON)
    refused = httpx.post(proxy.url + "/chat/completions", json={**ASK, "model": "m"}, timeout=30)
    assert refused.status_code == 400 and refused.json()["error"]["type"] == "invalid_request_error"


def litellm_sidecar(make_sidecar, monkeypatch, model: str, base_url: str):
    monkeypatch.setenv(KEY_ENV, "test-key")
    deployment = {"provider": "litellm", "model": model, "base_url": base_url, "api_key_env": KEY_ENV}
    return make_sidecar({"m": {"deployments": [deployment]}}, sidecar={"retries": 1, "first_byte_timeout_s": 60})


PROVIDERS = {
    "anthropic": ("anthropic/claude-3-5-haiku-20241022", "", "anthropic_messages_stream.sse",
                  "anthropic_message.json", 21),
    "gemini": ("gemini/gemini-2.0-flash", "/v1beta", "gemini_stream_alt_sse.sse",
               "gemini_generate_content.json", 8),
}


@WRITES
@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_provider_streams_are_translated_with_usage(make_sidecar, upstream, monkeypatch, provider, write_bytes):
    model, suffix, stream_file, _, prompt_tokens = PROVIDERS[provider]
    proxy, collector = litellm_sidecar(make_sidecar, monkeypatch, model, upstream.base_url + suffix)
    upstream.recording = Recording(stream_file, write_bytes=write_bytes)
    body = {**ASK, "model": "m", "stream": True, "stream_options": {"include_usage": True}}
    with httpx.stream("POST", proxy.url + "/chat/completions", json=body, timeout=60) as response:
        raw = response.read()
    chunks = chunks_of(raw)
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert text_of(chunks) == "Hello from Paris."
    assert [c["choices"][0]["finish_reason"] for c in chunks if c.get("choices") and
            c["choices"][0].get("finish_reason")] == ["stop"]
    usage = [c["usage"] for c in chunks if c.get("usage")][-1]
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (prompt_tokens, 5)
    assert wait_record(collector, response.headers["x-request-id"]).error_class is None
    if provider == "gemini":
        assert ":streamGenerateContent" in upstream.requests[-1] and "alt=sse" in upstream.requests[-1]


@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_provider_plain_answers_are_translated(make_sidecar, upstream, monkeypatch, provider):
    model, suffix, _, plain_file, prompt_tokens = PROVIDERS[provider]
    proxy, _ = litellm_sidecar(make_sidecar, monkeypatch, model, upstream.base_url + suffix)
    upstream.recording = Recording(plain_file, content_type=JSON)
    response = httpx.post(proxy.url + "/chat/completions", json={**ASK, "model": "m"}, timeout=60)
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["object"] == "chat.completion"
    assert document["choices"][0]["message"]["content"] == "Hello from Paris."
    assert document["choices"][0]["finish_reason"] == "stop"
    assert (document["usage"]["prompt_tokens"], document["usage"]["completion_tokens"]) == (prompt_tokens, 5)


@pytest.mark.parametrize(
    ("provider", "error_file", "status", "words"),
    [
        ("anthropic", "anthropic_error_400.json", 400, "max_tokens: Field required"),
        ("anthropic", "anthropic_error_529.json", 529, "Overloaded"),
        ("gemini", "gemini_error_400.json", 400, "contents is not specified"),
        ("gemini", "gemini_error_429.json", 429, "Resource has been exhausted"),
    ],
)
def test_provider_error_bodies_become_openai_errors(make_sidecar, upstream, monkeypatch, provider, error_file,
                                                     status, words):
    model, suffix, _, _, _ = PROVIDERS[provider]
    proxy, _ = litellm_sidecar(make_sidecar, monkeypatch, model, upstream.base_url + suffix)
    upstream.recording = Recording(error_file, status=status, content_type=JSON)
    response = httpx.post(proxy.url + "/chat/completions", json={**ASK, "model": "m"}, timeout=60)
    error = response.json()["error"]
    assert set(error) >= {"message", "type", "code"} and error["type"] == "upstream_error"
    if status >= 429:  # overload and rate limit are retried, then the sidecar answers for the upstream
        assert len(upstream.requests) == 2 and response.status_code in (429, 502, 503)
    else:  # a client error is passed on once, in the OpenAI shape, with the provider's reason
        assert len(upstream.requests) == 1 and response.status_code == status and words in error["message"]


def test_an_anthropic_error_event_mid_stream_ends_with_an_error_event(make_sidecar, upstream, monkeypatch):
    model, suffix, _, _, _ = PROVIDERS["anthropic"]
    proxy, collector = litellm_sidecar(make_sidecar, monkeypatch, model, upstream.base_url + suffix)
    upstream.recording = Recording("anthropic_messages_stream_overloaded.sse")
    body = {**ASK, "model": "m", "stream": True}
    with httpx.stream("POST", proxy.url + "/chat/completions", json=body, timeout=60) as response:
        raw = response.read()
    events = [event.data for event in parse_events([raw])]
    assert b"[DONE]" not in events
    assert orjson.loads(events[-1])["error"]["type"] == "upstream_error"
    assert text_of([orjson.loads(data) for data in events[:-1]]) == "Hello from"
    assert wait_record(collector, response.headers["x-request-id"]).error_class == "stream_error"
