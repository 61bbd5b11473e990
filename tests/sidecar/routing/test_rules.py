"""Routing rules over loopback: each condition picks its model, the decision lands on the record and a header."""

from __future__ import annotations

import httpx
import pytest

from core.config.routing import ComplexitySettings, RoutingRule, RoutingSettings
from core.errors import ConfigError
from sidecar.routing import check_models
from sidecar.routing.complexity import HeuristicComplexity, estimate_tokens
from tests.sidecar.test_proxy import wait_record

LONG = "word " * 400  # ~500 estimated tokens


def two_models(fake, fake2) -> dict:
    return {
        "cheap": {"deployments": [{"base_url": fake.url, "model": "cheap-upstream"}]},
        "big": {"deployments": [{"base_url": fake2.url, "model": "big-upstream"}]},
    }


RULES = [
    {"name": "support", "when": {"feature": ["support"]}, "model": "big"},
    {"name": "booking-prompts", "when": {"prompt": ["booking-*"]}, "model": "big"},
    {"name": "legal-words", "when": {"text_matches": r"(?i)\b(contract|liability)\b"}, "model": "big"},
    {"name": "long-inputs", "when": {"min_input_tokens": 300}, "model": "big"},
    {"name": "hard", "when": {"min_complexity": 0.6}, "model": "big"},
    {"name": "auto-default", "when": {"models": ["auto"]}, "model": "cheap"},
]


@pytest.fixture
def routed(make_sidecar, fake, fake2):
    return make_sidecar(two_models(fake, fake2), routing={"rules": RULES})


def ask(proxy, content: str, model: str = "cheap", headers: dict | None = None) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": content}]}
    response = httpx.post(proxy.url + "/chat/completions", json=body, headers=headers or {}, timeout=10)
    assert response.status_code == 200, response.text
    return response


@pytest.mark.parametrize(
    ("content", "headers", "rule", "reason_part"),
    [
        ("hello", {"X-Tollgate-Feature": "support"}, "support", "feature=support"),
        ("hello", {"X-Tollgate-Prompt": "booking-confirm@v3"}, "booking-prompts", "prompt=booking-confirm"),
        ("Read this contract please", {}, "legal-words", "text~'contract'"),
        (LONG, {}, "long-inputs", "input_tokens=500>=300"),
        ("Explain why quicksort is fast, step by step, and compare it with mergesort. Prove the bound.", {},
         "hard", "complexity="),
    ],
)
def test_each_rule_sends_its_requests_to_the_big_model(routed, fake, fake2, content, headers, rule, reason_part):
    proxy, collector = routed
    response = ask(proxy, content, headers=headers)
    assert response.json()["model"] == "big-upstream"
    assert response.headers["x-tollgate-route"] == rule
    record = wait_record(collector, response.headers["x-request-id"])
    assert record.requested_model == "cheap" and record.served_model == "big"
    assert record.route_reason.startswith(f"rule {rule}: ") and record.route_reason.endswith("-> big")
    assert reason_part in record.route_reason
    assert fake.stats()["requests_total"] == 0 and fake2.stats()["requests_total"] == 1


def test_no_matching_rule_keeps_the_requested_model(routed, fake, fake2):
    proxy, collector = routed
    response = ask(proxy, "What is the capital of France?")
    assert response.json()["model"] == "cheap-upstream"
    assert "x-tollgate-route" not in response.headers
    record = wait_record(collector, response.headers["x-request-id"])
    assert record.route_reason is None and record.served_model == "cheap"
    assert fake2.stats()["requests_total"] == 0
    ask(proxy, "hello", headers={"X-Tollgate-Feature": "support"})
    metrics = httpx.get(proxy.url.removesuffix("/v1") + "/metrics").text
    assert 'tollgate_route_decisions{model="cheap",rule="-"} 1.0' in metrics
    assert 'tollgate_route_decisions{model="big",rule="support"} 1.0' in metrics


def test_a_virtual_model_name_is_resolved_by_a_catch_all_rule(routed, fake):
    proxy, collector = routed
    response = ask(proxy, "hi", model="auto")
    assert response.json()["model"] == "cheap-upstream"
    record = wait_record(collector, response.headers["x-request-id"])
    assert record.requested_model == "auto" and record.served_model == "cheap"
    assert record.route_reason == "rule auto-default: model=auto -> cheap"


