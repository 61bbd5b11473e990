"""Prompt-cache pricing: cached reads and cache writes billed at their own prices, in calls and traffic rows."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from core.pricing import PriceBook, cached_tokens
from core.settings import Price, Settings
from sidecar.traffic import RawTraffic, RecordFinaliser

CACHED = Price(input_per_mtok=1.0, output_per_mtok=5.0, cached_input_per_mtok=0.1, cache_write_per_mtok=1.25)


def book(**prices: Price) -> PriceBook:
    return PriceBook(Settings(prices=prices, embedded={"enabled": "never"}))


def test_cached_and_written_tokens_use_their_prices():
    prices = book(m=CACHED)
    # 1,000,000 prompt tokens: 600k read from cache, 300k written, 100k plain; 0 output.
    assert prices.cost("m", 1_000_000, 0, cached_in=600_000, cache_write_in=300_000) == pytest.approx(
        0.6 * 0.1 + 0.3 * 1.25 + 0.1 * 1.0)
    assert prices.cost("m", 1_000_000, 200_000) == pytest.approx(1.0 + 1.0)  # no cache figures: plain price


def test_without_cache_prices_cached_tokens_cost_the_input_price():
    prices = book(m=Price(input_per_mtok=2.0, output_per_mtok=0.0))
    assert prices.cost("m", 1_000_000, 0, cached_in=500_000) == pytest.approx(2.0)


def test_litellm_price_map_brings_cache_prices():
    price = book().price("anthropic/claude-haiku-4-5")
    assert price is not None and price.cached_input_per_mtok is not None and price.cache_write_per_mtok is not None
    assert price.cached_input_per_mtok < price.input_per_mtok < price.cache_write_per_mtok


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        ({"prompt_tokens": 10}, (None, None)),
        ({"prompt_tokens_details": {"cached_tokens": 7}}, (7, None)),  # OpenAI, Gemini through litellm
        ({"prompt_tokens_details": {"cached_tokens": 0}, "cache_creation_input_tokens": 30}, (0, 30)),  # Anthropic
        ({"cache_read_input_tokens": 4, "prompt_tokens_details": None}, (4, None)),
        ({"prompt_tokens_details": {"cached_tokens": True}}, (None, None)),
    ],
)
def test_cached_token_counts_are_read_from_openai_and_litellm_fields(usage, expected):
    assert cached_tokens(usage) == expected


def test_a_traffic_row_is_billed_with_the_cache_prices(tmp_path: Path):
    settings = Settings(data_dir=tmp_path, prices={"m": CACHED}, embedded={"enabled": "never"})
    usage = {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100,
             "prompt_tokens_details": {"cached_tokens": 800}, "cache_creation_input_tokens": 0}
    body = {"id": "c", "object": "chat.completion", "usage": usage,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]}
    raw = RawTraffic(request_id="r", started_at=time.time(), endpoint="chat.completions", status=200,
                     latency_ms=1.0, requested_model="m", served_model="m", response_body=orjson.dumps(body))
    row = RecordFinaliser(settings, PriceBook(settings)).finalise(raw)
    assert row["cost_usd"] == pytest.approx((200 * 1.0 + 800 * 0.1 + 100 * 5.0) / 1e6)
