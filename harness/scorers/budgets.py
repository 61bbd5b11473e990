"""Scorers for what a call cost: time, money and tokens.

Budgets score failed calls too (a slow failure still blew the latency budget). A quantity the result does
not know (no price for the model, no streaming so no TTFT, no usage) leaves the score unscored with the
reason: an unknown cost is not a pass. A budget that is exceeded fails even if another quantity is unknown.
"""

from __future__ import annotations

from typing import Any

from harness.results import LLMResult, Score
from harness.scorers.registry import outcome, scorer


def _positive_limits(**limits: Any) -> None:
    given = {name: limit for name, limit in limits.items() if limit is not None}
    if not given:
        raise ValueError(f"give at least one of {', '.join(limits)}")
    for name, limit in given.items():
        if isinstance(limit, bool) or not isinstance(limit, int | float) or limit < 0:
            raise ValueError(f"{name} must be a non-negative number, got {limit!r}")


def _judge(measured: dict[str, tuple[float | None, float | None]], unknown_reason: dict[str, str]) -> Score:
    """Compare each (measured, limit) pair; limits of None are not checked."""
    checked = {name: (value, limit) for name, (value, limit) in measured.items() if limit is not None}
    over = [name for name, (value, limit) in checked.items() if value is not None and value > limit]
    unknown = [name for name, (value, _) in checked.items() if value is None]
    if over:
        score = outcome(0.0, over=over)
    elif unknown:
        score = outcome(None, error="; ".join(unknown_reason[name] for name in unknown))
    else:
        score = outcome(1.0)
    score.details.update(
        {name: {"measured": value, "limit": limit} for name, (value, limit) in checked.items()}
    )
    return score


def _check_latency(total_ms: Any = None, ttft_ms: Any = None) -> None:
    _positive_limits(total_ms=total_ms, ttft_ms=ttft_ms)


@scorer(check=_check_latency, scores_failed_calls=True)
def latency_budget(result: LLMResult, total_ms: float | None = None, ttft_ms: float | None = None) -> Score:
    """1.0 when the call's total latency and/or time to first token are within their budgets (ms)."""
    return _judge(
        {"total_ms": (result.latency_ms, total_ms), "ttft_ms": (result.ttft_ms, ttft_ms)},
        {"ttft_ms": "time to first token unknown (the call was not streamed)", "total_ms": "latency unknown"},
    )


def _check_cost(max_usd: Any) -> None:
    _positive_limits(max_usd=max_usd)


@scorer(check=_check_cost, scores_failed_calls=True)
def cost_budget(result: LLMResult, max_usd: float) -> Score:
    """1.0 when the call cost at most `max_usd`; unscored when the cost is unknown (no price for the model)."""
    return _judge(
        {"cost_usd": (result.cost_usd, max_usd)},
        {"cost_usd": f"cost unknown: no price known for model {result.model!r}"},
    )


def _check_tokens(max_out: Any = None, max_in: Any = None) -> None:
    _positive_limits(max_out=max_out, max_in=max_in)


@scorer(check=_check_tokens, scores_failed_calls=True)
def token_budget(result: LLMResult, max_out: int | None = None, max_in: int | None = None) -> Score:
    """1.0 when the completion (`max_out`) and/or prompt (`max_in`) token counts are within budget."""
    return _judge(
        {"tokens_out": (result.tokens_out, max_out), "tokens_in": (result.tokens_in, max_in)},
        {"tokens_out": "completion token count unknown", "tokens_in": "prompt token count unknown"},
    )
