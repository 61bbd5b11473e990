"""Reads for the suite-runs page: runs over time, a run against its baseline, and one case's results.

Run summaries are SQL aggregates over `case_results`. A comparison reads only the narrow outcome columns
of the two runs (suite, case, repeat, passed, error, replayed; scores only when a suite has a primary
score) and hands them to `harness.gate.compare_runs`, so the page shows exactly the deltas, intervals,
verdicts, new failures and flaky cases that `tollgate compare` prints.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core.tables import Baseline, CaseResult, Run, RunPublic
from dashboards.queries import fetch_all
from harness.gate import Comparison, GateRule, compare_runs, rules_from_run
from harness.store import CaseRecord, RunData

RUNS: sa.Table = Run.__table__  # type: ignore[attr-defined]
CASES: sa.Table = CaseResult.__table__  # type: ignore[attr-defined]
BASELINES: sa.Table = Baseline.__table__  # type: ignore[attr-defined]


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def list_runs(engine: Engine, *, limit: int = 200, branch: str | None = None) -> list[dict[str, Any]]:
    """The newest runs with their pass rate: results, scored results, passed results, errors per run."""
    runs, cases = RUNS, CASES
    scored = sa.func.sum(sa.case((cases.c.passed.is_not(None), 1), else_=0))
    passed = sa.func.sum(sa.case((cases.c.passed.is_(True), 1), else_=0))
    errors = sa.func.sum(sa.case((cases.c.error.is_not(None), 1), else_=0))
    recent = sa.select(runs.c.id).order_by(runs.c.started_at.desc()).limit(limit)
    if branch:
        recent = recent.where(runs.c.git_branch == branch)
    totals = (
        sa.select(
            cases.c.run_id,
            sa.func.count().label("results"),
            scored.label("scored"),
            passed.label("passed"),
            errors.label("errors"),
        )
        .where(cases.c.run_id.in_(recent.scalar_subquery()))
        .group_by(cases.c.run_id)
        .subquery()
    )
    query = (
        sa.select(
            runs.c.id, runs.c.started_at, runs.c.label, runs.c.git_branch, runs.c.git_commit, runs.c.status,
            runs.c.replay, sa.func.coalesce(totals.c.results, 0).label("results"),
            sa.func.coalesce(totals.c.scored, 0).label("scored"),
            sa.func.coalesce(totals.c.passed, 0).label("passed"),
            sa.func.coalesce(totals.c.errors, 0).label("errors"),
        )
        .select_from(runs.outerjoin(totals, totals.c.run_id == runs.c.id))
        .where(runs.c.id.in_(recent.scalar_subquery()))
        .order_by(runs.c.started_at.desc())
    )
    rows = fetch_all(engine, query)
    for row in rows:
        row["started_at"] = _utc(row["started_at"])
        row["pass_rate"] = row["passed"] / row["scored"] if row["scored"] else None
    return rows


def suite_summary(engine: Engine, run_id: str) -> list[dict[str, Any]]:
    """Per suite of one run: distinct cases, results, pass rate over scored results, errors, cost."""
    cases = CASES
    scored = sa.func.sum(sa.case((cases.c.passed.is_not(None), 1), else_=0))
    passed = sa.func.sum(sa.case((cases.c.passed.is_(True), 1), else_=0))
    query = (
        sa.select(
            cases.c.suite,
            sa.func.count(sa.distinct(cases.c.case_id)).label("cases"),
            sa.func.count().label("results"),
            scored.label("scored"),
            passed.label("passed"),
            sa.func.sum(sa.case((cases.c.error.is_not(None), 1), else_=0)).label("errors"),
            sa.func.avg(cases.c.latency_ms).label("mean_latency_ms"),
            sa.func.sum(cases.c.cost_usd).label("cost_usd"),
        )
        .where(cases.c.run_id == run_id)
        .group_by(cases.c.suite)
        .order_by(cases.c.suite)
    )
    rows = fetch_all(engine, query)
    for row in rows:
        row["pass_rate"] = row["passed"] / row["scored"] if row["scored"] else None
    return rows


def baselines(engine: Engine) -> dict[str, str]:
    """{baseline name: run id}."""
    query = sa.select(BASELINES.c.name, BASELINES.c.run_id).order_by(BASELINES.c.name)
    return {row["name"]: row["run_id"] for row in fetch_all(engine, query)}


def run_meta(engine: Engine, run_id: str) -> RunPublic | None:
    """A run's metadata alone."""
    found = fetch_all(engine, sa.select(RUNS).where(RUNS.c.id == run_id))
    if not found:
        return None
    meta = RunPublic.model_validate(found[0])
    meta.started_at = _utc(meta.started_at) or meta.started_at
    return meta


