"""The provider fakes speak each provider's own wire format (checked directly, without litellm)."""

from __future__ import annotations

import httpx
import orjson

ANTHROPIC_HEADERS = {"x-api-key": "k", "anthropic-version": "2023-06-01"}


def events(text: str) -> list[tuple[str | None, dict]]:
    found = []
    for block in text.strip().split("\n\n"):
        name = None
        data = None
        for line in block.splitlines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = orjson.loads(line[6:])
        found.append((name, data))
    return found


def test_anthropic_message_and_its_checks(anthropic):
    url = anthropic.base_url + "/v1/messages"
    body = {"model": "claude-x", "max_tokens": 3, "messages": [{"role": "user", "content": "alpha beta gamma"}]}
    assert httpx.post(url, json=body).status_code == 401
    missing = httpx.post(url, json={**body, "max_tokens": None}, headers=ANTHROPIC_HEADERS)
    assert missing.status_code == 400 and missing.json()["error"]["type"] == "invalid_request_error"
    system_role = {**body, "messages": [{"role": "system", "content": "x"}]}
    assert httpx.post(url, json=system_role, headers=ANTHROPIC_HEADERS).status_code == 400
    message = httpx.post(url, json=body, headers=ANTHROPIC_HEADERS).json()
    assert message["type"] == "message" and message["role"] == "assistant"
    assert message["content"] == [{"type": "text", "text": "echo: alpha beta"}]
    assert message["stop_reason"] == "max_tokens"  # 5 tokens wanted, 3 allowed
    assert message["usage"] == {"input_tokens": 3, "output_tokens": 3, "cache_creation_input_tokens": 0,
                                "cache_read_input_tokens": 0}


def test_anthropic_stream_event_sequence(anthropic):
    body = {"model": "claude-x", "max_tokens": 50, "stream": True,
            "messages": [{"role": "user", "content": "one two"}]}
    text = httpx.post(anthropic.base_url + "/v1/messages", json=body, headers=ANTHROPIC_HEADERS).text
    sequence = events(text)
    names = [name for name, _ in sequence]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert all(name == "content_block_delta" for name in names[3:-3]) and len(names) == 3 + 5 + 3
    assert all(name == data["type"] for name, data in sequence)
    deltas = "".join(data["delta"]["text"] for name, data in sequence if name == "content_block_delta")
    assert deltas == "echo: one two one two"
    assert sequence[-2][1]["delta"]["stop_reason"] == "end_turn" and sequence[-2][1]["usage"] == {"output_tokens": 5}


def test_anthropic_prompt_cache_is_written_then_read(anthropic):
    system = [{"type": "text", "text": "policy " * 40, "cache_control": {"type": "ephemeral"}}]
    body = {"model": "c", "max_tokens": 5, "system": system, "messages": [{"role": "user", "content": "q one"}]}
    first = httpx.post(anthropic.base_url + "/v1/messages", json=body, headers=ANTHROPIC_HEADERS).json()["usage"]
    body["messages"] = [{"role": "user", "content": "another question"}]
    second = httpx.post(anthropic.base_url + "/v1/messages", json=body, headers=ANTHROPIC_HEADERS).json()["usage"]
    assert (first["cache_creation_input_tokens"], first["cache_read_input_tokens"], first["input_tokens"]) == (40, 0, 2)
    assert (second["cache_creation_input_tokens"], second["cache_read_input_tokens"]) == (0, 40)


def test_gemini_generate_content_and_stream(gemini):
    base = gemini.base_url + "/v1beta/models/gemini-2.0-flash"
    body = {"contents": [{"role": "user", "parts": [{"text": "red green"}]}],
            "generationConfig": {"maxOutputTokens": 2}}
    assert httpx.post(base + ":generateContent", json=body).status_code == 403
    answer = httpx.post(base + ":generateContent", json=body, headers={"x-goog-api-key": "k"}).json()
    candidate = answer["candidates"][0]
    assert candidate["content"] == {"parts": [{"text": "echo: red"}], "role": "model"}
    assert candidate["finishReason"] == "MAX_TOKENS"
    assert answer["usageMetadata"] == {"promptTokenCount": 2, "candidatesTokenCount": 2, "totalTokenCount": 4}
    del body["generationConfig"]
    streamed = httpx.post(base + ":streamGenerateContent?alt=sse&key=k", json=body).text
    chunks = [data for _, data in events(streamed)]
    assert "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks) == "echo: red green red green"
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP" and "finishReason" not in chunks[0]["candidates"][0]
    assert chunks[-1]["usageMetadata"]["candidatesTokenCount"] == 5
    bad_role = {"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}
    error = httpx.post(base + ":generateContent", json=bad_role, headers={"x-goog-api-key": "k"})
    assert error.status_code == 400 and error.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_gemini_reports_implicitly_cached_prefix_tokens(gemini):
    url = gemini.base_url + "/v1beta/models/g:generateContent"
    system = {"parts": [{"text": "handbook " * 30}]}

    def ask(question: str) -> dict:
        body = {"systemInstruction": system, "contents": [{"role": "user", "parts": [{"text": question}]}]}
        return httpx.post(url, json=body, headers={"x-goog-api-key": "k"}).json()["usageMetadata"]

    assert "cachedContentTokenCount" not in ask("first question")
    assert ask("second question")["cachedContentTokenCount"] == 30


def test_injected_errors_use_each_providers_error_shape(anthropic, gemini):
    anthropic.script({"fault": "status", "status": 529})
    gemini.script({"fault": "status", "status": 429})
    body = {"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    overloaded = httpx.post(anthropic.base_url + "/v1/messages", json=body, headers=ANTHROPIC_HEADERS)
    assert overloaded.status_code == 529
    assert overloaded.json() == {"type": "error", "error": {"type": "overloaded_error",
                                                            "message": "fake provider injected status 529"}}
    limited = httpx.post(gemini.base_url + "/v1beta/models/g:generateContent?key=k",
                         json={"contents": [{"role": "user", "parts": [{"text": "x"}]}]})
    assert limited.status_code == 429 and limited.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
