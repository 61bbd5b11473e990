"""Shadow mirroring: the client never sees the candidate's answer, its failures never reach the client, and
its rows are logged apart (paired by `shadow_of`, billed to no key or user)."""

from __future__ import annotations

import httpx

from core.releases import set_shadow
from sidecar.fake_upstream import FakeBehaviour, start_fake_upstream_thread
from tests.sidecar.test_proxy import wait_record
from tests.waiting import wait_until


def shadow_of(collector, request_id: str):
    """The shadow rows of `request_id`, once there is at least one."""
    return wait_until(lambda: [r for r in collector.records if r.shadow_of == request_id],
                      what=f"a shadow record for {request_id}")


def ask(proxy, stream: bool = False) -> httpx.Response:
    body = {"model": "fake-model", "stream": stream, "prompt": {"name": "greet", "variables": {"name": "Ada"}}}
    return httpx.post(proxy.url + "/chat/completions", json=body, headers={"X-Tollgate-User": "u1",
                                                                           "X-Tollgate-Feature": "greeting"})


def test_the_shadow_answer_is_logged_paired_and_never_returned(releases, release_sidecar, shadow_upstream):
    production = releases.release("You are polite.")
    candidate = releases.write("You are cheerful.")
    set_shadow(releases.engine, "greet", version=candidate, model="candidate-model", registry=releases.registry)
    proxy, collector = release_sidecar(
        {"candidate-model": {"deployments": [{"base_url": shadow_upstream.url, "model": "fake-model"}]}})
    for stream in (False, True):
        response = ask(proxy, stream=stream)
        assert response.status_code == 200
        assert "shadow candidate answer" not in response.text
        assert "Ada" in response.text
        served = wait_record(collector, response.headers["x-request-id"])
        [mirror] = shadow_of(collector, served.request_id)
        assert (served.variant, served.prompt_version) == ("production", production)
        assert (mirror.variant, mirror.prompt_version, mirror.served_model) == ("shadow", candidate, "candidate-model")
        assert mirror.status == 200 and mirror.response_body is not None
        assert b"shadow candidate answer" in mirror.response_body
        assert not mirror.stream and b'"stream"' not in (mirror.request_body or b"")
        # Billed apart: never to the user's key, user or feature.
        assert (mirror.key_id, mirror.user, mirror.feature) == (None, None, "shadow:greet")
        assert (served.user, served.feature) == ("u1", "greeting")


def test_shadow_failures_never_reach_the_client(releases, release_sidecar):
    releases.release("You are polite.")
    set_shadow(releases.engine, "greet", model="broken-model", registry=releases.registry)
    with start_fake_upstream_thread(FakeBehaviour(fault="status", status=500)) as broken:
        proxy, collector = release_sidecar(
            {"broken-model": {"deployments": [{"base_url": broken.url, "model": "fake-model"}]}})
        response = ask(proxy)
        assert response.status_code == 200 and "Ada" in response.text
        [mirror] = shadow_of(collector, response.headers["x-request-id"])
        assert mirror.status == 502 and mirror.error_class == "upstream_error"
        served = wait_record(collector, response.headers["x-request-id"])
        assert served.status == 200 and served.error_class is None


def test_a_slow_shadow_does_not_delay_the_answer(releases, release_sidecar):
    releases.release("You are polite.")
    set_shadow(releases.engine, "greet", model="slow-model", registry=releases.registry)
    with start_fake_upstream_thread(FakeBehaviour(ttft_s=1.5)) as slow:
        proxy, collector = release_sidecar(
            {"slow-model": {"deployments": [{"base_url": slow.url, "model": "fake-model"}]}})
        response = ask(proxy)
        assert response.status_code == 200
        served = wait_record(collector, response.headers["x-request-id"])
        [mirror] = shadow_of(collector, served.request_id)
        # Ordering, not timing: the served answer ended before its mirror did (it sat 1.5 s upstream).
        assert served.started_at + served.latency_ms / 1e3 < mirror.started_at + mirror.latency_ms / 1e3


def test_a_failed_request_is_not_mirrored(releases, release_sidecar, shadow_upstream):
    releases.release("You are polite.")
    set_shadow(releases.engine, "greet", model="candidate-model", registry=releases.registry)
    proxy, collector = release_sidecar(
        {"candidate-model": {"deployments": [{"base_url": shadow_upstream.url, "model": "fake-model"}]}})
    body = {"model": "fake-model", "prompt": {"name": "greet", "variables": {}}}
    response = httpx.post(proxy.url + "/chat/completions", json=body)
    assert response.status_code == 400
    wait_record(collector, response.headers["x-request-id"])
    # A good request after it is mirrored; once its shadow row is in, the failed one's would have been too.
    good = ask(proxy)
    assert good.status_code == 200
    shadow_of(collector, good.headers["x-request-id"])
    assert [r.shadow_of for r in collector.records if r.shadow_of is not None] == [good.headers["x-request-id"]]
