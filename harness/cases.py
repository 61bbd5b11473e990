"""The state of one case while its test runs, and the row it becomes in the run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.datasets import Case
from harness.results import LLMResult, Score
from harness.suite import PromptSpec, SuiteSpec


@dataclass
class CaseState:
    """Everything the plugin knows about one (case, repeat) test."""

    suite: SuiteSpec
    case: Case | None
    repeat: int
    prompt: PromptSpec | None
    dataset_path: str | None = None
    dataset_sha256: str | None = None
    prompt_version: str | None = None
    request: dict[str, Any] | None = None
    result: LLMResult | None = None
    scores: list[Score] = field(default_factory=list)
    error: str | None = None
    span: Any = None  # the case's trace span, when tracing is on

    @property
    def case_id(self) -> str:
        return self.case.id if self.case is not None else "-"

    def passed(self) -> bool | None:
        """All scored scores passed; None when nothing was scored (or the call failed)."""
        if self.error is not None or (self.result is not None and self.result.error is not None):
            return False
        scored = [score.passed for score in self.scores if score.passed is not None]
        if not scored:
            return None
        return all(scored)

    def finish(self) -> dict[str, Any]:
        """The row, after which the state drops the request, answer and scores it was built from: finished
        cases hold no answers in memory (2-3 KiB each), and a rerun of the test starts without old scores."""
        row = self.row()
        if self.span is not None:
            from harness.tracing import HarnessTracer

            HarnessTracer.end_case_span(self.span, row["passed"], row["error"])
            self.span = None
        self.request = None
        self.result = None
        self.scores = []
        return row

    def row(self) -> dict[str, Any]:
        """The JSON-ready case result sent from the test process to the recording process."""
        result = self.result
        return {
            "suite": self.suite.name,
            "case_id": self.case_id,
            "repeat": self.repeat,
            "inputs": dict(self.case.inputs) if self.case is not None else {},
            "output": result.to_dict() if result is not None else None,
            "scores": [score.to_dict() for score in self.scores],
            "passed": self.passed(),
            "error": self.error or (result.error if result is not None else None),
            "latency_ms": result.latency_ms if result is not None else None,
            "tokens_in": result.tokens_in if result is not None else None,
            "tokens_out": result.tokens_out if result is not None else None,
            "cost_usd": result.cost_usd if result is not None else None,
            "replayed": bool(result.replayed) if result is not None else False,
            # Provenance the recording process aggregates into the run (it does not collect tests itself).
            "_meta": {
                "gate": self.suite.gate,
                "strict": self.suite.strict,
                "prompt": self.prompt.name if self.prompt is not None else None,
                "prompt_version": self.prompt_version,
                "model": (self.request or {}).get("model"),
                "dataset": self.dataset_path,
                "dataset_sha256": self.dataset_sha256,
                "expected": self.case.expected if self.case is not None else None,
            },
        }


def score_summary(scores: list[Score]) -> str:
    """`exact_match=1.00 json_schema=ERR` for JUnit properties and failure lines."""
    parts = []
    for score in scores:
        shown = "ERR" if score.value is None else f"{score.value:.2f}"
        parts.append(f"{score.name}={shown}")
    return " ".join(parts)
