"""Property-based checks: guards never crash on arbitrary text; redaction is idempotent and leaves no PII;
streamed redaction, however the text is cut into chunks, releases no PII and loses no other text."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.config.guards import GuardPolicy
from core.redaction import find_pii, redact_pii
from sidecar.guards.checks import Run
from sidecar.guards.detectors import InjectionDetector, PiiDetector, SizeDetector
from sidecar.guards.pii import Masker
from sidecar.guards.stage import compile_check
from sidecar.guards.streams import GuardStreamFilter, LookBack
from sidecar.pipeline import Exchange, StreamBlocked
from sidecar.traffic.record import RawTraffic

PII_SAMPLES = [
    "maria.gonzalez@example.com", "+44 20 7946 0958", "(415) 555-2671", "4111 1111 1111 1111", "378282246310005",
    "DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432", "078-05-1120", "JG 10 37 29 A", "203.0.113.77",
    "2001:db8:85a3::8a2e:370:7334", "06 12 34 56 78",
]
# Text that mixes real PII values with words, digits, punctuation and arbitrary unicode.
texty = st.lists(
    st.one_of(st.sampled_from(PII_SAMPLES), st.text(max_size=12), st.sampled_from([" ", "\n", ".", ",", "-", ":", "@"]),
              st.from_regex(r"[0-9 .+()-]{1,20}", fullmatch=True)),
    max_size=25,
).map("".join)
fast = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@fast
@given(texty)
def test_redaction_is_idempotent_and_leaves_no_detectable_pii(text: str) -> None:
    redacted, count = redact_pii(text)
    assert find_pii(redacted) == []
    assert redact_pii(redacted) == (redacted, 0)
    assert (count == 0) == (redacted == text)


@fast
@given(st.text(max_size=300))
def test_redaction_never_crashes_on_arbitrary_unicode(text: str) -> None:
    redacted, _ = redact_pii(text)
    assert find_pii(redacted) == []


@fast
@given(texty)
def test_masking_then_restoring_gives_the_text_back(text: str) -> None:
    masker = Masker(["email", "phone", "card", "iban", "national_id", "ip"])
    masked = masker.mask(text)
    assert masker.restore(masked) == text
    assert find_pii(masked) == [] or masked == text


def _stream_through(lookback: LookBack, text: str, cuts: list[int]) -> list[str]:
    chunks, at = [], 0
    for size in cuts * 40:
        if at >= len(text):
            break
        chunks.append(text[at : at + size])
        at += size
    chunks.append(text[at:])
    return [lookback.push(chunk) for chunk in chunks] + [lookback.flush()]


# Words between values, as in prose: the filter releases text at a space before a lower-case word.
prose = st.lists(
    st.one_of(st.sampled_from(PII_SAMPLES), st.text(max_size=12), st.from_regex(r"[0-9 .+()-]{1,20}", fullmatch=True)),
    max_size=20,
).map(" and ".join)
chunking = st.lists(st.integers(min_value=1, max_value=15), min_size=1, max_size=40)


@fast
@given(prose, chunking)
def test_streamed_redaction_of_prose_equals_redacting_the_whole_answer(text: str, cuts: list[int]) -> None:
    lookback = LookBack(96, ["email", "phone", "card", "iban", "national_id", "ip"], True, None, None)
    out = "".join(_stream_through(lookback, text, cuts))
    assert out == redact_pii(text)[0]
    assert find_pii(out) == []


@fast
@given(texty, chunking)
def test_streamed_redaction_never_releases_a_whole_value_whatever_the_text(text: str, cuts: list[int]) -> None:
    # Text without spaces is cut by position, where a value's detection can depend on what came before the
    # cut; the promise there is weaker but still the one that matters: no value seen goes out whole.
    lookback = LookBack(96, ["email", "phone", "card", "iban", "national_id", "ip"], True, None, None)
    out = "".join(_stream_through(lookback, text, cuts))
    found = find_pii(text)
    for value in {match.value for match in found}:
        # The same characters may also stand where they are no value (`a@b.com4111...`): only those may remain.
        assert out.count(value) <= text.count(value) - sum(1 for match in found if match.value == value)


def _stage_parts(exchange: Exchange):
    return Run(exchange, lambda *a: None, lambda *a: None)


GUARDS = [
    {"type": "max_size", "max_chars": 50, "action": "log"},
    {"type": "pii", "where": "both", "action": "redact"},
    {"type": "pii", "where": "output", "action": "log"},
    {"type": "output_schema", "action": "log", "schema": {"type": "object"}},
    {"type": "confidence", "action": "flag"},
    {"type": "allowed_params", "allowed": ["temperature"], "action": "log"},
]


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200), st.text(max_size=200))
def test_guards_never_crash_on_arbitrary_requests_and_answers(question: str, answer: str) -> None:
    checks = [compile_check(spec, None, None, {}) for spec in GuardPolicy.model_validate({"guards": GUARDS}).guards]
    detectors = [SizeDetector(10), PiiDetector(["email", "ip"]), InjectionDetector(None, 0.5)]
    for detector in detectors:
        finding = detector.inspect(question)
        assert finding is None or finding.reason
    payload = {"model": "m", "messages": [{"role": "user", "content": question}], "extra": 1}
    record = RawTraffic(request_id="r", started_at=0.0, endpoint="chat.completions", status=0, latency_ms=0.0)
    exchange = Exchange("chat.completions", payload, None, record, {}, False)
    run = _stage_parts(exchange)

    async def go() -> None:
        from sidecar.pipeline import Reply

        for check in checks:
            await check.on_request(exchange, run)
        document = {"choices": [{"index": 0, "message": {"role": "assistant", "content": answer}}]}
        reply = Reply(200, orjson.dumps(document))
        for check in checks:
            reply = await check.on_reply(exchange, reply, run)
        assert reply.status == 200

    asyncio.run(go())
    assert isinstance(exchange.payload["messages"][0]["content"], str)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(max_size=30), max_size=12))
def test_the_stream_filter_keeps_the_event_structure_for_arbitrary_deltas(deltas: list[str]) -> None:
    lookback = LookBack(24, ["email", "phone", "card"], True, None, None)
    stream_filter = GuardStreamFilter(lookback, [], None, False)
    events = b"".join(
        b"data: " + orjson.dumps({"object": "chat.completion.chunk", "choices": [
            {"index": 0, "delta": {"content": delta}, "finish_reason": None}]}) + b"\n\n"
        for delta in deltas
    )
    final = b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
    out = stream_filter.feed(events) + stream_filter.feed(final)
    parsed = [part for part in out.split(b"\n\n") if part]
    assert parsed[-1] == b"data: [DONE]"
    text = "".join(orjson.loads(p[6:])["choices"][0]["delta"].get("content") or "" for p in parsed[:-1])
    assert text == redact_pii("".join(deltas), ["email", "phone", "card"])[0] or find_pii(text, ["email", "phone", "card"]) == []


@pytest.mark.parametrize("text", ["", " ", "\x00", "[EMAIL_1", "[EMAIL_99]"])
def test_restoring_unknown_or_partial_tokens_keeps_them(text: str) -> None:
    assert Masker(["email"]).restore(text) == text


def test_the_stream_filter_reads_any_framing_and_withholds_what_it_cannot_parse() -> None:
    lookback = LookBack(24, ["email"], True, None, None)
    stream_filter = GuardStreamFilter(lookback, [], None, False)
    chunk = {"object": "chat.completion.chunk", "choices": [
        {"index": 0, "delta": {"content": "mail ana@example.org now"}, "finish_reason": "stop"}]}
    out = stream_filter.feed(b"data:" + orjson.dumps(chunk) + b"\r\n\r\n")  # no space, CRLF
    assert b"ana@example.org" not in out and b"[EMAIL]" in out and out.startswith(b"data: {")
    with pytest.raises(StreamBlocked) as blocked:
        stream_filter.feed(b"data: <html>ana@example.org</html>\n\n")
    assert blocked.value.code == "upstream_invalid_response"


def test_events_that_are_not_answer_chunks_get_the_same_pii_policy() -> None:
    # An upstream error event may quote the prompt or the answer; it has no `choices` to redact through.
    error = {"error": {"message": "cannot answer ana@example.org at +1 415 555 0123", "type": "server_error"}}
    redacting = GuardStreamFilter(LookBack(24, ["email", "phone"], True, None, None), [], None, False)
    out = redacting.feed(b"data:" + orjson.dumps(error) + b"\n\n")
    assert b"ana@example.org" not in out and b"555 0123" not in out and b"[EMAIL]" in out
    assert orjson.loads(out[6:])["error"]["type"] == "server_error"
    seen: list[str] = []
    flagging = GuardStreamFilter(LookBack(24, ["email"], False, None, seen.append), [], None, False)
    flagging.feed(b"data: " + orjson.dumps(error) + b"\n\n")
    assert seen and "ana@example.org" in seen[0]
    usage = {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}
    assert orjson.loads(redacting.feed(b"data: " + orjson.dumps(usage) + b"\n\n")[6:]) == usage
