"""Measuring text guards on a labelled dataset: precision, recall and false-positive rate per guard.

A dataset is JSON lines `{"text": "...", "expected": ["pii"]}`: `expected` lists the labels of the guards
that should trigger on the text (empty: none should). A guard's label is its `name`, else its type. Guards
that inspect text (size, injection, scope, PII, semantic) are measured; guards whose label no row mentions are
measured too, and then every trigger is a false positive.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from core.config.guards import GuardPolicy, InjectionGuard, ScopeGuard, SemanticGuard
from core.errors import TollgateError
from sidecar.guards.detectors import TextDetector


@dataclass(frozen=True, slots=True)
class Case:
    text: str
    expected: frozenset[str]


@dataclass
class GuardScore:
    """Confusion counts of one guard over a dataset, with the time it took per text."""

    guard: str
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    seconds: float = 0.0
    misses: list[str] = field(default_factory=list)
    false_alarms: list[str] = field(default_factory=list)

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @property
    def false_positive_rate(self) -> float | None:
        return self.fp / (self.fp + self.tn) if self.fp + self.tn else None

    @property
    def cases(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    def as_dict(self) -> dict[str, Any]:
        return {
            "guard": self.guard, "cases": self.cases, "tp": self.tp, "fp": self.fp, "fn": self.fn, "tn": self.tn,
            "precision": self.precision, "recall": self.recall, "false_positive_rate": self.false_positive_rate,
            "ms_per_text": 1000.0 * self.seconds / self.cases if self.cases else None,
            "misses": self.misses, "false_alarms": self.false_alarms,
        }


def read_dataset(path: Path) -> list[Case]:
    """The labelled cases of a JSONL file; a malformed line is an error naming the line."""
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise TollgateError(f"{path}: cannot read the dataset ({exc.strerror})") from exc
    cases = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise TollgateError(f"{path}:{number}: not JSON ({exc})") from exc
        text, expected = (row.get("text"), row.get("expected", [])) if isinstance(row, dict) else (None, None)
        if not isinstance(text, str) or not isinstance(expected, list):
            raise TollgateError(f'{path}:{number}: a case is {{"text": "...", "expected": ["guard", ...]}}')
        cases.append(Case(text, frozenset(str(label) for label in expected)))
    if not cases:
        raise TollgateError(f"{path}: the dataset has no cases")
    return cases


def text_detectors(policies: Iterable[GuardPolicy]) -> dict[str, TextDetector]:
    """One detector per distinct guard label among the policies' text guards (the first one wins)."""
    from sidecar.guards.semantic import Embedder
    from sidecar.guards.stage import compile_check

    specs: dict[str, Any] = {}
    for policy in policies:
        for spec in policy.guards:
            specs.setdefault(spec.label, spec)
    embeds = any(isinstance(s, InjectionGuard | ScopeGuard) or (isinstance(s, SemanticGuard) and s.classifier == "embedding")
                 for s in specs.values())
    embedder = Embedder() if embeds else None
    detectors: dict[str, TextDetector] = {}
    for label, spec in specs.items():
        detector = getattr(compile_check(spec, embedder, None, {}), "detector", None)
        if detector is not None:
            detectors[label] = detector
    return detectors


def evaluate(cases: list[Case], detectors: dict[str, TextDetector]) -> list[GuardScore]:
    """Run every detector over every case; examples of misses and false alarms are kept (up to 5 each)."""
    scores = []
    for label, detector in detectors.items():
        score = GuardScore(label)
        started = time.perf_counter()
        for case in cases:
            triggered = detector.inspect(case.text) is not None
            expected = label in case.expected
            if triggered and expected:
                score.tp += 1
            elif triggered:
                score.fp += 1
                if len(score.false_alarms) < 5:
                    score.false_alarms.append(case.text)
            elif expected:
                score.fn += 1
                if len(score.misses) < 5:
                    score.misses.append(case.text)
            else:
                score.tn += 1
        score.seconds = time.perf_counter() - started
        scores.append(score)
    return scores
