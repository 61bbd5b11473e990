"""Output guards over loopback: the schema fallback chain (non-stream and stream), PII in answers and streams,
semantic checks on answers, and confidence from logprobs."""

from __future__ import annotations

import orjson
import pytest

from tests.sidecar.conftest import EVERY_SSE_STYLE
from tests.sidecar.guards.helpers import (
    MODEL,
    LogprobUpstream,
    chat,
    models,
    policy,
    post,
    stream,
    streamed_text,
    upstream_bodies,
)
from tests.sidecar.test_proxy import wait_record

SCHEMA = {"type": "object", "properties": {"echo": {"type": "string"}}, "required": ["echo"]}
JSON_REQUEST = {"response_format": {"type": "json_schema", "json_schema": {"name": "echo", "schema": SCHEMA}}}


def schema_guard(**fields):
    return policy({"type": "output_schema", "retries": 1, **fields})


def steps(record):
    return [(event["reason"], event["action"]) for event in record.guard_events or ()]


def test_a_valid_answer_passes_untouched(make_sidecar, fake):
    proxy, collector = make_sidecar(models(fake), guards=schema_guard())
    response = post(proxy, chat("hello world", **JSON_REQUEST))
    assert response.status_code == 200
    assert set(orjson.loads(response.json()["choices"][0]["message"]["content"])) == {"echo"}
    assert wait_record(collector, response.headers["x-request-id"]).guard_events is None


@pytest.mark.parametrize("streamed", [False, True], ids=["non-stream", "stream"])
def test_retry_with_the_validation_errors_fixes_the_answer(make_sidecar, fake, streamed):
    proxy, collector = make_sidecar(models(fake), guards=schema_guard())
    fake.script({"reply": "Sure! Here it is: echo"}, {"reply": '{"echo": "fixed"}'})
    if streamed:
        status, request_id, events = stream(proxy, chat("hi", **JSON_REQUEST))
        assert status == 200 and events[-1] == "[DONE]"
        content = streamed_text(events)
    else:
        response = post(proxy, chat("hi", **JSON_REQUEST))
        assert response.status_code == 200
        request_id, content = response.headers["x-request-id"], response.json()["choices"][0]["message"]["content"]
    assert orjson.loads(content) == {"echo": "fixed"}
    retried = upstream_bodies(fake)[-1]
    assert retried["messages"][-2] == {"role": "assistant", "content": "Sure! Here it is: echo"}
    assert "not valid JSON" in retried["messages"][-1]["content"] and '"required":["echo"]' in retried["messages"][-1]["content"]
    assert "stream" not in retried
    record = wait_record(collector, request_id)
    assert steps(record) == [("schema_invalid", "retry")]
    assert record.attempts == 2 and record.review_reason is None


@pytest.mark.parametrize("streamed", [False, True], ids=["non-stream", "stream"])
def test_the_fallback_model_answers_when_retries_fail(make_sidecar, fake, fake2, streamed):
    guards = schema_guard()
    guards["policies"][0]["fallback_model"] = "big-model"
    proxy, collector = make_sidecar(models(fake, ("big-model", fake2)), guards=guards)
    fake.script({"reply": "nope"}, {"reply": "still nope"})
    fake2.script({"reply": '{"echo": "from the big model"}'})
    if streamed:
        status, request_id, events = stream(proxy, chat("hi", **JSON_REQUEST))
        content = streamed_text(events)
    else:
        response = post(proxy, chat("hi", **JSON_REQUEST))
        status, request_id = response.status_code, response.headers["x-request-id"]
        content = response.json()["choices"][0]["message"]["content"]
        assert response.headers["x-tollgate-fallback"] == "model"
    assert status == 200 and orjson.loads(content) == {"echo": "from the big model"}
    assert upstream_bodies(fake2)[-1]["model"] == MODEL  # big-model's deployment serves the upstream's name
    record = wait_record(collector, request_id)
    assert steps(record) == [("schema_invalid", "retry"), ("schema_invalid", "fallback_model")]
    assert record.served_model == "big-model"


@pytest.mark.parametrize("streamed", [False, True], ids=["non-stream", "stream"])
def test_the_fallback_response_is_served_when_every_model_fails(make_sidecar, fake, streamed):
    proxy, collector = make_sidecar(models(fake), guards=schema_guard(retries=0, fallback_response='{"echo": ""}'))
    fake.script({"reply": "not json"})
    if streamed:
        status, request_id, events = stream(proxy, chat("hi", **JSON_REQUEST))
        content = streamed_text(events)
    else:
        response = post(proxy, chat("hi", **JSON_REQUEST))
        status, request_id = response.status_code, response.headers["x-request-id"]
        content = response.json()["choices"][0]["message"]["content"]
    assert status == 200 and content == '{"echo": ""}'
    assert steps(wait_record(collector, request_id)) == [("schema_invalid", "fallback_response")]


