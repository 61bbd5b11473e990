"""Prompts served by name, the arm each request gets (canary split, stickiness, A/B), and bad prompt requests."""

from __future__ import annotations

import math

import httpx
import pytest

from core.releases import ArmSpec, promote, set_canary, start_experiment
from tests.sidecar.test_proxy import wait_record


def ask(proxy, user: str | None = None, **prompt) -> httpx.Response:
    body = {"model": "fake-model", "prompt": {"name": "greet", "variables": {"name": "Ada"}, **prompt}}
    headers = {"X-Tollgate-User": user} if user else {}
    return httpx.post(proxy.url + "/chat/completions", json=body, headers=headers, timeout=10)


def test_a_prompt_named_in_the_request_is_rendered_at_the_production_version(releases, release_sidecar, fake):
    version = releases.release("You are polite.")
    proxy, collector = release_sidecar()
    response = ask(proxy, user="u1", variables={"name": "Ada", "language": "French"})
    assert response.status_code == 200, response.text
    assert response.headers["x-tollgate-prompt-version"] == version
    assert response.headers["x-tollgate-variant"] == "production"
    assert "Ada" in response.json()["choices"][0]["message"]["content"]
    record = wait_record(collector, response.headers["x-request-id"])
    assert (record.prompt_name, record.prompt_version, record.variant) == ("greet", version, "production")
    sent = record.request_body  # the client's body as received; the upstream got the rendered one
    assert sent is not None and b'"prompt"' in sent


def test_the_rendered_request_carries_messages_parameters_and_client_fields(releases, release_sidecar, fake):
    releases.release("You are polite.")
    captured = []

    from sidecar.pipeline import BaseStage

    class Capture(BaseStage):
        name = "capture"

        async def on_request(self, exchange):
            captured.append(dict(exchange.payload))

    proxy, _ = release_sidecar()
    proxy.app.runtime.stages.append(Capture())
    body = {"model": "fake-model", "max_tokens": 7, "user": "u9",
            "prompt": {"name": "greet", "variables": {"name": "Bo"}}}
    assert httpx.post(proxy.url + "/chat/completions", json=body).status_code == 200
    [payload] = captured
    assert payload["messages"] == [
        {"role": "system", "content": "You are polite."},
        {"role": "user", "content": "Say hello to Bo in English."},
    ]
    assert (payload["temperature"], payload["max_tokens"], payload["user"]) == (0, 7, "u9")
    assert "prompt" not in payload


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        ({"prompt": {"name": "greet", "variables": {}}}, 400, "invalid_prompt_variables", "prompt.variables"),
        ({"prompt": {"name": "greet", "variables": "Ada"}}, 400, "invalid_prompt_variables", "prompt.variables"),
        ({"prompt": {"name": "nope"}}, 400, "prompt_not_released", "prompt.name"),
        ({"prompt": {"name": "greet", "variables": {"name": "A"}, "label": "canary"}}, 400,
         "release_label_not_found", "prompt.label"),
        ({"prompt": {"name": "greet", "vars": {}}}, 400, None, "prompt"),
        ({"prompt": "greet"}, 400, None, "messages"),
        ({"prompt": {"name": "greet", "variables": {"name": "A"}}, "messages": [{"role": "user", "content": "x"}]},
         400, None, "prompt"),
    ],
)
def test_bad_prompt_requests_get_400_in_the_openai_shape(releases, release_sidecar, body, status, code, param):
    releases.release("You are polite.")
    proxy, _ = release_sidecar()
    response = httpx.post(proxy.url + "/chat/completions", json={"model": "fake-model", **body})
    assert response.status_code == status
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param and error["message"]
    if code is not None:
        assert error["code"] == code
    if code == "invalid_prompt_variables" and isinstance(body["prompt"].get("variables"), dict):
        assert "'name' is not defined" in error["message"]


def test_canary_split_follows_the_weight_and_sticks_to_each_user(releases, release_sidecar):
    production = releases.release("You are polite.")
    canary = releases.write("You are cheerful.")
    set_canary(releases.engine, "greet", version=canary, weight=0.3, registry=releases.registry)
    proxy, _ = release_sidecar()
    n = 300
    with httpx.Client(timeout=10) as client:
        served = {}
        for i in range(n):
            body = {"model": "fake-model", "prompt": {"name": "greet", "variables": {"name": "Ada"}}}
            response = client.post(proxy.url + "/chat/completions", json=body, headers={"X-Tollgate-User": f"u{i}"})
            served[f"u{i}"] = response.headers["x-tollgate-prompt-version"]
        canaries = sum(1 for version in served.values() if version == canary)
        assert abs(canaries - n * 0.3) <= 4.5 * math.sqrt(n * 0.3 * 0.7), canaries
        assert set(served.values()) == {production, canary}
        for user in list(served)[:20]:
            for _ in range(3):
                body = {"model": "fake-model", "prompt": {"name": "greet", "variables": {"name": "Ada"}}}
                again = client.post(proxy.url + "/chat/completions", json=body, headers={"X-Tollgate-User": user})
                assert again.headers["x-tollgate-prompt-version"] == served[user]


def test_a_label_can_be_pinned_by_header(releases, release_sidecar):
    releases.release("You are polite.")
    canary = releases.write("You are cheerful.")
    set_canary(releases.engine, "greet", version=canary, weight=0.01, registry=releases.registry)
    proxy, _ = release_sidecar()
    body = {"model": "fake-model", "prompt": {"name": "greet", "variables": {"name": "Ada"}}}
    response = httpx.post(proxy.url + "/chat/completions", json=body,
                          headers={"X-Tollgate-Release-Label": "canary"})
    assert response.headers["x-tollgate-prompt-version"] == canary


def test_experiment_arms_are_recorded_on_the_traffic(releases, release_sidecar):
    releases.release("You are polite.")
    other = releases.write("You are cheerful.")
    start_experiment(releases.engine, "tone", "greet", [ArmSpec("control"), ArmSpec("cheerful", version=other)],
                     registry=releases.registry)
    proxy, collector = release_sidecar()
    variants = set()
    for i in range(40):
        response = ask(proxy, user=f"user-{i}")
        record = wait_record(collector, response.headers["x-request-id"])
        assert record.experiment == "tone" and record.variant == response.headers["x-tollgate-variant"]
        variants.add(record.variant)
    assert variants == {"control", "cheerful"}


def test_a_model_alias_is_served_by_its_released_model(releases, release_sidecar, fake2):
    promote(releases.engine, "assistant", model="fake-model", force=True, reason="test")
    proxy, collector = release_sidecar()
    response = httpx.post(proxy.url + "/chat/completions",
                          json={"model": "assistant", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 200
    record = wait_record(collector, response.headers["x-request-id"])
    assert (record.requested_model, record.served_model, record.variant) == ("assistant", "fake-model", "production")