def test_rules_apply_to_streams_too(routed, fake2):
    proxy, collector = routed
    body = {"model": "cheap", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with httpx.stream("POST", proxy.url + "/chat/completions", json=body,
                      headers={"X-Tollgate-Feature": "support"}, timeout=10) as response:
        text = response.read().decode()
    assert response.status_code == 200 and '"model":"big-upstream"' in text and "[DONE]" in text
    record = wait_record(collector, response.headers["x-request-id"])
    assert record.served_model == "big" and record.route_reason.startswith("rule support:")


def test_the_first_matching_rule_wins(make_sidecar, fake, fake2):
    rules = [{"name": "first", "when": {"feature": ["x"]}, "model": "cheap"},
             {"name": "second", "when": {"feature": ["x"]}, "model": "big"}]
    proxy, _ = make_sidecar(two_models(fake, fake2), routing={"rules": rules})
    response = ask(proxy, "hi", model="big", headers={"X-Tollgate-Feature": "x"})
    assert response.json()["model"] == "cheap-upstream" and response.headers["x-tollgate-route"] == "first"


def test_size_bounds_are_inclusive():
    rule = RoutingRule(name="mid", when={"min_input_tokens": 10, "max_input_tokens": 20}, model="m")
    from sidecar.routing.rules import CompiledRule, RequestFacts
    from sidecar.traffic.record import RawTraffic

    compiled = CompiledRule.from_settings(rule)
    classifier = HeuristicComplexity(ComplexitySettings())

    def facts(chars: int) -> RequestFacts:
        record = RawTraffic(request_id="r", started_at=0.0, endpoint="chat.completions", status=0, latency_ms=0.0)
        payload = {"model": "x", "messages": [{"role": "user", "content": "a" * chars}]}
        return RequestFacts("x", payload, record, classifier)

    assert compiled.matches(facts(36)) is None  # 9 tokens
    assert compiled.matches(facts(40)) == "input_tokens=10>=10<=20"
    assert compiled.matches(facts(80)) == "input_tokens=20>=10<=20"
    assert compiled.matches(facts(81)) is None


def test_complexity_separates_simple_from_hard_prompts():
    classifier = HeuristicComplexity(ComplexitySettings())
    simple = ["What is the capital of France?", "Translate 'hello' to Spanish.", "hi", "Give me a synonym for big."]
    hard = [
        "Explain why quicksort is O(n log n) on average, step by step, and compare it with mergesort.",
        ("Design the architecture of a rate limiter. It must handle bursts, must not use locks, and should "
         "scale to 10 nodes. Justify each trade-off."),
        "Debug this:\n```python\ndef f(x):\n    return x[0] + f(x[1:])\n```\nWhy does it fail? How would you refactor it?",
    ]
    simple_scores = [classifier.score(t) for t in simple]
    hard_scores = [classifier.score(t) for t in hard]
    assert max(simple_scores) < 0.35, simple_scores
    assert min(hard_scores) > 0.6, hard_scores
    assert all(0.0 <= s <= 1.0 for s in simple_scores + hard_scores)


def test_token_estimate_is_chars_over_four_rounded_up():
    assert [estimate_tokens("a" * n) for n in (0, 1, 4, 5, 400)] == [0, 1, 1, 2, 100]


def test_unknown_models_in_rules_are_a_start_up_error():
    settings = RoutingSettings(rules=[{"name": "r", "when": {}, "model": "missing"}])
    with pytest.raises(ConfigError, match="routing.rules.r.model: unknown model 'missing'"):
        check_models(settings, {"cheap"})
    with pytest.raises(ConfigError, match="routing.escalation.cheap: unknown model 'nope'"):
        check_models(RoutingSettings(escalation={"cheap": "nope"}), {"cheap"})
    with pytest.raises(ConfigError, match="cannot escalate to itself"):
        check_models(RoutingSettings(escalation={"cheap": "cheap"}), {"cheap"})


def test_bad_rule_settings_are_rejected():
    with pytest.raises(ValueError, match="not a regular expression"):
        RoutingSettings(rules=[{"name": "r", "when": {"text_matches": "("}, "model": "m"}])
    with pytest.raises(ValueError, match="rule names must be unique"):
        RoutingSettings(rules=[{"name": "r", "model": "a"}, {"name": "r", "model": "b"}])
