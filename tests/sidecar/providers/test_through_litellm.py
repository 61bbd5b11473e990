"""Anthropic, Gemini and OpenAI through the sidecar's litellm deployments, against their fakes on loopback.

The client speaks OpenAI to the sidecar; litellm translates to each provider's wire format and back.
"""

from __future__ import annotations

import httpx
import orjson
import pytest

from tests.sidecar.providers.test_wire_formats import ANTHROPIC_HEADERS
from tests.sidecar.test_proxy import wait_record

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "first turn"},
    {"role": "assistant", "content": "ok"},
    {"role": "user", "content": "alpha beta gamma"},
]
UPSTREAM_MODEL = {"claude": "claude-3-5-haiku-latest", "gemini": "gemini-2.0-flash", "gpt": "gpt-4o-mini"}


def stream_events(text: str) -> list[dict]:
    return [orjson.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]


@pytest.mark.parametrize("model", ["claude", "gemini", "gpt"])
def test_a_chat_completion_is_translated_both_ways(providers, model):
    proxy, collector = providers
    body = {"model": model, "messages": MESSAGES, "max_tokens": 20}
    response = httpx.post(proxy.url + "/chat/completions", json=body, timeout=60)
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["object"] == "chat.completion" and document["model"] == UPSTREAM_MODEL[model]
    choice = document["choices"][0]
    assert choice["message"] == {**choice["message"], "role": "assistant", "content": "echo: alpha beta gamma alpha"}
    assert choice["finish_reason"] == "stop"
    assert (document["usage"]["prompt_tokens"], document["usage"]["completion_tokens"]) == (9, 5)
    record = wait_record(collector, response.headers["x-request-id"])
    assert record.provider == "litellm" and record.served_model == model and record.status == 200


@pytest.mark.parametrize("model", ["claude", "gemini", "gpt"])
def test_a_stream_is_translated_chunk_by_chunk_with_usage(providers, model):
    proxy, collector = providers
    body = {"model": model, "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}}
    with httpx.stream("POST", proxy.url + "/chat/completions", json=body, timeout=60) as response:
        text = response.read().decode()
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    chunks = stream_events(text)
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert content == "echo: alpha beta gamma alpha"
    assert len([c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]) >= 3  # not one blob
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0].get("finish_reason")] \
        == ["stop"]
    assert chunks[-1]["usage"]["completion_tokens"] == 5 and chunks[-1]["usage"]["prompt_tokens"] == 9
    assert text.rstrip().endswith("data: [DONE]")
    record = wait_record(collector, response.headers["x-request-id"])
    assert record.stream and record.status == 200 and record.error_class is None


def test_anthropic_cache_control_passes_through_and_cached_tokens_come_back(providers, anthropic):
    proxy, _ = providers
    system = {"role": "system", "content": [
        {"type": "text", "text": "house rules " * 50, "cache_control": {"type": "ephemeral"}}]}
    usages = []
    for question in ("first question", "second question"):
        body = {"model": "claude", "max_tokens": 10, "messages": [system, {"role": "user", "content": question}]}
        response = httpx.post(proxy.url + "/chat/completions", json=body, timeout=60)
        assert response.status_code == 200, response.text
        usages.append(response.json()["usage"])
    sent = anthropic.stats()["recent"][-1]["body"]
    assert sent["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert usages[0]["cache_creation_input_tokens"] == 100 and usages[0]["prompt_tokens_details"]["cached_tokens"] == 0
    assert usages[1]["cache_read_input_tokens"] == 100 and usages[1]["prompt_tokens_details"]["cached_tokens"] == 100
    assert usages[1]["prompt_tokens"] == 102  # cached tokens are part of the prompt count


def test_gemini_implicit_cache_hits_are_reported_as_cached_tokens(providers):
    proxy, _ = providers
    long_system = {"role": "system", "content": "reference manual " * 40}
    cached = []
    for question in ("one", "two"):
        body = {"model": "gemini", "messages": [long_system, {"role": "user", "content": question}]}
        usage = httpx.post(proxy.url + "/chat/completions", json=body, timeout=60).json()["usage"]
        cached.append((usage.get("prompt_tokens_details") or {}).get("cached_tokens"))
    assert cached == [None, 80]


def test_a_provider_overload_is_retried(providers, anthropic):
    proxy, _ = providers
    anthropic.script({"fault": "status", "status": 529})
    body = {"model": "claude", "max_tokens": 10, "messages": [{"role": "user", "content": "hello"}]}
    response = httpx.post(proxy.url + "/chat/completions", json=body, timeout=60)
    assert response.status_code == 200 and response.headers["x-tollgate-attempts"] == "2"
    assert anthropic.stats()["requests_total"] == 2


def test_a_provider_client_error_is_passed_through_in_the_openai_shape(providers, anthropic):
    proxy, _ = providers
    anthropic.script({"fault": "status", "status": 400})
    body = {"model": "claude", "max_tokens": 10, "messages": [{"role": "user", "content": "hello"}]}
    response = httpx.post(proxy.url + "/chat/completions", json=body, timeout=60)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "upstream_error" and "injected status 400" in error["message"]
    assert anthropic.stats()["requests_total"] == 1  # a 400 is not retried


def test_the_fake_refuses_what_the_real_service_refuses(anthropic):
    # The translation must supply what Anthropic requires; the fake checks it like the real service.
    body = {"model": "c", "messages": [{"role": "user", "content": "x"}]}
    assert httpx.post(anthropic.base_url + "/v1/messages", json=body, headers=ANTHROPIC_HEADERS).status_code == 400
