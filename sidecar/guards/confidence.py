"""Confidence of an answer from its token logprobs: the geometric mean of the tokens' probabilities.

`exp(mean(logprob))` lies in 0..1, is 1 for a model certain of every token, and does not shrink with the
answer's length the way the joint probability does. Chat answers carry `choices[].logprobs.content[].logprob`;
legacy completions `choices[].logprobs.token_logprobs[]`. No logprobs (the upstream ignores the parameter):
no score, and the guard does not trigger.
"""

from __future__ import annotations

import math
from typing import Any


class LogprobTally:
    """Running sum of token logprobs, fed per answer or per streamed chunk."""

    __slots__ = ("count", "total")

    def __init__(self) -> None:
        self.total = 0.0
        self.count = 0

    def add_choice(self, choice: Any) -> None:
        """Add the logprobs of one choice (or streamed choice delta)."""
        if not isinstance(choice, dict):
            return
        logprobs = choice.get("logprobs")
        if not isinstance(logprobs, dict):
            return
        content = logprobs.get("content")
        if isinstance(content, list):
            values = [item.get("logprob") for item in content if isinstance(item, dict)]
        else:
            values = logprobs.get("token_logprobs") or []
        for value in values:
            if isinstance(value, int | float) and math.isfinite(value):
                self.total += float(value)
                self.count += 1

    def confidence(self) -> float | None:
        if self.count == 0:
            return None
        return math.exp(self.total / self.count)


def answer_confidence(document: Any) -> float | None:
    """The confidence of a non-stream answer's first choice, or None without logprobs."""
    if not isinstance(document, dict) or not isinstance(document.get("choices"), list) or not document["choices"]:
        return None
    tally = LogprobTally()
    tally.add_choice(document["choices"][0])
    return tally.confidence()


def request_logprobs(payload: dict[str, Any], endpoint: str) -> dict[str, Any] | None:
    """The payload with logprobs asked for, or None when the client already asked (then they are its own)."""
    if payload.get("logprobs"):
        return None
    return {**payload, "logprobs": 1 if endpoint == "completions" else True}


def strip_logprobs(document: dict[str, Any]) -> None:
    """Remove the logprobs the sidecar asked for, so the client gets the shape it requested."""
    for choice in document.get("choices") or ():
        if isinstance(choice, dict) and "logprobs" in choice:
            choice["logprobs"] = None
