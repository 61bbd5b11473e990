"""Reads for the production-quality page: online judge scores over time and per release arm.

Scores live in `judge_score` (one row per judged traffic record); the arm a request was served by is the
traffic row's `variant` (NULL = production). Both are aggregated in SQL.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core.tables import JudgeScore
from dashboards.queries import NO_LABEL, TRAFFIC, Step, Window, bucket_expression, fetch_all

SCORES: sa.Table = JudgeScore.__table__  # type: ignore[attr-defined]


def judge_metrics(engine: Engine, window: Window) -> list[str]:
    """The metrics judged in the window."""
    query = (
        sa.select(SCORES.c.metric).where(*window.clauses(SCORES.c.created_at))
        .group_by(SCORES.c.metric).order_by(SCORES.c.metric)
    )
    with engine.connect() as connection:
        return [str(value) for value in connection.execute(query).scalars()]


def scores_over_time(engine: Engine, window: Window, step: Step = "hour") -> list[dict[str, Any]]:
    """Per period and metric: judged items, scored items, mean score and pass rate (unscored left out)."""
    table = SCORES
    period = bucket_expression(engine, table.c.created_at, step).label("period")
    query = (
        sa.select(
            period, table.c.metric, sa.func.count().label("judged"), sa.func.count(table.c.value).label("scored"),
            sa.func.avg(table.c.value).label("mean_score"),
            sa.func.avg(sa.case((table.c.passed.is_(True), 1.0), (table.c.passed.is_(False), 0.0))).label("pass_rate"),
        )
        .where(*window.clauses(table.c.created_at))
        .group_by(period, table.c.metric)
        .order_by(period, table.c.metric)
    )
    return fetch_all(engine, query)


def scores_by_arm(engine: Engine, window: Window, prompt: str | None = None) -> list[dict[str, Any]]:
    """Per release arm and metric: judged items, mean score and pass rate of the requests each arm served."""
    scores, traffic = SCORES, TRAFFIC
    arm = sa.func.coalesce(traffic.c.variant, NO_LABEL)
    where = window.clauses(scores.c.created_at)
    if prompt:
        where.append(traffic.c.prompt_name == prompt)
    query = (
        sa.select(
            arm.label("arm"), scores.c.metric, sa.func.count(scores.c.value).label("scored"),
            sa.func.avg(scores.c.value).label("mean_score"),
            sa.func.avg(sa.case((scores.c.passed.is_(True), 1.0), (scores.c.passed.is_(False), 0.0))).label("pass_rate"),
        )
        .select_from(scores.join(traffic, traffic.c.id == scores.c.traffic_id))
        .where(*where)
        .group_by(arm, scores.c.metric)
        .order_by(scores.c.metric, arm)
    )
    return fetch_all(engine, query)
