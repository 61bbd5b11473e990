"""Finalising raw traffic into rows: usage, estimates, cost, timings, bodies and redaction."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from core.pricing import PriceBook
from core.settings import Price, Settings, TrafficSettings
from sidecar.traffic import RawTraffic, RecordFinaliser
from sidecar.traffic.store import TRAFFIC_TABLE
from sidecar.traffic.usage import TokenEstimator, summarise_stream

PRICE = Price(input_per_mtok=3.0, output_per_mtok=15.0)
REQUEST = {"model": "priced", "messages": [{"role": "user", "content": "Email me at ana@example.com please"}]}


def make_settings(tmp_path: Path, database_url: str | None = None, **traffic: Any) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        prices={"priced": PRICE},
        traffic=TrafficSettings(**traffic),
    )


def chat_raw(
    index: int = 0, *, model: str = "priced", usage: bool = True, content: str = "Hello there"
) -> RawTraffic:
    """A non-stream chat completion as the request path records it."""
    body: dict[str, Any] = {
        "id": f"chatcmpl-{index}",
        "object": "chat.completion",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        ],
    }
    if usage:
        body["usage"] = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
    return RawTraffic(
        request_id=f"req-{index}",
        started_at=time.time(),
        endpoint="chat.completions",
        status=200,
        latency_ms=40.0,
        requested_model=model,
        served_model=model,
        user="u1",
        feature="search",
        request_body=orjson.dumps(REQUEST),
        response_body=orjson.dumps(body),
    )


def sse_chunks(pieces: list[str], *, usage: dict[str, int] | None, split_every: int = 7) -> list[bytes]:
    """An OpenAI SSE stream cut into raw chunks at arbitrary byte offsets (as TCP delivers it)."""
    events: list[dict[str, Any]] = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
    ]
    events += [{"choices": [{"index": 0, "delta": {"content": piece}}]} for piece in pieces]
    events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if usage is not None:
        events.append({"choices": [], "usage": usage})
    stream = b"".join(b"data: " + orjson.dumps(event) + b"\n\n" for event in events) + b"data: [DONE]\n\n"
    return [stream[start : start + split_every] for start in range(0, len(stream), split_every)]


def stream_raw(index: int = 0, *, usage: bool = True) -> RawTraffic:
    raw = chat_raw(index)
    raw.stream = True
    raw.response_body = None
    raw.response_chunks = sse_chunks(
        ["The ", "answer ", "is ", "42 ", "(call 555-123-4567)."],
        usage={"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21} if usage else None,
    )
    raw.ttft_ms = 20.0
    raw.latency_ms = 100.0
    return raw


@pytest.fixture
def finaliser(tmp_path: Path) -> RecordFinaliser:
    settings = make_settings(tmp_path)
    return RecordFinaliser(settings, PriceBook(settings))


def test_answers_served_from_the_cache_cost_nothing(finaliser: RecordFinaliser) -> None:
    raw = chat_raw()
    raw.cache_status = "semantic"
    row = finaliser.finalise(raw)
    assert (row["tokens_in"], row["tokens_out"], row["cost_usd"]) == (12, 5, 0.0)
    raw.cache_status = "miss"
    assert finaliser.finalise(raw)["cost_usd"] == pytest.approx((12 * 3.0 + 5 * 15.0) / 1e6)


def test_non_stream_usage_and_cost(finaliser: RecordFinaliser) -> None:
    raw = chat_raw()
    row = finaliser.finalise(raw)
    assert set(row) == set(TRAFFIC_TABLE.columns.keys())
    assert (row["tokens_in"], row["tokens_out"], row["usage_estimated"]) == (12, 5, False)
    assert row["cost_usd"] == pytest.approx((12 * 3.0 + 5 * 15.0) / 1e6)
    assert row["created_at"] == datetime.fromtimestamp(raw.started_at, UTC)
    assert row["tpot_ms"] is None
    assert len(row["id"]) == 32 and int(row["id"], 16) >= 0
    assert orjson.loads(row["response_body"])["choices"][0]["message"]["content"] == "Hello there"


def test_stream_usage_text_and_tpot(finaliser: RecordFinaliser) -> None:
    row = finaliser.finalise(stream_raw())
    assert (row["tokens_in"], row["tokens_out"], row["usage_estimated"]) == (12, 9, False)
    assert row["response_body"] == "The answer is 42 (call [PHONE])."
    assert row["tpot_ms"] == pytest.approx((100.0 - 20.0) / 8)
    assert row["cost_usd"] == pytest.approx((12 * 3.0 + 9 * 15.0) / 1e6)
    assert row["stream"] is True


def test_missing_usage_is_estimated_and_flagged(finaliser: RecordFinaliser) -> None:
    row = finaliser.finalise(chat_raw(usage=False, content="one two three four five six seven eight"))
    estimator = TokenEstimator()
    assert row["usage_estimated"] is True
    assert row["tokens_in"] == estimator.count("Email me at ana@example.com please")
    assert row["tokens_out"] == estimator.count("one two three four five six seven eight")
    assert row["tokens_out"] > 0 and row["cost_usd"] > 0

    streamed = finaliser.finalise(stream_raw(usage=False))
    assert streamed["usage_estimated"] is True
    assert streamed["tokens_out"] == estimator.count("The answer is 42 (call 555-123-4567).")


def test_unknown_price_gives_no_cost(finaliser: RecordFinaliser) -> None:
    row = finaliser.finalise(chat_raw(model="acme/unpriced-model-1b"))
    assert row["tokens_in"] == 12
    assert row["cost_usd"] is None


def test_failed_request_without_usage_has_no_tokens(finaliser: RecordFinaliser) -> None:
    raw = chat_raw()
    raw.status, raw.error_class, raw.response_body = (
        502,
        "upstream_error",
        b'{"error": {"message": "bad gateway"}}',
    )
    raw.error_message = "upstream said no to bob@example.com"
    row = finaliser.finalise(raw)
    assert (row["tokens_in"], row["tokens_out"], row["cost_usd"]) == (None, None, None)
    assert row["error_class"] == "upstream_error"
    assert row["error_message"] == "upstream said no to [EMAIL]"


def test_pii_is_redacted_and_counted(finaliser: RecordFinaliser) -> None:
    row = finaliser.finalise(chat_raw(content="Card 4111 1111 1111 1111, phone +44 20 7946 0958"))
    assert "ana@example.com" not in row["request_body"] and "[EMAIL]" in row["request_body"]
    assert "[CARD]" in row["response_body"] and "[PHONE]" in row["response_body"]
    assert "4111" not in row["response_body"]
    assert row["redactions"] == 3


def test_redaction_can_be_switched_off(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, redact_pii=False)
    row = RecordFinaliser(settings, PriceBook(settings)).finalise(chat_raw())
    assert "ana@example.com" in row["request_body"]
    assert row["redactions"] == 0


def test_bodies_are_omitted_when_not_logged(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, log_bodies=False)
    row = RecordFinaliser(settings, PriceBook(settings)).finalise(chat_raw())
    assert row["request_body"] is None and row["response_body"] is None
    assert row["tokens_in"] == 12


def test_bodies_are_truncated_after_redaction(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, max_logged_body_chars=200)
    content = "x" * 150 + " mail zed@example.com " + "y" * 500
    row = RecordFinaliser(settings, PriceBook(settings)).finalise(chat_raw(content=content))
    assert len(row["response_body"]) == 200
    assert row["response_body"].endswith("…[truncated]")
    assert "zed@" not in row["response_body"]


def test_strings_are_clipped_to_their_columns_and_nul_free(finaliser: RecordFinaliser) -> None:
    raw = chat_raw()
    raw.user = "u" * 500
    raw.error_message = "bad\x00byte"
    row = finaliser.finalise(raw)
    assert len(row["user"]) == 200
    assert row["error_message"] == "badbyte"


def test_stream_summary_survives_odd_chunking() -> None:
    chunks = sse_chunks(["α", "β", "γ"], usage={"prompt_tokens": 1, "completion_tokens": 3}, split_every=1)
    summary = summarise_stream(chunks)
    assert summary.text == "αβγ"
    assert summary.usage is not None and (summary.usage.tokens_in, summary.usage.tokens_out) == (1, 3)


def test_embeddings_usage_without_completion_tokens(finaliser: RecordFinaliser) -> None:
    raw = chat_raw()
    raw.endpoint = "embeddings"
    raw.response_body = orjson.dumps(
        {"data": [{"embedding": [0.1, 0.2]}], "usage": {"prompt_tokens": 8, "total_tokens": 8}}
    )
    row = finaliser.finalise(raw)
    assert (row["tokens_in"], row["tokens_out"], row["usage_estimated"]) == (8, 0, False)
    assert row["cost_usd"] == pytest.approx(8 * 3.0 / 1e6)
