"""The sidecar as a proxy, over real loopback HTTP against the fake upstream."""

from __future__ import annotations

import httpx
import orjson
import pytest

from sidecar.fake_upstream import FakeUpstreamThread
from sidecar.traffic.usage import summarise_stream
from tests.sidecar.conftest import EVERY_SSE_STYLE, TrafficCollector
from tests.waiting import wait_until

CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": "hello there friend"}]}


def wait_record(collector: TrafficCollector, request_id: str):
    """The traffic record of `request_id`, once handed over (that happens after the answer went out)."""
    found = wait_until(lambda: [r for r in collector.records if r.request_id == request_id],
                       what=f"the traffic record of {request_id}")
    return found[0]


def sse_events(lines: list[str]) -> list[str]:
    return [line.removeprefix("data: ") for line in lines if line.startswith("data: ")]


def test_non_streaming_passthrough_returns_the_upstream_answer(sidecar, fake: FakeUpstreamThread):
    proxy, collector = sidecar
    direct = httpx.post(fake.url + "/chat/completions", json=CHAT).json()
    response = httpx.post(proxy.url + "/chat/completions", json=CHAT, headers={"X-Tollgate-User": "u1"})
    assert response.status_code == 200
    body = response.json()
    assert body["choices"][0]["message"]["content"] == direct["choices"][0]["message"]["content"]
    assert body["usage"] == direct["usage"]
    record = wait_record(collector, response.headers["x-request-id"])
    assert record.status == 200 and record.error_class is None
    assert record.user == "u1"
    assert record.requested_model == "fake-model" and record.served_model == "fake-model"
    assert orjson.loads(record.response_body)["usage"]["completion_tokens"] == body["usage"]["completion_tokens"]
    assert record.latency_ms > 0


def test_tags_and_request_id_come_from_headers(sidecar):
    proxy, collector = sidecar
    headers = {
        "X-Request-Id": "req-123",
        "X-Tollgate-Feature": "booking",
        "X-Tollgate-Segment": "business",
        "X-Tollgate-Prompt": "booking_extract@abc123",
    }
    response = httpx.post(proxy.url + "/chat/completions", json=CHAT, headers=headers)
    assert response.headers["x-request-id"] == "req-123"
    record = wait_record(collector, "req-123")
    assert (record.feature, record.segment) == ("booking", "business")
    assert (record.prompt_name, record.prompt_version) == ("booking_extract", "abc123")


