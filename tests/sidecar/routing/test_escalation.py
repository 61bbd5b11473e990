"""Escalation targets: routing names the stronger model; a later stage retries with it on a failed answer."""

from __future__ import annotations

import httpx
import orjson

from sidecar.pipeline import BaseStage, Exchange, Reply
from sidecar.routing import build_routing
from tests.sidecar.test_proxy import wait_record


def three_models(fake, fake2) -> dict:
    return {
        "cheap": {"deployments": [{"base_url": fake.url, "model": "cheap-upstream"}]},
        "mid": {"deployments": [{"base_url": fake.url, "model": "mid-upstream"}]},
        "strong": {"deployments": [{"base_url": fake2.url, "model": "strong-upstream"}]},
    }


class JsonOrEscalate(BaseStage):
    """Plays the guard stage's parse check: a reply that is not JSON is asked again of `escalate_to`."""

    name = "json-check"

    def __init__(self) -> None:
        self.seen: list[str | None] = []

    async def on_reply(self, exchange: Exchange, reply: Reply) -> Reply:
        self.seen.append(exchange.escalate_to)
        content = reply.document()["choices"][0]["message"]["content"]
        try:
            orjson.loads(content)
            return reply
        except orjson.JSONDecodeError:
            if exchange.escalate_to is None or exchange.resend is None:
                return reply
            exchange.record.review_reason = f"parse: escalated to {exchange.escalate_to}"
            return await exchange.resend({**exchange.payload, "model": exchange.escalate_to})


def test_a_parse_failure_is_retried_on_the_escalation_target(make_sidecar, fake, fake2):
    fake.set_behaviour(reply="this is not json")
    fake2.set_behaviour(reply='{"answer": 42}')
    probe = JsonOrEscalate()
    proxy, collector = make_sidecar(
        three_models(fake, fake2), routing={"escalation": {"cheap": "strong"}},
        stages=lambda runtime: [*build_routing(runtime), probe],
    )
    body = {"model": "cheap", "messages": [{"role": "user", "content": "give me json"}]}
    response = httpx.post(proxy.url + "/chat/completions", json=body, timeout=10)
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == '{"answer": 42}'
    assert probe.seen == ["strong"]
    record = wait_record(collector, response.headers["x-request-id"])
    assert record.served_model == "strong" and record.attempts == 2
    assert record.review_reason == "parse: escalated to strong"
    assert fake.stats()["requests_total"] == 1 and fake2.stats()["requests_total"] == 1


def test_a_rules_own_target_wins_over_the_escalation_map(make_sidecar, fake, fake2):
    probe = JsonOrEscalate()
    fake.set_behaviour(reply='{"ok": true}')
    rules = [{"name": "to-mid", "when": {"feature": ["f"]}, "model": "mid", "escalate_to": "strong"},
             {"name": "to-cheap", "when": {"feature": ["g"]}, "model": "cheap"}]
    proxy, _ = make_sidecar(
        three_models(fake, fake2), routing={"rules": rules, "escalation": {"mid": "cheap", "cheap": "mid"}},
        stages=lambda runtime: [*build_routing(runtime), probe],
    )
    body = {"model": "strong", "messages": [{"role": "user", "content": "x"}]}
    for feature in ("f", "g"):
        response = httpx.post(proxy.url + "/chat/completions", json=body, headers={"X-Tollgate-Feature": feature})
        assert response.status_code == 200
    unrouted = httpx.post(proxy.url + "/chat/completions", json=body)  # strong has no escalation target
    assert unrouted.status_code == 200
    assert probe.seen == ["strong", "mid", None]


def test_escalation_without_rules_still_builds_the_stage(make_sidecar, fake, fake2):
    built: list = []

    def stages(runtime):
        built.extend(build_routing(runtime))
        return built

    make_sidecar(three_models(fake, fake2), routing={"escalation": {"cheap": "strong"}}, stages=stages)
    assert [stage.name for stage in built] == ["routing"]
    built.clear()
    make_sidecar(three_models(fake, fake2), stages=stages)
    assert built == []  # nothing configured: no stage, a plain proxy


def test_the_guard_stage_escalates_a_schema_failure_to_the_routing_target(make_sidecar, fake, fake2):
    fake.set_behaviour(reply="not json at all")
    fake2.set_behaviour(reply='{"answer": 42}')
    schema = {"type": "object", "required": ["answer"]}
    guards = {"policies": [{"match": {"models": ["cheap"]},
                            "guards": [{"type": "output_schema", "retries": 0, "schema": schema}]}]}
    proxy, collector = make_sidecar(three_models(fake, fake2), routing={"escalation": {"cheap": "strong"}},
                                    guards=guards)
    body = {"model": "cheap", "messages": [{"role": "user", "content": "the answer please"}]}
    response = httpx.post(proxy.url + "/chat/completions", json=body, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == '{"answer": 42}'
    assert response.headers.get("x-tollgate-fallback") == "model"
    record = wait_record(collector, response.headers["x-request-id"])
    assert record.requested_model == "cheap" and record.served_model == "strong"
    assert fake.stats()["requests_total"] == 1 and fake2.stats()["requests_total"] == 1
