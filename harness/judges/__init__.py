"""LLM judges: deepeval metrics scored by any model the sidecar serves, with a verdict cache, judge panels
(several judges, several samples), calibration against human labels and online evaluation of traffic.

The scorers (`geval`, `answer_relevancy`, `faithfulness`, `hallucination`, `toxicity`, `bias`,
`json_correctness`) are registered in `harness.scorers`; this package holds the machinery behind them.
Names load on first use (suites import the scorers at collection time), and deepeval itself is imported
only when a judge first scores something.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "JudgeMetric": "harness.judges.config",
    "load_metric_file": "harness.judges.config",
    "metric_from_config": "harness.judges.config",
    "resolve_metric": "harness.judges.config",
    "JudgeItem": "harness.judges.metrics",
    "MetricSpec": "harness.judges.metrics",
    "JudgeFailure": "harness.judges.model",
    "JudgeSpec": "harness.judges.model",
    "JudgeRuntime": "harness.judges.runtime",
    "active_runtime": "harness.judges.runtime",
    "bind_runtime_factory": "harness.judges.runtime",
    "close_runtime": "harness.judges.runtime",
    "use_runtime": "harness.judges.runtime",
}

__all__ = [
    "JudgeFailure",
    "JudgeItem",
    "JudgeMetric",
    "JudgeRuntime",
    "JudgeSpec",
    "MetricSpec",
    "active_runtime",
    "bind_runtime_factory",
    "close_runtime",
    "load_metric_file",
    "metric_from_config",
    "resolve_metric",
    "use_runtime",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'harness.judges' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