@pytest.mark.parametrize("streamed", [False, True], ids=["non-stream", "stream"])
def test_escalation_answers_422_and_queues_a_review(make_sidecar, fake, streamed):
    proxy, collector = make_sidecar(models(fake), guards=schema_guard())
    fake.script({"reply": '{"other": 1}'}, {"reply": '{"other": 2}'})
    if streamed:
        import httpx

        response = httpx.post(proxy.url + "/chat/completions", json=chat("hi", stream=True, **JSON_REQUEST), timeout=30)
    else:
        response = post(proxy, chat("hi", **JSON_REQUEST))
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "output_validation_failed" and "'echo' is a required property" in error["message"]
    record = wait_record(collector, response.headers["x-request-id"])
    assert steps(record) == [("schema_invalid", "retry"), ("output_validation_failed", "escalate")]
    assert record.error_class == "parse_failure"
    assert record.review_reason.startswith("guard: output_schema output_validation_failed")


@EVERY_SSE_STYLE
def test_a_stream_checked_at_its_end_ends_with_an_error_event(make_sidecar, fake):
    proxy, collector = make_sidecar(models(fake), guards=schema_guard(stream="end_check"))
    # Token gaps make the upstream send events one by one, so all text is out before `[DONE]` is held.
    fake.script({"reply": "this is not JSON at all", "inter_token_s": 0.005})
    status, request_id, events = stream(proxy, chat("hi", **JSON_REQUEST))
    assert status == 200 and "[DONE]" not in events
    assert orjson.loads(events[-1])["error"]["code"] == "output_validation_failed"
    # What went out before the last upstream write was relayed as it came; the write carrying `[DONE]` is not.
    sent = streamed_text(events[:-1])
    assert sent.startswith("this is not JSON") and "this is not JSON at all".startswith(sent)
    record = wait_record(collector, request_id)
    assert record.error_class == "parse_failure" and record.review_reason is not None


def test_the_prompt_files_schema_applies_to_tagged_requests(make_sidecar, fake, tmp_path):
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    (prompts / "extract.prompt").write_text(
        "---\nname: extract\noutput_schema: {type: object, required: [city]}\n---\n[INSTRUCTION]\nExtract.\n"
    )
    proxy, _ = make_sidecar(models(fake), guards={"prompts_dir": str(prompts), **schema_guard(retries=0)})
    fake.script({"reply": '{"city": "Paris"}'}, {"reply": '{"town": "Paris"}'})
    assert post(proxy, chat("hi"), **{"x-tollgate-prompt": "extract"}).status_code == 200
    assert post(proxy, chat("hi"), **{"x-tollgate-prompt": "extract"}).status_code == 422
    assert post(proxy, chat("plain text is fine without a schema")).status_code == 200


PII_REPLY = "Sure, write to maria.gonzalez@example.com or call +44 20 7946 0958, card 4111 1111 1111 1111. Bye!"
REDACTED = "Sure, write to [EMAIL] or call [PHONE], card [CARD]. Bye!"


def test_pii_in_an_answer_is_redacted(make_sidecar, fake):
    proxy, collector = make_sidecar(models(fake), guards=policy({"type": "pii", "where": "output", "action": "redact"}))
    fake.script({"reply": PII_REPLY})
    response = post(proxy, chat("hi"))
    assert response.json()["choices"][0]["message"]["content"] == REDACTED
    assert steps(wait_record(collector, response.headers["x-request-id"])) == [("pii_detected", "redact")]


@EVERY_SSE_STYLE
def test_pii_in_a_stream_is_redacted_on_the_fly_without_holding_the_answer(make_sidecar, fake):
    settings = {**policy({"type": "pii", "where": "output", "action": "redact"}), "stream_lookback_chars": 40}
    proxy, collector = make_sidecar(models(fake), guards=settings)
    long_tail = " and then some more words to stream" * 6
    fake.script({"reply": PII_REPLY + long_tail})
    status, request_id, events = stream(proxy, chat("hi"))
    assert status == 200 and events[-1] == "[DONE]"
    assert streamed_text(events) == REDACTED + long_tail
    contents = [orjson.loads(e)["choices"][0]["delta"].get("content") for e in events[:-1] if orjson.loads(e)["choices"]]
    released = [c for c in contents if c]
    assert len(released) > 5  # text went out with many events, not as one block at the end
    assert all(len(c) < 80 for c in released[:-1])
    assert ("pii_detected", "redact") in steps(wait_record(collector, request_id))


