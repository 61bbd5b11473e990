"""Bad input gets an OpenAI-shaped 4xx with a precise message and a traffic record, never a 5xx."""

from __future__ import annotations

import json
import random

import httpx
import orjson
import pytest

from tests.sidecar.test_proxy import CHAT, wait_record

CASES = [
    ("malformed json", b'{"model": "fake-model", "messages": [', 400, None),
    ("not an object", b"[1, 2, 3]", 400, None),
    ("empty body", b"", 400, None),
    ("missing messages", orjson.dumps({"model": "fake-model"}), 400, "messages"),
    ("empty messages", orjson.dumps({"model": "fake-model", "messages": []}), 400, "messages"),
    ("missing model", orjson.dumps({"messages": CHAT["messages"]}), 400, "model"),
    ("model wrong type", orjson.dumps({**CHAT, "model": 42}), 400, "model"),
    ("messages wrong type", orjson.dumps({**CHAT, "messages": "hi"}), 400, "messages"),
    ("message not object", orjson.dumps({**CHAT, "messages": ["hi"]}), 400, "messages[0]"),
    ("bad role", orjson.dumps({**CHAT, "messages": [{"role": "wizard", "content": "x"}]}), 400, "messages[0].role"),
    ("content wrong type", orjson.dumps({**CHAT, "messages": [{"role": "user", "content": 5}]}), 400,
     "messages[0].content"),
    ("temperature out of range", orjson.dumps({**CHAT, "temperature": 7}), 400, "temperature"),
    ("temperature wrong type", orjson.dumps({**CHAT, "temperature": "hot"}), 400, "temperature"),
    ("max_tokens zero", orjson.dumps({**CHAT, "max_tokens": 0}), 400, "max_tokens"),
    ("max_tokens float", orjson.dumps({**CHAT, "max_tokens": 1.5}), 400, "max_tokens"),
    ("stream not bool", orjson.dumps({**CHAT, "stream": "yes"}), 400, "stream"),
    ("stream_options without stream", orjson.dumps({**CHAT, "stream_options": {"include_usage": True}}), 400,
     "stream_options"),
    ("top_p out of range", orjson.dumps({**CHAT, "top_p": 1.5}), 400, "top_p"),
    ("response_format not object", orjson.dumps({**CHAT, "response_format": "json"}), 400, "response_format"),
    ("unknown model", orjson.dumps({**CHAT, "model": "no-such-model"}), 404, "model"),
]


@pytest.mark.parametrize(("name", "body", "status", "param"), CASES, ids=[c[0] for c in CASES])
def test_bad_request_is_rejected_in_openai_shape(sidecar, name, body, status, param):
    proxy, collector = sidecar
    response = httpx.post(proxy.url + "/chat/completions", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error["message"]
    record = wait_record(collector, response.headers["x-request-id"])
    assert record.status == status
    assert record.error_class == "client_error"
    assert record.request_body == body


def test_oversized_body_is_413(make_sidecar, fake):
    proxy, collector = make_sidecar({"fake-model": {"deployments": [{"base_url": fake.url}]}},
                                    sidecar={"max_body_bytes": 1024})
    big = {**CHAT, "messages": [{"role": "user", "content": "x" * 5000}]}
    response = httpx.post(proxy.url + "/chat/completions", json=big)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    assert wait_record(collector, response.headers["x-request-id"]).error_class == "client_error"
    assert fake.stats()["requests_total"] == 0


def test_wrong_content_type_method_and_path(sidecar):
    proxy, _ = sidecar
    text = httpx.post(proxy.url + "/chat/completions", content=b"hello", headers={"Content-Type": "text/plain"})
    assert text.status_code == 415
    method = httpx.get(proxy.url + "/chat/completions")
    assert method.status_code == 405 and method.json()["error"]["code"] == "method_not_allowed"
    missing = httpx.post(proxy.url + "/nothing-here", json={})
    assert missing.status_code == 404 and "error" in missing.json()


def test_completions_and_embeddings_validate_their_fields(sidecar):
    proxy, _ = sidecar
    no_prompt = httpx.post(proxy.url + "/completions", json={"model": "fake-model"})
    assert no_prompt.status_code == 400 and no_prompt.json()["error"]["param"] == "prompt"
    no_input = httpx.post(proxy.url + "/embeddings", json={"model": "fake-model"})
    assert no_input.status_code == 400 and no_input.json()["error"]["param"] == "input"


def _mutations(rng: random.Random) -> bytes:
    """A random bad request: valid shapes with one field broken, or broken bytes."""
    base = {**CHAT, "temperature": 0.5, "max_tokens": 8}
    choice = rng.randrange(6)
    if choice == 0:
        raw = orjson.dumps(base)
        cut = rng.randrange(1, len(raw))
        return raw[:cut]
    if choice == 1:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
    values = [None, True, -1, 0, 3.5, 10**30, "", "x" * 300, [], [1], {}, {"a": None}]
    key = rng.choice(["model", "messages", "temperature", "max_tokens", "stream", "top_p", "n", "stop",
                      "stream_options", "response_format"])
    broken = {**base, key: rng.choice(values)}
    if choice == 2:
        broken["messages"] = [{"role": rng.choice(["user", "bad", None, 3]), "content": rng.choice(values)}]
    if choice == 3:
        broken.pop(rng.choice(list(broken)))
    return json.dumps(broken).encode()


def test_generated_bad_requests_never_cause_a_5xx(sidecar, fake):
    """2,000 generated bad or odd requests: every answer is a well-formed JSON response below 500."""
    proxy, _collector = sidecar
    rng = random.Random(1234)
    statuses: dict[int, int] = {}
    with httpx.Client(base_url=proxy.url, timeout=10) as client:
        for _ in range(2000):
            response = client.post("/chat/completions", content=_mutations(rng),
                                   headers={"Content-Type": "application/json"})
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            assert response.status_code < 500, response.text
            if response.headers["content-type"].startswith("text/event-stream"):
                assert response.text.rstrip().endswith("data: [DONE]")
                continue
            body = response.json()
            assert "error" in body or "choices" in body
    assert sum(statuses.values()) == 2000
    assert statuses.get(400, 0) > 1000
