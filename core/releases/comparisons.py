"""Per-variant comparisons for the dashboard and the CLI: quality, latency, errors, cost and business outcomes.

They read the traffic log within a time window (its `created_at` index bounds the scan) plus the feedback
rows of the requests found there. Quality is what the log knows about each answer: the share flagged for
review and the mean confidence where a stage recorded one; business outcomes come from `POST /v1/feedback`.
Shadow rows (`variant = "shadow"`) are their own variant and their cost is reported apart: it is not what
users were served.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core.tables.releases import Experiment, Feedback
from core.tables.traffic import TrafficRecord

DEFAULT_WINDOW = timedelta(days=7)
_TRAFFIC = TrafficRecord.__table__  # type: ignore[attr-defined]
_FEEDBACK = Feedback.__table__  # type: ignore[attr-defined]
_IN_CHUNK = 500


@dataclass(frozen=True, slots=True)
class OutcomeSummary:
    """One outcome (`converted`, ...) within one variant: how many reports, their sum and their rate per request."""

    outcome: str
    count: int
    total: float
    rate: float


@dataclass(frozen=True, slots=True)
class VariantSummary:
    """What one variant served within the window. Latencies in ms; costs in USD (None when no price is known)."""

    variant: str
    experiment: str | None
    versions: dict[str, int]
    models: dict[str, int]
    requests: int
    errors: int
    error_rate: float
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    ttft_p50_ms: float | None
    cost_usd: float | None
    cost_unknown: int
    cost_per_request_usd: float | None
    tokens_in: int
    tokens_out: int
    flagged: int
    flagged_rate: float
    mean_confidence: float | None
    outcomes: dict[str, OutcomeSummary] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OutcomeComparison:
    """One variant against the control for one outcome: the rate per request, its difference and a p-value.

    `p_value` is the two-sided two-proportion z-test of "requests with the outcome" (None for the control or
    when either side has no requests).
    """

    outcome: str
    variant: str
    requests: int
    with_outcome: int
    rate: float
    control: str
    delta: float | None
    p_value: float | None


@dataclass(frozen=True, slots=True)
class ShadowPair:
    """A served answer and the shadow answer to the same request."""

    request_id: str
    created_at: datetime
    prompt_name: str | None
    served_version: str | None
    served_model: str | None
    served_status: int | None
    served_output: str | None
    served_latency_ms: float | None
    served_cost_usd: float | None
    shadow_version: str | None
    shadow_model: str | None
    shadow_status: int
    shadow_output: str | None
    shadow_latency_ms: float
    shadow_cost_usd: float | None


def compare_variants(
    engine: Engine,
    *,
    prompt_name: str | None = None,
    experiment: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[VariantSummary]:
    """Every variant (production, canary, shadow, A/B arms) of one prompt or experiment, side by side.

    The window defaults to the experiment's run time, else the last 7 days. Rows without a variant (traffic not
    under release control) are left out.
    """
    since, until = _window(engine, experiment, since, until)
    query = sa.select(
        _TRAFFIC.c.request_id, _TRAFFIC.c.variant, _TRAFFIC.c.experiment, _TRAFFIC.c.prompt_version,
        _TRAFFIC.c.served_model, _TRAFFIC.c.status, _TRAFFIC.c.error_class, _TRAFFIC.c.latency_ms,
        _TRAFFIC.c.ttft_ms, _TRAFFIC.c.cost_usd, _TRAFFIC.c.tokens_in, _TRAFFIC.c.tokens_out,
        _TRAFFIC.c.review_reason, _TRAFFIC.c.confidence,
    ).where(_TRAFFIC.c.created_at >= since, _TRAFFIC.c.created_at < until, _TRAFFIC.c.variant.is_not(None))
    if prompt_name is not None:
        query = query.where(_TRAFFIC.c.prompt_name == prompt_name)
    if experiment is not None:
        query = query.where(sa.or_(_TRAFFIC.c.experiment == experiment, _TRAFFIC.c.variant == "shadow"))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
        arm_of = {row.request_id: row.variant for row in rows if row.variant != "shadow"}
        feedback = _feedback_for(conn, arm_of, experiment)
    groups: dict[tuple[str, str | None], list[Any]] = defaultdict(list)
    for row in rows:
        groups[(row.variant, row.experiment)].append(row)
    return [_summarise(variant, exp, group, feedback.get(variant, {}))
            for (variant, exp), group in sorted(groups.items(), key=lambda item: (item[0][0], item[0][1] or ""))]


def experiment_outcomes(
    engine: Engine, experiment: str, outcome: str, *, control: str | None = None
) -> list[OutcomeComparison]:
    """Each arm's share of requests with `outcome`, against the control arm (the first arm unless named)."""
    with engine.connect() as conn:
        arms = conn.execute(sa.select(Experiment.arms).where(Experiment.name == experiment)).scalar()  # type: ignore[call-overload]
    if arms is None:
        from core.releases.errors import ReleaseError

        raise ReleaseError(f"no experiment named {experiment!r}")
    control = control or str(arms[0]["name"])
    by_variant = {s.variant: s for s in compare_variants(engine, experiment=experiment) if s.variant != "shadow"}
    base = by_variant.get(control)
    results = []
    for name in [str(arm["name"]) for arm in arms]:
        summary = by_variant.get(name)
        requests = summary.requests if summary else 0
        hits = min(requests, summary.outcomes[outcome].count) if summary and outcome in summary.outcomes else 0
        rate = hits / requests if requests else 0.0
        delta = p_value = None
        if name != control and base is not None and base.requests and requests:
            base_hits = min(base.requests, base.outcomes[outcome].count) if outcome in base.outcomes else 0
            delta = rate - base_hits / base.requests
            p_value = _two_proportion_p(hits, requests, base_hits, base.requests)
        results.append(OutcomeComparison(outcome, name, requests, hits, rate, control, delta, p_value))
    return results