@EVERY_SSE_STYLE
def test_pii_blocked_in_a_stream_stops_before_the_value_goes_out(make_sidecar, fake):
    proxy, collector = make_sidecar(models(fake), guards=policy({"type": "pii", "where": "output", "action": "block"}))
    fake.script({"reply": PII_REPLY})
    status, request_id, events = stream(proxy, chat("hi"))
    assert status == 200 and orjson.loads(events[-1])["error"]["code"] == "pii_detected"
    assert "maria" not in "".join(events) and "[DONE]" not in events
    assert wait_record(collector, request_id).error_class == "guardrail"


@EVERY_SSE_STYLE
def test_masked_values_are_restored_in_a_stream(make_sidecar, fake):
    proxy, _ = make_sidecar(models(fake), guards=policy({"type": "pii", "action": "redact", "restore": True}))
    status, _, events = stream(proxy, chat("ana@example.org said hi"))
    text = streamed_text(events)
    assert status == 200 and "ana@example.org" in text and "[EMAIL_1]" not in text
    assert upstream_bodies(fake)[-1]["messages"][0]["content"] == "[EMAIL_1] said hi"


@pytest.mark.parametrize("streamed", [False, True], ids=["non-stream", "stream"])
def test_a_toxic_answer_is_blocked(make_sidecar, fake, streamed):
    guards = policy({"type": "semantic", "category": "toxicity", "where": "output", "threshold": 0.6})
    proxy, collector = make_sidecar(models(fake), guards=guards)
    fake.script({"reply": "You are a stupid worthless idiot, shut up."})
    if streamed:
        status, request_id, events = stream(proxy, chat("hi"))
        assert status == 200 and orjson.loads(events[-1])["error"]["code"] == "toxicity"
    else:
        response = post(proxy, chat("hi"))
        assert response.status_code == 400 and response.json()["error"]["code"] == "toxicity"
        request_id = response.headers["x-request-id"]
    event = wait_record(collector, request_id).guard_events[0]
    assert event["reason"] == "toxicity" and event["score"] >= 0.6 and event["threshold"] == 0.6
    fake.script({"reply": "Paris is the capital of France."})
    assert post(proxy, chat("hi")).status_code == 200


@pytest.mark.parametrize("streamed", [False, True], ids=["non-stream", "stream"])
def test_low_confidence_is_flagged_or_held(make_sidecar, streamed):
    uncertain = LogprobUpstream([("Maybe", -1.6), (" Paris", -2.3), ("?", -0.9)])
    with uncertain.running():
        routes = {MODEL: {"deployments": [{"base_url": uncertain.url}]}}
        flagging = policy({"type": "confidence", "min_confidence": 0.5, "action": "flag"})
        proxy, collector = make_sidecar(routes, guards=flagging)
        if streamed:
            status, request_id, events = stream(proxy, chat("capital of France?"))
            assert status == 200 and events[-1] == "[DONE]"
            assert all(orjson.loads(e)["choices"][0]["logprobs"] is None for e in events[:-1])
        else:
            response = post(proxy, chat("capital of France?"))
            assert response.status_code == 200 and response.json()["choices"][0]["logprobs"] is None
            request_id = response.headers["x-request-id"]
        assert uncertain.requests[-1]["logprobs"] is True
        record = wait_record(collector, request_id)
        assert record.confidence == pytest.approx(0.2019, abs=1e-3)  # exp(mean(-1.6, -2.3, -0.9)) = exp(-1.6)
        assert record.review_reason.startswith("guard: confidence low_confidence")

        holding = policy({"type": "confidence", "min_confidence": 0.5, "action": "block"})
        proxy, collector = make_sidecar(routes, guards=holding)
        if streamed:
            status, request_id, events = stream(proxy, chat("capital of France?"))
            assert orjson.loads(events[-1])["error"]["code"] == "low_confidence"
        else:
            response = post(proxy, chat("capital of France?"))
            assert response.status_code == 422 and response.json()["error"]["code"] == "low_confidence"
            request_id = response.headers["x-request-id"]
        assert steps(wait_record(collector, request_id)) == [("low_confidence", "hold")]
