"""Scorers that compare meaning rather than characters, using MiniLM sentence embeddings."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from core import embeddings
from harness.results import LLMResult, Score
from harness.scorers.registry import outcome, scorer
from harness.scorers.text import check_expected_texts


@lru_cache(maxsize=4096)
def _embedding(text: str) -> np.ndarray:
    # Expected answers repeat across repeats and runs of a case: embed each distinct text once.
    vector = embeddings.encode([text])[0]
    vector.flags.writeable = False
    return vector


def _check_similarity(expected: Any, **_: Any) -> None:
    check_expected_texts(expected)
    try:
        embeddings.model_directory()  # fail when the scorer is built, not as every case going unscored
    except embeddings.EmbeddingError as exc:
        raise ValueError(str(exc)) from exc


@scorer(threshold=0.8, check=_check_similarity)
def semantic_similarity(result: LLMResult, expected: str | Sequence[str]) -> Score:
    """Cosine similarity of the output's and `expected`'s all-MiniLM-L6-v2 embeddings, clipped to 0..1.

    With a list of reference answers the best match counts. The default pass mark is 0.8 (`threshold=`).
    """
    references = [expected] if isinstance(expected, str) else list(expected)
    output = _embedding(result.text)
    cosines = [float(output @ _embedding(reference)) for reference in references]
    best = max(range(len(cosines)), key=cosines.__getitem__)
    value = min(max(cosines[best], 0.0), 1.0)
    return outcome(value, cosine=cosines[best], best_reference=best)
