"""The cache's parts on their own: request keys and scopes, bypass rules, the memory tier, SSE replay."""

from __future__ import annotations

import numpy as np
import orjson

from sidecar.cache.keys import bypass_mode, describe_request
from sidecar.cache.memory import CacheEntry, MemoryTier
from sidecar.cache.replay import document_to_sse, sse_to_document
from sidecar.cache.semantic import SemanticIndex
from sidecar.traffic.record import RawTraffic


def record(prompt: str | None = None, version: str | None = None) -> RawTraffic:
    raw = RawTraffic(request_id="r", started_at=0.0, endpoint="chat.completions", status=0, latency_ms=0.0)
    raw.prompt_name, raw.prompt_version = prompt, version
    return raw


def chat(text: str = "hello", **params) -> dict:
    return {"model": "m", "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": text}],
            **params}


def test_keys_ignore_delivery_fields_and_number_spelling_but_not_what_is_asked():
    base = describe_request("chat.completions", chat(temperature=0), record())
    assert base is not None and base.deterministic
    same = describe_request("chat.completions", {**chat(temperature=0.0), "stream": True, "user": "u1",
                                                 "stream_options": {"include_usage": True}}, record())
    assert same is not None and same.key == base.key
    for changed in (chat(temperature=0.5), chat("hello!", temperature=0), {**chat(temperature=0), "model": "n"},
                    {**chat(temperature=0), "max_tokens": 5}):
        other = describe_request("chat.completions", changed, record())
        assert other is not None and other.key != base.key
    versioned = describe_request("chat.completions", chat(temperature=0), record("faq", "v2"))
    assert versioned is not None and versioned.key != base.key and versioned.scope != base.scope
    assert describe_request("embeddings", {"model": "m", "input": "x"}, record()) is None


def test_the_semantic_scope_is_everything_but_the_last_user_message():
    first = describe_request("chat.completions", chat("What is the capital of France?", temperature=0), record())
    second = describe_request("chat.completions", chat("Capital of France?", temperature=0), record())
    assert first is not None and second is not None
    assert first.scope == second.scope and first.key != second.key
    assert first.query == "What is the capital of France?"
    other_system = {**chat("Capital of France?", temperature=0)}
    other_system["messages"] = [{"role": "system", "content": "in French"}, other_system["messages"][1]]
    described = describe_request("chat.completions", other_system, record())
    assert described is not None and described.scope != first.scope
    sampled = describe_request("chat.completions", chat("Capital of France?", temperature=0.2), record())
    assert sampled is not None and not sampled.deterministic and sampled.scope is None
    several = describe_request("chat.completions", chat("Capital?", temperature=0, n=2), record())
    assert several is not None and several.scope is None
    parts = chat(temperature=0)
    parts["messages"][1]["content"] = [{"type": "text", "text": "part one"}, {"type": "text", "text": "part two"}]
    described = describe_request("chat.completions", parts, record())
    assert described is not None and described.query == "part one\npart two"


def test_bypass_headers():
    assert bypass_mode({}) is None
    assert bypass_mode({"x-tollgate-cache": "bypass"}) == "bypass"
    assert bypass_mode({"cache-control": "no-store"}) == "bypass"
    assert bypass_mode({"cache-control": "max-age=0, no-cache"}) == "refresh"
    assert bypass_mode({"x-tollgate-cache": "refresh"}) == "refresh"
    assert bypass_mode({"cache-control": "max-age=60"}) is None


def test_the_memory_tier_evicts_least_recently_used_within_both_bounds():
    memory = MemoryTier(max_entries=3, max_bytes=100)
    for name in "abc":
        memory.put(CacheEntry(name, b"x" * 10, expires_at=2e9))
    assert memory.get("a") is not None  # a is now the most recently used
    memory.put(CacheEntry("d", b"x" * 10, expires_at=2e9))
    assert memory.get("b") is None and memory.get("a") is not None and len(memory) == 3
    memory.put(CacheEntry("big", b"x" * 90, expires_at=2e9))  # c, then d, make room (a was just read)
    assert memory.bytes == 100 and len(memory) == 2
    assert memory.get("big") is not None and memory.get("a") is not None and memory.get("d") is None
    memory.put(CacheEntry("huge", b"x" * 101, expires_at=2e9))
    assert memory.get("huge") is None
    memory.put(CacheEntry("old", b"x", expires_at=100.0))
    assert memory.get("old", now=99.0) is not None
    assert memory.get("old", now=100.0) is None
    assert memory.get("old", now=99.0) is None  # an expired entry is dropped when found


def test_a_document_replayed_as_sse_reads_back_as_the_same_document():
    document = {"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris."}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}
    stream = document_to_sse(document, include_usage=True)
    assert stream.endswith(b"data: [DONE]\n\n")
    assert sse_to_document([stream[:17], stream[17:]], "chat.completions") == document
    without_usage = document_to_sse(document, include_usage=False)
    assert b'"usage"' not in without_usage
    completion = {"id": "t1", "object": "text_completion", "created": 1, "model": "m",
                  "choices": [{"index": 0, "text": "four", "finish_reason": "length"}]}
    assert sse_to_document([document_to_sse(completion, include_usage=False)], "completions") == completion


def test_incomplete_or_tool_call_streams_are_not_stored():
    document = {"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris."}, "finish_reason": "stop"}]}
    stream = document_to_sse(document, include_usage=False)
    assert sse_to_document([stream.replace(b"data: [DONE]\n\n", b"")], "chat.completions") is None
    tool = b'data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0}]}}]}\n\n' + stream
    assert sse_to_document([tool], "chat.completions") is None
    error = b'data: {"error":{"message":"cut"}}\n\ndata: [DONE]\n\n'
    assert sse_to_document([error], "chat.completions") is None
    assert orjson.loads(stream.split(b"\n\n")[0][6:])["choices"][0]["delta"]["content"] == "Paris."


def test_the_semantic_index_finds_the_nearest_neighbour_above_the_threshold_and_stays_bounded():
    index = SemanticIndex(threshold=0.9, max_per_scope=20, max_scopes=2)
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(25, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    for number, vector in enumerate(vectors):
        index.add("s", f"k{number}", vector)
    assert len(index) == 20  # the five oldest were replaced
    found = index.nearest("s", vectors[24])
    assert found is not None and found[0] == "k24" and found[1] > 0.99
    assert index.nearest("s", vectors[0]) is None  # replaced, and random vectors are far apart
    assert index.nearest("other", vectors[24]) is None
    index.add("t", "x", vectors[0])
    index.add("u", "y", vectors[1])
    assert index.nearest("s", vectors[24]) is None  # least recently used scope dropped
