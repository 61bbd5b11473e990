"""Calibration: how well a judge agrees with human labels on one metric, stored so a gate can require it.

A calibration set is a dataset (the harness's format) whose cases hold what was judged and the human label:

    {"id": "c01", "inputs": {"input": "...", "output": "...", "context": "..."}, "expected": "good"}

`expected` is `good`/`bad`, or `{"label": "good", "score": 0.8}` with an optional human score in 0..1.
Figures are over the items the judge scored (failures are counted and left out): accuracy and Cohen's kappa
of the judge's pass/fail against the labels, and Spearman's rank correlation of the judge's values with
the human scores (the labels as 1/0 when there are no scores).
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from core.tables import JudgeCalibration, utc_now
from harness.datasets import Case, load_dataset
from harness.errors import HarnessError
from harness.judges.config import JudgeMetric
from harness.judges.metrics import JudgeItem
from harness.judges.runtime import JudgeRuntime

_TABLE: sa.Table = JudgeCalibration.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class LabelledItem:
    """One calibration case: what was judged, the human label (1 good, 0 bad) and an optional human score."""

    id: str
    item: JudgeItem
    label: int
    score: float | None


@dataclass
class CalibrationResult:
    """Agreement figures of a judge panel with human labels on one metric."""

    metric: str
    rubric_hash: str
    judges: str
    dataset: str
    dataset_sha256: str | None
    n_items: int
    n_scored: int
    accuracy: float | None
    kappa: float | None
    spearman: float | None
    items: list[dict[str, Any]] = field(default_factory=list)
    judge_calls: int = 0

    def row(self) -> dict[str, Any]:
        return {"created_at": utc_now(), "metric": self.metric, "rubric_hash": self.rubric_hash,
                "judges": self.judges, "dataset": self.dataset, "dataset_sha256": self.dataset_sha256,
                "n_items": self.n_items, "n_scored": self.n_scored, "accuracy": self.accuracy, "kappa": self.kappa,
                "spearman": self.spearman, "details": {"items": self.items, "judge_calls": self.judge_calls}}


def labelled_item(case: Case) -> LabelledItem:
    """A calibration case read from a dataset case; HarnessError naming the case when it is malformed."""
    inputs = case.inputs
    if not isinstance(inputs.get("output"), str):
        raise HarnessError(f"{case.source}: a calibration case needs inputs.output (the text judged)")
    expected = case.expected
    label = expected.get("label") if isinstance(expected, dict) else expected
    if label not in ("good", "bad"):
        raise HarnessError(f"{case.source}: expected must be 'good'/'bad' or {{label, score}}, got {expected!r}")
    score = expected.get("score") if isinstance(expected, dict) else None
    if score is not None and (not isinstance(score, int | float) or not 0 <= score <= 1):
        raise HarnessError(f"{case.source}: expected.score must be a number in 0..1")
    context = inputs.get("context")
    item = JudgeItem(output=inputs["output"], input=inputs.get("input"), expected=inputs.get("expected"),
                     context=() if not context else ((context,) if isinstance(context, str) else tuple(context)))
    return LabelledItem(case.id, item, 1 if label == "good" else 0, None if score is None else float(score))


def cohen_kappa(first: list[int], second: list[int]) -> float | None:
    """Cohen's kappa of two binary raters; None when chance agreement is total (both raters constant)."""
    n = len(first)
    if n == 0 or n != len(second):
        return None
    observed = sum(1 for a, b in zip(first, second) if a == b) / n
    p_first, p_second = sum(first) / n, sum(second) / n
    expected = p_first * p_second + (1 - p_first) * (1 - p_second)
    if expected >= 1.0:
        return None
    return (observed - expected) / (1 - expected)


def spearman(first: list[float], second: list[float]) -> float | None:
    """Spearman's rank correlation; None when either side is constant or there are fewer than 2 items."""
    if len(first) < 2 or len(set(first)) < 2 or len(set(second)) < 2:
        return None
    from scipy.stats import spearmanr

    value = float(spearmanr(first, second).statistic)
    return None if math.isnan(value) else value


def agreement(labels: list[int], values: list[float], passed: list[int],
              human_scores: list[float]) -> tuple[float | None, float | None, float | None]:
    """(accuracy, kappa, spearman) over scored items."""
    if not labels:
        return None, None, None
    accuracy = sum(1 for a, b in zip(labels, passed) if a == b) / len(labels)
    return accuracy, cohen_kappa(labels, passed), spearman(values, human_scores)


def calibrate(runtime: JudgeRuntime, metric: JudgeMetric, dataset_path: str | Path) -> CalibrationResult:
    """Score every labelled case with the metric's judges and compute the agreement figures."""
    dataset = load_dataset(dataset_path)
    items = [labelled_item(case) for case in dataset.cases]
    if not items:
        raise HarnessError(f"{dataset_path}: the calibration set is empty")
    spec = metric.spec
    panel = runtime.panel(**metric.panel_args())
    calls_before = panel.calls

    async def judge_all() -> list[Any]:
        semaphore = asyncio.Semaphore(runtime.settings.concurrency)

        async def one(labelled: LabelledItem) -> Any:
            async with semaphore:
                return await panel.ajudge(spec, labelled.item, threshold=metric.threshold)

        return await asyncio.gather(*(one(labelled) for labelled in items))

    judgements = runtime.run(judge_all())
    rows, labels, values, passed, humans = [], [], [], [], []
    for labelled, judgement in zip(items, judgements):
        value = judgement.value
        rows.append({"id": labelled.id, "label": labelled.label, "value": value, "cached": judgement.cached,
                     "error": judgement.error})
        if value is None:
            continue
        labels.append(labelled.label)
        values.append(value)
        passed.append(1 if value >= metric.threshold else 0)
        humans.append(labelled.score if labelled.score is not None else float(labelled.label))
    accuracy, kappa, rho = agreement(labels, values, passed, humans)
    return CalibrationResult(
        metric=spec.label, rubric_hash=spec.rubric_hash, judges=",".join(judgements[0].judges),
        dataset=str(dataset_path), dataset_sha256=dataset.sha256, n_items=len(items), n_scored=len(labels),
        accuracy=accuracy, kappa=kappa, spearman=rho, items=rows, judge_calls=panel.calls - calls_before,
    )


def store_calibration(runtime: JudgeRuntime, result: CalibrationResult) -> int:
    """Save the calibration; returns its id. The newest calibration of a judge and rubric is the one that counts."""
    with runtime.engine.begin() as connection:
        return int(connection.execute(sa.insert(_TABLE).returning(_TABLE.c.id), result.row()).scalar_one())


def latest_calibrations(runtime: JudgeRuntime, metric: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """Stored calibrations, newest first."""
    query = sa.select(_TABLE).order_by(_TABLE.c.created_at.desc(), _TABLE.c.id.desc()).limit(limit)
    if metric is not None:
        query = query.where(_TABLE.c.metric == metric)
    with runtime.engine.connect() as connection:
        return [dict(row) for row in connection.execute(query).mappings()]
