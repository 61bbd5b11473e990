"""Health checks take a replica out of rotation and bring it back, over loopback."""

from __future__ import annotations

import httpx

from sidecar.upstreams.deployments import LiveDeployment
from sidecar.upstreams.health import HealthTracker
from tests.sidecar.routing.conftest import chat, served
from tests.waiting import wait_until

HEALTH = {"health": {"enabled": True, "interval_s": 0.05, "timeout_s": 0.5, "unhealthy_after": 2, "healthy_after": 2}}


def route(*fakes, kind: str = "generic") -> dict:
    return {"m": {"deployments": [{"base_url": f.url, "name": f"r{i}", "kind": kind} for i, f in enumerate(fakes)]}}


def health_of(proxy, index: int) -> LiveDeployment:
    return proxy.app.runtime.routes["m"].deployments[index]


def test_an_unhealthy_replica_is_taken_out_and_brought_back(make_sidecar, fake, fake2):
    proxy, _ = make_sidecar(route(fake, fake2), routing=HEALTH)
    first = health_of(proxy, 0)
    fake.set_engine(healthy=False)
    wait_until(lambda: not first.healthy, what="r0 to be taken out")
    for _ in range(4):
        chat(proxy)
    assert served([fake, fake2]) == [0, 4]
    metrics = httpx.get(proxy.url.removesuffix("/v1") + "/metrics").text
    assert 'tollgate_upstream_healthy{deployment="r0",model="m"} 0.0' in metrics
    fake.set_engine(healthy=True)
    wait_until(lambda: first.healthy, what="r0 to come back")
    for _ in range(4):
        chat(proxy)
    assert served([fake, fake2]) == [2, 6]


def test_a_replica_that_stops_answering_is_taken_out(make_sidecar, fake, fake2):
    proxy, _ = make_sidecar(route(fake, fake2), routing=HEALTH)
    fake.stop()
    wait_until(lambda: not health_of(proxy, 0).healthy, what="r0 to be taken out")
    responses = [chat(proxy) for _ in range(3)]
    # No request pays for a connection attempt to the stopped replica.
    assert all(r.headers["x-tollgate-attempts"] == "1" for r in responses)
    assert served([fake2]) == [3]


def test_vllm_deployments_are_checked_without_enabling_health(make_sidecar, fake, fake2):
    routing = {"health": {"interval_s": 0.05, "unhealthy_after": 1}}
    proxy, _ = make_sidecar(route(fake, fake2, kind="vllm"), routing=routing)
    fake2.set_engine(healthy=False)
    wait_until(lambda: not health_of(proxy, 1).healthy, what="the vLLM replica to be taken out")
    assert health_of(proxy, 0).healthy


def test_generic_deployments_are_not_checked_unless_enabled(make_sidecar, fake, fake2, fake3):
    # A vLLM deployment beside them is checked by the same loop: once it has seen five rounds, the
    # generic ones have had five chances to be checked too.
    models = {**route(fake, fake2), "v": {"deployments": [{"base_url": fake3.url, "name": "v0", "kind": "vllm"}]}}
    make_sidecar(models, routing={"health": {"interval_s": 0.02}})
    wait_until(lambda: fake3.stats()["by_path"].get("/health", 0) >= 5, what="five health rounds")
    assert served([fake, fake2]) == [0, 0]
    assert fake.stats()["by_path"].get("/health", 0) == 0 and fake2.stats()["by_path"].get("/health", 0) == 0


def test_when_every_replica_is_down_requests_are_still_tried(make_sidecar, fake):
    proxy, _ = make_sidecar(route(fake), routing=HEALTH)
    fake.set_engine(healthy=False)  # /health says no, but the API still answers
    wait_until(lambda: not health_of(proxy, 0).healthy, what="r0 to be taken out")
    assert chat(proxy).status_code == 200


def test_tracker_needs_consecutive_results_to_change_state():
    deployment = LiveDeployment(label="d", provider="openai", upstream_model="m", client=None)  # type: ignore[arg-type]
    tracker = HealthTracker(deployment, "http://x/health", unhealthy_after=2, healthy_after=3)
    assert tracker.observe(False, "HTTP 503") is None and deployment.healthy
    assert tracker.observe(True) is None  # a success resets the failure count
    assert tracker.observe(False) is None and tracker.observe(False) is False and not deployment.healthy
    assert tracker.observe(True) is None and tracker.observe(True) is None
    assert tracker.observe(False) is None  # a failure resets the success count
    assert [tracker.observe(True) for _ in range(3)] == [None, None, True] and deployment.healthy
