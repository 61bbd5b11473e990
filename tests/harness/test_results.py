"""LLMResult and Score: JSON parsing and lossless round trips."""

from __future__ import annotations

import dataclasses

import orjson
import pytest

from harness.results import LLMResult, Score


def make_result(**overrides: object) -> LLMResult:
    fields = {
        "text": '{"city": "Paris"}',
        "model": "smollm2",
        "latency_ms": 12.5,
        "ttft_ms": 3.0,
        "tokens_in": 10,
        "tokens_out": 5,
        "cost_usd": None,
    }
    fields.update(overrides)
    return LLMResult(**fields)  # type: ignore[arg-type]


def test_result_defaults_describe_a_live_successful_call() -> None:
    result = make_result()
    assert result.error is None
    assert result.replayed is False
    assert result.request_hash is None
    assert result.raw is None


def test_result_json_parses_text() -> None:
    assert make_result().json() == {"city": "Paris"}


def test_result_json_raises_value_error_naming_the_text() -> None:
    with pytest.raises(ValueError, match=r"not valid JSON.*'Sure! here it is'"):
        make_result(text="Sure! here it is").json()


def test_result_json_preview_is_truncated() -> None:
    with pytest.raises(ValueError) as info:
        make_result(text="x" * 500).json()
    assert "x" * 80 + "…" in str(info.value)
    assert "x" * 81 not in str(info.value)


def test_result_round_trips_through_json_bytes() -> None:
    result = make_result(
        error="upstream timed out", replayed=True, request_hash="ab12", raw={"id": "c1"}, cost_usd=0.002
    )
    back = LLMResult.from_dict(orjson.loads(orjson.dumps(result.to_dict())))
    assert back == result


def test_result_to_dict_has_every_field() -> None:
    names = {f.name for f in dataclasses.fields(LLMResult)}
    assert set(make_result().to_dict()) == names


def test_result_from_dict_fills_optional_keys_and_ignores_unknown_ones() -> None:
    back = LLMResult.from_dict({"text": "hi", "latency_ms": 4, "future_field": 1})
    assert back == LLMResult(
        text="hi", model=None, latency_ms=4.0, ttft_ms=None, tokens_in=None, tokens_out=None, cost_usd=None
    )


def test_result_from_dict_names_missing_keys() -> None:
    with pytest.raises(ValueError, match="missing required key\\(s\\): text, latency_ms"):
        LLMResult.from_dict({"model": "m"})


def test_score_round_trips_and_keeps_details() -> None:
    score = Score(
        name="contains",
        value=0.5,
        passed=False,
        threshold=1.0,
        args={"substring": ["a", "b"]},
        details={"missing": ["b"]},
    )
    back = Score.from_dict(orjson.loads(orjson.dumps(score.to_dict())))
    assert back == score
    assert back.scored is True


def test_unscored_score_round_trips_with_none_value() -> None:
    score = Score(name="x", value=None, passed=None, threshold=1.0, args={}, error="ValueError: bad")
    back = Score.from_dict(score.to_dict())
    assert back.value is None and back.passed is None and back.scored is False
    assert back.error == "ValueError: bad"
    assert back.details == {}


def test_score_default_details_are_not_shared() -> None:
    first = Score(name="a", value=1.0, passed=True, threshold=1.0, args={})
    second = Score(name="b", value=1.0, passed=True, threshold=1.0, args={})
    first.details["k"] = 1
    assert second.details == {}


def test_score_from_dict_rejects_non_mapping() -> None:
    with pytest.raises(TypeError, match="Score must be a mapping"):
        Score.from_dict(["not", "a", "dict"])  # type: ignore[arg-type]