def shadow_pairs(
    engine: Engine, *, prompt_name: str | None = None, since: datetime | None = None, limit: int = 50
) -> list[ShadowPair]:
    """The latest shadow answers with the answers actually served for the same requests, newest first."""
    since = since or datetime.now(UTC) - DEFAULT_WINDOW
    query = (
        sa.select(_TRAFFIC).where(_TRAFFIC.c.created_at >= since, _TRAFFIC.c.shadow_of.is_not(None))
        .order_by(_TRAFFIC.c.created_at.desc()).limit(limit)
    )
    if prompt_name is not None:
        query = query.where(_TRAFFIC.c.prompt_name == prompt_name)
    with engine.connect() as conn:
        shadows = conn.execute(query).all()
        ids = [row.shadow_of for row in shadows]
        served = {row.request_id: row for chunk in _chunks(ids)
                  for row in conn.execute(sa.select(_TRAFFIC).where(_TRAFFIC.c.request_id.in_(chunk),
                                                                    _TRAFFIC.c.shadow_of.is_(None)))}
    pairs = []
    for row in shadows:
        primary = served.get(row.shadow_of)
        pairs.append(ShadowPair(
            request_id=row.shadow_of, created_at=row.created_at, prompt_name=row.prompt_name,
            served_version=primary.prompt_version if primary else None,
            served_model=primary.served_model if primary else None,
            served_status=primary.status if primary else None,
            served_output=primary.response_body if primary else None,
            served_latency_ms=primary.latency_ms if primary else None,
            served_cost_usd=primary.cost_usd if primary else None,
            shadow_version=row.prompt_version, shadow_model=row.served_model, shadow_status=row.status,
            shadow_output=row.response_body, shadow_latency_ms=row.latency_ms, shadow_cost_usd=row.cost_usd,
        ))
    return pairs


