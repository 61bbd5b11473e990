"""Guard settings validation, policy matching, token counters, and the embedded model with its own tokenizer."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from pydantic import ValidationError

from core.config.guards import DEFAULT_GUARDS, GuardSettings, PolicyMatch
from core.settings import Settings
from sidecar.guards.tokens import CharsCounter, TiktokenCounter, is_openai_model
from sidecar.testing import ThreadedSidecar
from tests.sidecar.conftest import TrafficCollector
from tests.sidecar.test_proxy import wait_record


def test_an_empty_guard_section_is_inactive_and_defaults_add_a_catch_all_policy():
    assert GuardSettings().active is False
    settings = GuardSettings(defaults=True)
    assert settings.active is True
    [policy] = settings.all_policies()
    assert [spec.type for spec in policy.guards] == [guard["type"] for guard in DEFAULT_GUARDS]
    assert policy.match.fits("any-model", None, None)
    assert GuardSettings(enabled=False, defaults=True).active is False


@pytest.mark.parametrize(
    ("guard", "message"),
    [
        ({"type": "injection", "action": "redact"}, "action 'redact' is not supported"),
        ({"type": "pii", "kinds": ["email", "dna"]}, "unknown PII kind"),
        ({"type": "nonsense"}, "does not match any of the expected tags"),
        ({"type": "max_size", "max_chars": 0}, "greater than 0"),
        ({"type": "scope", "intents": []}, "at least 1 item"),
        ({"type": "injection", "threshold": 0.6, "treshold": 0.5}, "Extra inputs are not permitted"),
    ],
)
def test_bad_guard_settings_are_rejected_with_the_reason(guard, message):
    with pytest.raises(ValidationError, match=message):
        GuardSettings(policies=[{"guards": [guard]}])


def test_policy_match_by_model_prompt_and_route():
    match = PolicyMatch(models=["a"], routes=["support"])
    assert match.fits("a", None, "support")
    assert not match.fits("b", None, "support") and not match.fits("a", None, "sales")
    assert PolicyMatch(prompts=["extract"]).fits("x", "extract", None)


def test_the_output_schema_guard_reads_its_schema_under_the_schema_key():
    settings = GuardSettings(policies=[{"guards": [{"type": "output_schema", "schema": {"type": "object"}}]}])
    assert settings.policies[0].guards[0].json_schema == {"type": "object"}


def test_character_estimates_count_messages_with_their_overhead():
    counter = CharsCounter(4)
    assert asyncio.run(counter.count(["abcd" * 10, "xy"], chat=True)) == 10 + 1 + 2 * 4
    assert asyncio.run(counter.count(["abcd" * 10], chat=False)) == 10


def test_openai_models_are_recognised_with_or_without_a_prefix():
    assert is_openai_model("gpt-4o-mini") and is_openai_model("openai/o3-mini")
    assert not is_openai_model("local/smollm2-135m") and not is_openai_model("anthropic/claude-3-5-haiku")


def test_tiktoken_counts_openai_tokens_offline():
    counter = TiktokenCounter("gpt-4o")
    # o200k_base: "Hello world" is two tokens; the chat form adds the per-message framing.
    assert asyncio.run(counter.count(["Hello world"], chat=False)) == 2
    assert asyncio.run(counter.count(["Hello world"], chat=True)) > 2


@pytest.mark.embedded
def test_the_embedded_model_is_guarded_with_its_own_tokenizer_and_gives_confidence(tmp_path):
    guards = {"policies": [{"guards": [
        {"type": "context_length", "max_tokens": 40},
        {"type": "confidence", "min_confidence": 0.0, "action": "log"},
    ]}]}
    settings = Settings(data_dir=tmp_path / ".tollgate", sidecar={"port": 0},
                        embedded={"threads": 1, "parallel": 1, "context": 2048}, guards=guards)
    collector = TrafficCollector()
    with ThreadedSidecar(settings, traffic_factory=lambda _s: collector) as proxy:
        runtime = proxy.app.runtime
        counter = runtime.stages[0].policies[0].checks[0].counters["local/smollm2-135m"]
        assert type(counter).__name__ == "ServerCounter"
        ask = {"model": "local/smollm2-135m", "temperature": 0, "max_tokens": 8,
               "messages": [{"role": "user", "content": "What is the capital of France?"}]}
        answer = httpx.post(proxy.url + "/chat/completions", json=ask, timeout=120)
        assert answer.status_code == 200, answer.text
        assert answer.json()["choices"][0].get("logprobs") is None  # asked for by the guard, not shown
        record = wait_record(collector, answer.headers["x-request-id"])
        assert record.confidence is not None and 0.0 < record.confidence <= 1.0
        long_text = "word " * 60
        # SmolLM2's own tokenizer through llama.cpp: the count the guard reports is the engine's.
        tokens = len(httpx.post(runtime.embedded.root_url + "/tokenize", json={"content": long_text}).json()["tokens"])
        refused = httpx.post(proxy.url + "/chat/completions", timeout=120,
                             json={**ask, "messages": [{"role": "user", "content": long_text}]})
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "context_length_exceeded"
        assert f"needs {tokens + 4 + 8} tokens" in refused.json()["error"]["message"]
