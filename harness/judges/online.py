"""Online evaluation: judge a sample of logged traffic, store the scores linked to the traffic records, and send
doubtful items to the human review queue.

Sampling is by a hash of the traffic id, not a random draw: the same window sampled at the same rate picks the
same records, a higher rate picks a superset, and records already scored for a metric (same rubric and judges)
are skipped, so running the command again only judges what is new. An item is queued for review when every
judge failed on it, when the verdicts spread wider than `review_spread_above` (judges or samples disagree),
or when the sidecar logged a confidence (from token logprobs) below `review_confidence_below`.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from core.reviews import add_review_item
from core.tables import JudgeScore, utc_now
from harness.errors import HarnessError
from harness.judges.config import JudgeMetric
from harness.judges.panel import Judgement
from harness.judges.runtime import JudgeRuntime
from harness.judges.traffic import Exchange, exchange_from_row, iter_traffic, not_judge_traffic

SCORES: sa.Table = JudgeScore.__table__  # type: ignore[attr-defined]
_MAX_INPUT_CHARS = 8_000


def sample_point(traffic_id: str) -> float:
    """Where a record falls in [0, 1): it is sampled at every rate above this."""
    digest = hashlib.sha256(traffic_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass
class OnlineReport:
    """What one online evaluation did."""

    window: int = 0
    sampled: int = 0
    skipped_scored: int = 0
    scored: int = 0
    unscored: int = 0
    passed: int = 0
    queued: int = 0
    judge_calls: int = 0
    per_metric: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in self.__dataclass_fields__}


def review_reasons(judgement: Judgement, exchange: Exchange, runtime: JudgeRuntime) -> list[str]:
    """Why an item needs a person: judge failure, disagreement, low confidence (empty: it does not)."""
    settings = runtime.settings
    reasons = []
    if judgement.value is None:
        reasons.append(f"{judgement.metric}: {judgement.error or 'judge failed'}")
    elif (judgement.spread or 0.0) > settings.review_spread_above:
        reasons.append(f"{judgement.metric}: judges disagree (spread {judgement.spread:.2f})")
    if exchange.confidence is not None and exchange.confidence < settings.review_confidence_below:
        reasons.append(f"low confidence {exchange.confidence:.2f}")
    return reasons


def evaluate_traffic(runtime: JudgeRuntime, metrics: list[JudgeMetric], *, rate: float, since: timedelta,
                     now: datetime | None = None, limit: int | None = None) -> OnlineReport:
    """Sample the window's traffic at `rate`, judge it with every metric, store scores and queue reviews."""
    if not 0.0 <= rate <= 1.0:
        raise HarnessError(f"sample rate must be within 0..1, got {rate}")
    if not metrics:
        raise HarnessError("name at least one metric (--metric, or judges.metrics in the settings)")
    report = OnlineReport()
    chosen: list[Exchange] = []
    where = [not_judge_traffic(runtime.settings.feature)]
    for row in iter_traffic(runtime.engine, since=since, now=now, where=where):
        report.window += 1
        if sample_point(row["id"]) < rate and (limit is None or len(chosen) < limit):
            chosen.append(exchange_from_row(row))
    report.sampled = len(chosen)
    flagged: dict[str, list[str]] = {}
    for metric in metrics:
        _evaluate_metric(runtime, metric, chosen, report, flagged)
    by_id = {exchange.id: exchange for exchange in chosen}
    for traffic_id, reasons in flagged.items():
        exchange = by_id[traffic_id]
        add_review_item(runtime.engine, source="judge", reason="; ".join(reasons)[:500],
                        input_text=exchange.input[:_MAX_INPUT_CHARS] or None, output_text=exchange.output,
                        traffic_id=traffic_id, request_id=exchange.request_id, model=exchange.model,
                        prompt_name=exchange.prompt_name, score=exchange.confidence,
                        details={"reasons": reasons})
        report.queued += 1
    return report


def _evaluate_metric(runtime: JudgeRuntime, metric: JudgeMetric, chosen: list[Exchange], report: OnlineReport,
                     flagged: dict[str, list[str]]) -> None:
    spec = metric.spec
    panel = runtime.panel(**metric.panel_args())
    judges = ",".join(s.id for s in panel.judges)
    done = _already_scored(runtime, spec.label, spec.rubric_hash, judges, [e.id for e in chosen])
    todo = [exchange for exchange in chosen if exchange.id not in done]
    report.skipped_scored += len(chosen) - len(todo)
    calls_before = panel.calls

    async def judge_all() -> list[Judgement]:
        semaphore = asyncio.Semaphore(runtime.settings.concurrency)

        async def one(exchange: Exchange) -> Judgement:
            async with semaphore:
                item = metric.item(exchange.output, input=exchange.input or None)
                return await panel.ajudge(spec, item, threshold=metric.threshold)

        return await asyncio.gather(*(one(exchange) for exchange in todo))

    judgements = runtime.run(judge_all()) if todo else []
    counts = report.per_metric.setdefault(spec.label, {"scored": 0, "unscored": 0, "passed": 0})
    rows = []
    for exchange, judgement in zip(todo, judgements):
        rows.append(_score_row(exchange, judgement, judges))
        if judgement.value is None:
            report.unscored += 1
            counts["unscored"] += 1
        else:
            report.scored += 1
            counts["scored"] += 1
            if judgement.passed:
                report.passed += 1
                counts["passed"] += 1
        reasons = review_reasons(judgement, exchange, runtime)
        if reasons:
            known = flagged.setdefault(exchange.id, [])
            known.extend(reason for reason in reasons if reason not in known)
    if rows:
        with runtime.engine.begin() as connection:
            connection.execute(sa.insert(SCORES), rows)
    report.judge_calls += panel.calls - calls_before


def _score_row(exchange: Exchange, judgement: Judgement, judges: str) -> dict[str, Any]:
    details = judgement.details()
    return {"created_at": utc_now(), "traffic_id": exchange.id, "metric": judgement.metric,
            "rubric_hash": judgement.rubric_hash, "judges": judges, "value": judgement.value,
            "passed": judgement.passed, "threshold": judgement.threshold, "spread": judgement.spread,
            "cached": judgement.cached, "error": judgement.error, "details": details}


def _already_scored(runtime: JudgeRuntime, metric: str, rubric_hash: str, judges: str, ids: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(ids), 500):
        query = sa.select(SCORES.c.traffic_id).where(
            SCORES.c.metric == metric, SCORES.c.rubric_hash == rubric_hash, SCORES.c.judges == judges,
            SCORES.c.traffic_id.in_(ids[start:start + 500]))
        with runtime.engine.connect() as connection:
            found.update(row[0] for row in connection.execute(query))
    return found


def scores_for_traffic(runtime: JudgeRuntime, traffic_id: str) -> list[dict[str, Any]]:
    """Every stored judge score of one traffic record, oldest first."""
    query = sa.select(SCORES).where(SCORES.c.traffic_id == traffic_id).order_by(SCORES.c.id)
    with runtime.engine.connect() as connection:
        return [dict(row) for row in connection.execute(query).mappings()]