def _window(engine: Engine, experiment: str | None, since: datetime | None,
            until: datetime | None) -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    if experiment is not None and since is None:
        with engine.connect() as conn:
            row = conn.execute(sa.select(Experiment.started_at, Experiment.stopped_at)  # type: ignore[call-overload]
                               .where(Experiment.name == experiment)).first()
        if row is not None:
            since = _utc(row.started_at) - timedelta(seconds=1)
            until = until or (_utc(row.stopped_at) + timedelta(minutes=5) if row.stopped_at else None)
    return since or now - DEFAULT_WINDOW, until or now + timedelta(minutes=1)


def _feedback_for(conn: sa.Connection, arm_of: dict[str, str], experiment: str | None
                  ) -> dict[str, dict[str, list[float]]]:
    """`{variant: {outcome: [values]}}` for the requests in `arm_of`, plus feedback naming the experiment."""
    found: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    seen: set[int] = set()
    for chunk in _chunks(list(arm_of)):
        for row in conn.execute(sa.select(_FEEDBACK).where(_FEEDBACK.c.request_id.in_(chunk))):
            seen.add(row.id)
            found[row.variant or arm_of[row.request_id]][row.outcome].append(row.value)
    if experiment is not None:
        query = sa.select(_FEEDBACK).where(_FEEDBACK.c.experiment == experiment, _FEEDBACK.c.variant.is_not(None))
        for row in conn.execute(query):
            if row.id not in seen:
                found[row.variant][row.outcome].append(row.value)
    return found


def _summarise(variant: str, experiment: str | None, rows: list[Any],
               feedback: dict[str, list[float]]) -> VariantSummary:
    requests = len(rows)
    errors = sum(1 for row in rows if row.error_class is not None or row.status >= 500)
    latencies = sorted(row.latency_ms for row in rows if row.latency_ms is not None)
    ttfts = sorted(row.ttft_ms for row in rows if row.ttft_ms is not None)
    costs = [row.cost_usd for row in rows if row.cost_usd is not None]
    confidences = [row.confidence for row in rows if row.confidence is not None]
    flagged = sum(1 for row in rows if row.review_reason)
    cost = sum(costs) if costs else None
    outcomes = {name: OutcomeSummary(name, len(values), sum(values), len(values) / requests if requests else 0.0)
                for name, values in sorted(feedback.items())}
    return VariantSummary(
        variant=variant, experiment=experiment,
        versions=dict(Counter(row.prompt_version for row in rows if row.prompt_version)),
        models=dict(Counter(row.served_model for row in rows if row.served_model)),
        requests=requests, errors=errors, error_rate=errors / requests if requests else 0.0,
        latency_p50_ms=_percentile(latencies, 0.50), latency_p95_ms=_percentile(latencies, 0.95),
        ttft_p50_ms=_percentile(ttfts, 0.50), cost_usd=cost, cost_unknown=requests - len(costs),
        cost_per_request_usd=cost / len(costs) if cost is not None else None,
        tokens_in=sum(row.tokens_in or 0 for row in rows), tokens_out=sum(row.tokens_out or 0 for row in rows),
        flagged=flagged, flagged_rate=flagged / requests if requests else 0.0,
        mean_confidence=sum(confidences) / len(confidences) if confidences else None, outcomes=outcomes,
    )


def _percentile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _two_proportion_p(hits_a: int, n_a: int, hits_b: int, n_b: int) -> float | None:
    pooled = (hits_a + hits_b) / (n_a + n_b)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    if spread == 0:
        return 1.0 if hits_a / n_a == hits_b / n_b else 0.0
    z = abs(hits_a / n_a - hits_b / n_b) / spread
    return math.erfc(z / math.sqrt(2))


def _chunks(items: list[str]) -> list[list[str]]:
    return [items[i:i + _IN_CHUNK] for i in range(0, len(items), _IN_CHUNK)]


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
