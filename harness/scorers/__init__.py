"""Scorers: functions from one model result to a `Score`, registered by name.

Write one with `@scorer`; refer to one by name with `get_scorer` or `scorer_from_config`. Importing this
package registers the built-ins below.
"""

from harness.scorers.budgets import cost_budget, latency_budget, token_budget
from harness.scorers.judges import (
    answer_relevancy,
    bias,
    faithfulness,
    geval,
    hallucination,
    json_correctness,
    toxicity,
)
from harness.scorers.registry import (
    Scorer,
    ScorerFactory,
    get_scorer,
    outcome,
    registered_scorers,
    scorer,
    scorer_from_config,
    unregister_scorer,
)
from harness.scorers.semantic import semantic_similarity
from harness.scorers.structured import field_match, json_schema, numeric_tolerance, parse_json, valid_json
from harness.scorers.text import contains, exact_match, normalise_text, normalised_match, regex

__all__ = [
    "Scorer",
    "ScorerFactory",
    "answer_relevancy",
    "bias",
    "contains",
    "cost_budget",
    "exact_match",
    "faithfulness",
    "field_match",
    "get_scorer",
    "geval",
    "hallucination",
    "json_correctness",
    "json_schema",
    "latency_budget",
    "normalise_text",
    "normalised_match",
    "numeric_tolerance",
    "outcome",
    "parse_json",
    "regex",
    "registered_scorers",
    "scorer",
    "scorer_from_config",
    "semantic_similarity",
    "token_budget",
    "toxicity",
    "unregister_scorer",
    "valid_json",
]
