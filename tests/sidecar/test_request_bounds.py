"""Request parameters are held to sane bounds before anything is sent upstream (issue #13, item 13).

`n=1000000`, `top_logprobs=1000000` or `max_tokens=2**63-1` must be a 400 `invalid_request_error` naming the
parameter, never a request an upstream has to cope with.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.errors import InvalidRequest
from sidecar.validation import (
    INT64_MAX,
    MAX_OUTPUT_TOKENS,
    check_output_tokens,
    validate_chat,
    validate_completion,
    validate_embeddings,
)
from tests.sidecar.test_proxy import CHAT

COMPLETION = {"model": "fake-model", "prompt": "hello"}
EMBEDDING = {"model": "fake-model", "input": "hello"}


def refused(validate: Any, data: dict[str, Any]) -> str | None:
    """The `param` of the 400 the request gets, or None when it is accepted."""
    try:
        validate(data)
    except InvalidRequest as error:
        assert error.status == 400 and error.type == "invalid_request_error"
        return error.param
    return None


# (parameter, largest accepted, smallest refused above) for chat
INT_BOUNDS = [
    ("n", 128, 129),
    ("max_tokens", MAX_OUTPUT_TOKENS, MAX_OUTPUT_TOKENS + 1),
    ("max_completion_tokens", MAX_OUTPUT_TOKENS, MAX_OUTPUT_TOKENS + 1),
]


@pytest.mark.parametrize(("name", "highest", "refused_from"), INT_BOUNDS)
def test_integer_parameters_have_an_upper_bound(name: str, highest: int, refused_from: int) -> None:
    assert refused(validate_chat, {**CHAT, name: highest}) is None
    assert refused(validate_chat, {**CHAT, name: refused_from}) == name
    assert refused(validate_chat, {**CHAT, name: 2**63 - 1}) == name


@given(st.integers(min_value=129, max_value=2**63 - 1))
def test_n_above_128_is_refused(n: int) -> None:
    assert refused(validate_chat, {**CHAT, "n": n}) == "n"
    assert refused(validate_completion, {**COMPLETION, "n": n}) == "n"


@given(st.integers(min_value=0, max_value=20))
def test_top_logprobs_up_to_20_with_logprobs_is_accepted(value: int) -> None:
    assert refused(validate_chat, {**CHAT, "logprobs": True, "top_logprobs": value}) is None


@given(st.one_of(st.integers(min_value=21, max_value=2**63 - 1), st.integers(max_value=-1, min_value=-(2**63))))
def test_top_logprobs_outside_0_20_is_refused(value: int) -> None:
    assert refused(validate_chat, {**CHAT, "logprobs": True, "top_logprobs": value}) == "top_logprobs"


def test_top_logprobs_requires_logprobs() -> None:
    assert refused(validate_chat, {**CHAT, "top_logprobs": 2}) == "top_logprobs"
    assert refused(validate_chat, {**CHAT, "logprobs": False, "top_logprobs": 2}) == "top_logprobs"
    assert refused(validate_chat, {**CHAT, "logprobs": "yes"}) == "logprobs"


UNIT_RANGES = [("temperature", 0.0, 2.0), ("top_p", 0.0, 1.0), ("presence_penalty", -2.0, 2.0),
               ("frequency_penalty", -2.0, 2.0)]


@pytest.mark.parametrize(("name", "low", "high"), UNIT_RANGES)
@given(value=st.floats(allow_nan=False, allow_infinity=True))
def test_sampling_parameters_stay_in_their_range(name: str, low: float, high: float, value: float) -> None:
    expected = None if low <= value <= high else name
    assert refused(validate_chat, {**CHAT, name: value}) == expected
    assert refused(validate_completion, {**COMPLETION, name: value}) == expected


@given(st.integers(min_value=-(2**70), max_value=2**70))
def test_seed_must_fit_in_int64(seed: int) -> None:
    expected = None if -(2**63) <= seed <= INT64_MAX else "seed"
    assert refused(validate_chat, {**CHAT, "seed": seed}) == expected


def test_seed_must_be_an_integer() -> None:
    assert refused(validate_chat, {**CHAT, "seed": 1.5}) == "seed"
    assert refused(validate_chat, {**CHAT, "seed": "1"}) == "seed"


@given(st.floats(allow_nan=False) | st.integers(min_value=-(10**6), max_value=10**6))
def test_logit_bias_values_between_minus_100_and_100(value: float) -> None:
    expected = None if -100 <= value <= 100 else "logit_bias"
    assert refused(validate_chat, {**CHAT, "logit_bias": {"50256": value}}) == expected


def test_logit_bias_shape_and_size() -> None:
    assert refused(validate_chat, {**CHAT, "logit_bias": {str(i): 1 for i in range(1024)}}) is None
    assert refused(validate_chat, {**CHAT, "logit_bias": {str(i): 1 for i in range(1025)}}) == "logit_bias"
    assert refused(validate_chat, {**CHAT, "logit_bias": {"hello": 1}}) == "logit_bias"
    assert refused(validate_chat, {**CHAT, "logit_bias": {"1": "1"}}) == "logit_bias"
    assert refused(validate_chat, {**CHAT, "logit_bias": [1, 2]}) == "logit_bias"


@given(st.lists(st.text(max_size=5), max_size=10))
def test_stop_holds_at_most_four_strings(stop: list[str]) -> None:
    expected = None if len(stop) <= 4 else "stop"
    assert refused(validate_chat, {**CHAT, "stop": stop}) == expected


def test_stop_items_must_be_strings() -> None:
    assert refused(validate_chat, {**CHAT, "stop": "###"}) is None
    assert refused(validate_chat, {**CHAT, "stop": [1, 2]}) == "stop"
    assert refused(validate_chat, {**CHAT, "stop": {"a": 1}}) == "stop"


def test_completion_only_parameters() -> None:
    assert refused(validate_completion, {**COMPLETION, "logprobs": 5}) is None
    assert refused(validate_completion, {**COMPLETION, "logprobs": 6}) == "logprobs"
    assert refused(validate_completion, {**COMPLETION, "best_of": 21}) == "best_of"
    assert refused(validate_completion, {**COMPLETION, "best_of": 2, "n": 3}) == "best_of"
    assert refused(validate_completion, {**COMPLETION, "echo": 1}) == "echo"
    assert refused(validate_completion, {**COMPLETION, "max_tokens": 2**63 - 1}) == "max_tokens"


def test_embedding_dimensions_and_user() -> None:
    assert refused(validate_embeddings, {**EMBEDDING, "dimensions": 3072}) is None
    assert refused(validate_embeddings, {**EMBEDDING, "dimensions": 10**9}) == "dimensions"
    assert refused(validate_embeddings, {**EMBEDDING, "user": 5}) == "user"
    assert refused(validate_chat, {**CHAT, "user": "u" * 257}) == "user"


def test_tools_are_bounded() -> None:
    tool = {"type": "function", "function": {"name": "f"}}
    assert refused(validate_chat, {**CHAT, "tools": [tool] * 128}) is None
    assert refused(validate_chat, {**CHAT, "tools": [tool] * 129}) == "tools"
    assert refused(validate_chat, {**CHAT, "tools": "f"}) == "tools"


@given(window=st.integers(min_value=1, max_value=10**6), asked=st.integers(min_value=1, max_value=MAX_OUTPUT_TOKENS))
def test_output_budget_is_bounded_by_the_context_window(window: int, asked: int) -> None:
    for name in ("max_tokens", "max_completion_tokens"):
        expected = None if asked <= window else name
        assert refused(lambda data: check_output_tokens(data, window), {**CHAT, name: asked}) == expected
        assert refused(lambda data: check_output_tokens(data, None), {**CHAT, name: asked}) is None


HOSTILE = [
    ({"n": 1_000_000}, "n"),
    ({"logprobs": True, "top_logprobs": 1_000_000}, "top_logprobs"),
    ({"max_tokens": 2**63 - 1}, "max_tokens"),
    ({"max_completion_tokens": 2**63 - 1}, "max_completion_tokens"),
    ({"seed": 2**63}, "seed"),
    ({"seed": 2**64}, "seed"),  # orjson reads integers beyond 64 bits as floats: not an integer
]


@pytest.mark.parametrize(("extra", "param"), HOSTILE)
def test_hostile_values_never_reach_the_upstream(sidecar, fake, extra: dict[str, Any], param: str | None) -> None:
    proxy, _ = sidecar
    response = httpx.post(proxy.url + "/chat/completions", json={**CHAT, **extra})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert fake.stats()["requests_total"] == 0


def test_max_tokens_above_the_configured_context_window_is_refused(make_sidecar, fake) -> None:
    proxy, _ = make_sidecar({"fake-model": {"deployments": [{"base_url": fake.url}], "context_window": 4096}})
    too_many = httpx.post(proxy.url + "/chat/completions", json={**CHAT, "max_tokens": 4097})
    assert too_many.status_code == 400
    error = too_many.json()["error"]
    assert error["param"] == "max_tokens" and "4096" in error["message"]
    assert fake.stats()["requests_total"] == 0
    fits = httpx.post(proxy.url + "/chat/completions", json={**CHAT, "max_tokens": 4096})
    assert fits.status_code == 200