def outcomes(engine: Engine, meta: RunPublic, *, with_scores: bool = False) -> RunData:
    """A run with only what a comparison needs of each case result."""
    cases = CASES
    columns = [cases.c.suite, cases.c.case_id, cases.c.repeat, cases.c.passed, cases.c.error, cases.c.replayed]
    if with_scores:
        columns.append(cases.c.scores)
    query = sa.select(*columns).where(cases.c.run_id == meta.id).order_by(cases.c.id)
    records = [
        CaseRecord(
            suite=row["suite"], case_id=row["case_id"], repeat=row["repeat"], passed=row["passed"],
            error=row["error"], replayed=bool(row["replayed"]), scores=list(row.get("scores") or []),
        )
        for row in fetch_all(engine, query)
    ]
    return RunData(meta=meta, cases=records)


def compare_with(engine: Engine, run_id: str, baseline_run_id: str, default: GateRule | None = None) -> Comparison:
    """`run_id` against `baseline_run_id` with the run's own gate rules, as `tollgate compare` does."""
    current_meta, baseline_meta = run_meta(engine, run_id), run_meta(engine, baseline_run_id)
    if current_meta is None or baseline_meta is None:
        raise LookupError(f"no run {run_id if current_meta is None else baseline_run_id}")
    primary = _has_primary_score(current_meta.suites)
    current = outcomes(engine, current_meta, with_scores=primary)
    baseline = outcomes(engine, baseline_meta, with_scores=primary)
    default = default or GateRule()
    return compare_runs(current, baseline, rules_from_run(current, default), default)


def _has_primary_score(suites: Mapping[str, Any] | None) -> bool:
    return any(isinstance(summary, Mapping) and summary.get("primary_score") for summary in (suites or {}).values())


def case_ids(engine: Engine, run_id: str, suite: str, *, failing_only: bool = False, limit: int = 500) -> list[str]:
    """Case ids of one suite in one run (those with a failed repeat first when `failing_only`)."""
    cases = CASES
    query = sa.select(cases.c.case_id).where(cases.c.run_id == run_id, cases.c.suite == suite)
    if failing_only:
        query = query.where(sa.or_(cases.c.passed.is_(False), cases.c.error.is_not(None)))
    query = query.group_by(cases.c.case_id).order_by(cases.c.case_id).limit(limit)
    with engine.connect() as connection:
        return [str(value) for value in connection.execute(query).scalars()]


def case_results(engine: Engine, run_id: str, suite: str, case_id: str) -> list[dict[str, Any]]:
    """Every repeat of one case: inputs, output, scores (with judge reasons in their details), error."""
    cases = CASES
    query = (
        sa.select(
            cases.c.repeat, cases.c.inputs, cases.c.output, cases.c.scores, cases.c.passed, cases.c.error,
            cases.c.latency_ms, cases.c.tokens_in, cases.c.tokens_out, cases.c.cost_usd, cases.c.replayed,
        )
        .where(cases.c.run_id == run_id, cases.c.suite == suite, cases.c.case_id == case_id)
        .order_by(cases.c.repeat)
    )
    return fetch_all(engine, query)


def score_reason(score: Mapping[str, Any]) -> str:
    """Why a scorer decided what it did: its error, or the judge's reason kept in its details."""
    if score.get("error"):
        return str(score["error"])
    details = score.get("details") or {}
    for key in ("reason", "reasons", "explanation", "verdict"):
        if details.get(key):
            return str(details[key])
    return ""