@EVERY_SSE_STYLE
def test_stream_is_relayed_chunk_by_chunk(sidecar, fake: FakeUpstreamThread):
    proxy, collector = sidecar
    fake.set_behaviour(inter_token_s=0.05, output_tokens=6)
    lines: list[str] = []
    with httpx.stream("POST", proxy.url + "/chat/completions", json={**CHAT, "stream": True}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                lines.append(line)
    events = sse_events(lines)
    assert events[-1] == "[DONE]"
    content = [orjson.loads(e) for e in events[:-1]]
    assert all(chunk["choices"] for chunk in content), "usage-only chunk leaked to a client that did not ask"
    # That the chunks arrive as they are generated, not buffered, is proven without timings in
    # test_stream_relay.py (an upstream that holds the rest until the client has the first token).
    record = wait_record(collector, response.headers["x-request-id"])
    assert record.stream and record.ttft_ms is not None and record.error_class is None
    usage = summarise_stream(record.response_chunks).usage
    assert usage is not None, "the sidecar must ask the upstream for usage on streams"


@EVERY_SSE_STYLE
def test_stream_usage_is_forwarded_when_the_client_asks(sidecar, fake: FakeUpstreamThread):
    proxy, _ = sidecar
    request = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    with httpx.stream("POST", proxy.url + "/chat/completions", json=request) as response:
        events = sse_events(list(response.iter_lines()))
    usage_chunks = [orjson.loads(e) for e in events[:-1] if '"usage":{' in e]
    assert len(usage_chunks) == 1 and usage_chunks[0]["choices"] == []
    forwarded = fake.stats()["recent"][-1]["body"]
    assert forwarded["stream_options"] == {"include_usage": True}


def test_retries_5xx_then_succeeds(sidecar, fake: FakeUpstreamThread):
    proxy, collector = sidecar
    fake.script({"fault": "status", "status": 503}, {"fault": "status", "status": 500})
    response = httpx.post(proxy.url + "/chat/completions", json=CHAT)
    assert response.status_code == 200
    assert response.headers["x-tollgate-attempts"] == "3"
    assert fake.stats()["by_path"]["/v1/chat/completions"] == 3
    assert wait_record(collector, response.headers["x-request-id"]).attempts == 3


def test_retries_429_honouring_retry_after(sidecar, fake: FakeUpstreamThread):
    proxy, _ = sidecar
    fake.script({"fault": "status", "status": 429, "retry_after_s": 0})
    response = httpx.post(proxy.url + "/chat/completions", json=CHAT)
    assert response.status_code == 200
    assert response.headers["x-tollgate-attempts"] == "2"


def test_client_errors_from_upstream_are_not_retried(sidecar, fake: FakeUpstreamThread):
    proxy, collector = sidecar
    fake.script({"fault": "status", "status": 400})
    response = httpx.post(proxy.url + "/chat/completions", json=CHAT)
    assert response.status_code == 400
    assert "error" in response.json()
    assert fake.stats()["by_path"]["/v1/chat/completions"] == 1
    assert wait_record(collector, response.headers["x-request-id"]).error_class == "client_error"


def test_exhausted_retries_answer_502_in_openai_shape(sidecar, fake: FakeUpstreamThread):
    proxy, collector = sidecar
    fake.set_behaviour(fault="status", status=503)
    response = httpx.post(proxy.url + "/chat/completions", json=CHAT)
    assert response.status_code == 502
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert "503" in error["message"] and "3 attempts" in error["message"]
    assert wait_record(collector, response.headers["x-request-id"]).error_class == "upstream_error"


def test_connection_reset_is_retried(sidecar, fake: FakeUpstreamThread):
    proxy, _ = sidecar
    fake.script({"fault": "reset"})
    response = httpx.post(proxy.url + "/chat/completions", json=CHAT)
    assert response.status_code == 200


def test_fallback_chain_serves_from_the_next_model(make_sidecar, fake: FakeUpstreamThread):
    from tests.conftest import free_port

    dead = f"http://127.0.0.1:{free_port()}/v1"
    proxy, collector = make_sidecar({
        "primary": {"deployments": [{"base_url": dead}], "fallbacks": ["backup"]},
        "backup": {"deployments": [{"base_url": fake.url, "model": "fake-model"}]},
    })
    response = httpx.post(proxy.url + "/chat/completions", json={**CHAT, "model": "primary"})
    assert response.status_code == 200
    record = wait_record(collector, response.headers["x-request-id"])
    assert (record.requested_model, record.served_model) == ("primary", "backup")
    assert record.attempts == 4  # 3 tries on the dead primary, then the backup
    assert fake.stats()["recent"][-1]["body"]["model"] == "fake-model"


def test_hanging_upstream_times_out_with_504(make_sidecar, fake: FakeUpstreamThread):
    proxy, collector = make_sidecar(
        {"fake-model": {"deployments": [{"base_url": fake.url}]}},
        sidecar={"first_byte_timeout_s": 0.3, "retries": 0},
    )
    fake.set_behaviour(fault="hang")
    response = httpx.post(proxy.url + "/chat/completions", json=CHAT, timeout=10)
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "upstream_timeout"
    assert wait_record(collector, response.headers["x-request-id"]).error_class == "timeout"


@EVERY_SSE_STYLE
def test_mid_stream_cut_ends_with_an_error_event_not_done(sidecar, fake: FakeUpstreamThread):
    proxy, collector = sidecar
    fake.set_behaviour(fault="cut", cut_after=3, output_tokens=10)
    with httpx.stream("POST", proxy.url + "/chat/completions", json={**CHAT, "stream": True}) as response:
        assert response.status_code == 200
        events = sse_events(list(response.iter_lines()))
    assert "[DONE]" not in events
    last = orjson.loads(events[-1])
    assert last["error"]["code"] in ("stream_interrupted", "stream_incomplete")
    assert len(events) == 4  # three relayed events, then the error
    record = wait_record(collector, response.headers["x-request-id"])
    assert record.error_class == "stream_error"


def test_garbage_body_is_a_parse_failure(sidecar, fake: FakeUpstreamThread):
    proxy, collector = sidecar
    fake.set_behaviour(fault="garbage")
    response = httpx.post(proxy.url + "/chat/completions", json=CHAT)
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_invalid_response"
    assert wait_record(collector, response.headers["x-request-id"]).error_class == "parse_failure"


def test_least_outstanding_spreads_concurrent_requests(make_sidecar, fake, fake2):
    import concurrent.futures

    fake.set_behaviour(ttft_s=0.2)
    fake2.set_behaviour(ttft_s=0.2)
    proxy, _ = make_sidecar({"fake-model": {"deployments": [{"base_url": fake.url}, {"base_url": fake2.url}]}})
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: httpx.post(proxy.url + "/chat/completions", json=CHAT, timeout=10).status_code, range(8)))
    assert statuses == [200] * 8
    first = fake.stats()["by_path"].get("/v1/chat/completions", 0)
    second = fake2.stats()["by_path"].get("/v1/chat/completions", 0)
    assert first + second == 8 and first >= 3 and second >= 3


