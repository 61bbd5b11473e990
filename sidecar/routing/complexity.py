"""How hard a request looks: a score from 0 (trivial) to 1 (needs a strong model), computed offline in microseconds.

The default classifier is a logistic function over cheap text features: length (log-scaled estimated
tokens), reasoning phrases ("step by step", "prove", "trade-off"...), the number of questions, code, and the
number of explicit constraints (numbered items, "must", "without"). Its weights are settings, so a team can
fit them on its own labelled traffic; any object with `score(text) -> float` can replace it.
"""

from __future__ import annotations

import math
import re
from typing import Protocol

from core.config.routing import ComplexitySettings

CHARS_PER_TOKEN = 4
_CODE = re.compile(r"```|^\s*(def|class|function|SELECT|import|#include)\b|[;{}]\s*$", re.MULTILINE | re.IGNORECASE)
_CONSTRAINT = re.compile(r"^\s*(\d+[.)]|[-*])\s+|\b(must|should not|must not|without|at least|at most|exactly)\b",
                         re.MULTILINE | re.IGNORECASE)


class ComplexityClassifier(Protocol):
    """Scores a request's text from 0 (simple) to 1 (complex)."""

    def score(self, text: str) -> float: ...


def estimate_tokens(text: str) -> int:
    """Input size in tokens, estimated as characters / 4 (the usual rule for English with BPE tokenizers)."""
    return (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


class HeuristicComplexity:
    """The default classifier (see the module docstring); weights come from `routing.complexity`."""

    def __init__(self, settings: ComplexitySettings) -> None:
        self._settings = settings
        self._keywords = tuple(k.lower() for k in settings.keywords)

    def features(self, text: str) -> dict[str, float]:
        """The feature values, each scaled to about 0-1 (what `score` weighs)."""
        lowered = text.lower()
        tokens = estimate_tokens(text)
        return {
            "length": min(math.log10(tokens + 1) / 3.5, 1.0),  # 3,000 tokens ~ 1.0
            "keywords": min(sum(1 for k in self._keywords if k in lowered), 3) / 3,
            "questions": min(text.count("?"), 4) / 4,
            "code": 1.0 if _CODE.search(text) else 0.0,
            "constraints": min(len(_CONSTRAINT.findall(text)), 6) / 6,
        }

    def score(self, text: str) -> float:
        s = self._settings
        f = self.features(text)
        z = (
            s.bias
            + s.length_weight * 3 * f["length"]
            + s.keyword_weight * 3 * f["keywords"]
            + s.question_weight * 4 * f["questions"]
            + s.code_weight * f["code"]
            + s.constraint_weight * 6 * f["constraints"]
        )
        return 1.0 / (1.0 + math.exp(-z))
