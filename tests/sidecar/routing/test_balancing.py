"""Load-aware balancing from vLLM's /metrics (served by the fake upstream's simulated engine)."""

from __future__ import annotations

import httpx

from core.config.routing import LoadSettings
from sidecar.upstreams.deployments import LiveDeployment
from sidecar.upstreams.vllm_metrics import EngineLoad
from tests.sidecar.routing.conftest import chat, served
from tests.waiting import wait_until

FAST_SCRAPE = {"load": {"metrics_interval_s": 0.05, "stale_after_s": 2.0}}


def vllm_route(*fakes) -> dict:
    return {"m": {"deployments": [{"base_url": f.url, "kind": "vllm", "name": f"r{i}"} for i, f in enumerate(fakes)]}}


def scraped(proxy, index: int, **expected: float):
    deployment = proxy.app.runtime.routes["m"].deployments[index]

    def check() -> bool:
        engine = deployment.engine
        return engine is not None and all(getattr(engine, k) == v for k, v in expected.items())

    return check


def test_requests_avoid_the_replica_with_a_queue(make_sidecar, fake, fake2):
    fake.set_engine(extra_waiting=6)
    proxy, _ = make_sidecar(vllm_route(fake, fake2), routing=FAST_SCRAPE)
    wait_until(scraped(proxy, 0, waiting=6.0), what="the first scrape")
    for _ in range(6):
        chat(proxy)
    assert served([fake, fake2]) == [0, 6]
    # The queue moves to the other replica: so does the traffic.
    fake.set_engine(extra_waiting=0)
    fake2.set_engine(extra_running=4, extra_waiting=2)
    wait_until(scraped(proxy, 1, waiting=2.0), what="the second scrape")
    for _ in range(4):
        chat(proxy)
    assert served([fake, fake2]) == [4, 6]


def test_a_nearly_full_kv_cache_counts_as_load(make_sidecar, fake, fake2):
    fake2.set_engine(kv_cache_usage=0.97)
    proxy, _ = make_sidecar(vllm_route(fake, fake2), routing=FAST_SCRAPE)
    wait_until(scraped(proxy, 1, kv_cache_usage=0.97), what="the scrape")
    for _ in range(5):
        chat(proxy)
    assert served([fake, fake2]) == [5, 0]


def test_equal_replicas_share_the_load(make_sidecar, fake, fake2):
    proxy, _ = make_sidecar(vllm_route(fake, fake2), routing=FAST_SCRAPE)
    wait_until(scraped(proxy, 0, running=0.0), what="the scrape")
    wait_until(scraped(proxy, 1, running=0.0), what="the scrape")
    for _ in range(8):
        chat(proxy)
    assert served([fake, fake2]) == [4, 4]


def test_the_sidecar_exports_what_it_scraped(make_sidecar, fake, fake2):
    fake.set_engine(extra_running=3, kv_cache_usage=0.5)
    proxy, _ = make_sidecar(vllm_route(fake, fake2), routing=FAST_SCRAPE)
    wait_until(scraped(proxy, 0, running=3.0), what="the scrape")
    text = httpx.get(proxy.url.removesuffix("/v1") + "/metrics").text
    assert 'tollgate_vllm_engine{deployment="r0",figure="running",model="m"} 3.0' in text
    assert 'tollgate_vllm_engine{deployment="r0",figure="kv_cache_usage",model="m"} 0.5' in text
    assert 'tollgate_upstream_load{deployment="r0",model="m"} 3.0' in text
    assert 'tollgate_upstream_healthy{deployment="r1",model="m"} 1.0' in text


def test_a_lost_metrics_endpoint_falls_back_to_own_counts(make_sidecar, fake, fake2):
    fake.set_engine(extra_waiting=50)
    proxy, _ = make_sidecar(vllm_route(fake, fake2), routing=FAST_SCRAPE)
    wait_until(scraped(proxy, 0, waiting=50.0), what="the scrape")
    fake.stop()  # metrics (and the server) gone: the old queue figure must not stick
    deployment = proxy.app.runtime.routes["m"].deployments[0]
    wait_until(lambda: deployment.engine is None, what="the failed scrape to clear the sample")


def test_load_score_corrects_a_stale_scrape_with_own_requests():
    settings = LoadSettings(waiting_weight=1.0, kv_cache_weight=8.0, kv_cache_threshold=0.8, stale_after_s=5.0)
    deployment = LiveDeployment(label="d", provider="openai", upstream_model="m", client=None)  # type: ignore[arg-type]
    assert deployment.load(100.0, settings) == 0.0
    deployment.outstanding = 2
    deployment.set_engine_load(EngineLoad(running=3, waiting=1, kv_cache_usage=0.9, at=100.0))
    # running 3 + waiting 1, waiting weighted once more, KV half-way from 0.8 to 1.0 -> 8 * 0.5
    assert deployment.load(100.5, settings) == 3 + 1 + 1 + 4.0
    deployment.outstanding = 5  # three more sent since the scrape
    assert deployment.load(100.5, settings) == 3 + 1 + 3 + 1 + 4.0
    assert deployment.load(106.0, settings) == 5.0  # stale: own count only