def test_completions_and_embeddings_are_proxied(sidecar):
    proxy, _ = sidecar
    completion = httpx.post(proxy.url + "/completions", json={"model": "fake-model", "prompt": "say hi"})
    assert completion.status_code == 200 and completion.json()["choices"][0]["text"]
    embedding = httpx.post(proxy.url + "/embeddings", json={"model": "fake-model", "input": ["a", "b"]})
    assert embedding.status_code == 200 and len(embedding.json()["data"]) == 2


def test_models_health_and_readiness(sidecar):
    proxy, _ = sidecar
    root = proxy.url.removesuffix("/v1")
    assert [m["id"] for m in httpx.get(proxy.url + "/models").json()["data"]] == ["fake-model"]
    assert httpx.get(root + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(root + "/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


def test_upstream_key_comes_from_the_environment_and_is_sent(make_sidecar, fake, monkeypatch):
    monkeypatch.setenv("FAKE_UPSTREAM_KEY", "sk-test-123")
    proxy, _ = make_sidecar({"fake-model": {"deployments": [{"base_url": fake.url, "api_key_env": "FAKE_UPSTREAM_KEY"}]}})
    httpx.post(proxy.url + "/chat/completions", json=CHAT, headers={"Authorization": "Bearer client-key"})
    assert fake.stats()["recent"][-1]["headers"]["authorization"] == "Bearer sk-test-123"


@pytest.mark.slow
def test_litellm_provider_path_over_http(make_sidecar, fake: FakeUpstreamThread):
    proxy, _ = make_sidecar({
        "via-litellm": {"deployments": [{"provider": "litellm", "model": "openai/fake-model", "base_url": fake.url,
                                          "api_key_env": "PATH"}]},
    })
    response = httpx.post(proxy.url + "/chat/completions", json={**CHAT, "model": "via-litellm"}, timeout=60)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"].startswith("echo:")
    with httpx.stream("POST", proxy.url + "/chat/completions", json={**CHAT, "model": "via-litellm", "stream": True},
                      timeout=60) as stream:
        events = sse_events(list(stream.iter_lines()))
    assert events[-1] == "[DONE]" and len(events) > 2
