"""Experiments, feedback and the per-variant comparisons the dashboard and CLI read."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session

from core.releases import (
    ArmSpec,
    ReleaseError,
    compare_variants,
    experiment_outcomes,
    list_experiments,
    load_snapshot,
    record_feedback,
    shadow_pairs,
    start_experiment,
    stop_experiment,
)
from core.tables import TrafficRecord


def traffic(engine, **fields) -> str:
    request_id = fields.pop("request_id", uuid.uuid4().hex)
    values = {"endpoint": "chat.completions", "status": 200, "latency_ms": 100.0, "prompt_name": "greet", **fields}
    row = TrafficRecord(id=uuid.uuid4().hex, request_id=request_id, **values)
    with Session(engine) as session:
        session.add(row)
        session.commit()
    return request_id


def test_an_experiment_is_loaded_into_the_snapshot_and_can_be_stopped(engine, prompts):
    version = prompts.write()
    info = start_experiment(engine, "tone", "greet", [ArmSpec("control"), ArmSpec("big", model="big-model", weight=2)],
                            registry=prompts.registry, description="bigger model")
    assert [(a.name, a.version, a.model) for a in info.arms] == [("control", version, None), ("big", version, "big-model")]
    spec = load_snapshot(engine).subjects["greet"].experiment
    assert spec is not None and spec.name == "tone" and spec.total_weight == 3.0
    with pytest.raises(ReleaseError, match="already runs"):
        start_experiment(engine, "tone2", "greet", [ArmSpec("a"), ArmSpec("b")], registry=prompts.registry)
    stop_experiment(engine, "tone")
    assert load_snapshot(engine).subjects.get("greet") is None
    assert [e.status for e in list_experiments(engine)] == ["stopped"]


def test_bad_arms_are_refused(engine, prompts):
    prompts.write()
    with pytest.raises(ReleaseError, match="at least two"):
        start_experiment(engine, "x", "greet", [ArmSpec("a")], registry=prompts.registry)
    with pytest.raises(ReleaseError, match="not a label name"):
        start_experiment(engine, "x", "greet", [ArmSpec("canary"), ArmSpec("b")], registry=prompts.registry)


def test_variants_compare_quality_latency_errors_cost_and_outcomes(engine, prompts):
    prompts.write()
    start_experiment(engine, "tone", "greet", [ArmSpec("control"), ArmSpec("friendly")], registry=prompts.registry)
    control = [traffic(engine, variant="control", experiment="tone", latency_ms=100.0 + i, cost_usd=0.001,
                       tokens_in=10, tokens_out=5) for i in range(10)]
    friendly = [traffic(engine, variant="friendly", experiment="tone", latency_ms=300.0, cost_usd=0.002,
                        review_reason="guard: rude" if i < 2 else None, confidence=0.5) for i in range(10)]
    friendly.append(traffic(engine, variant="friendly", experiment="tone", status=502, error_class="upstream_error"))
    traffic(engine, variant="shadow", shadow_of=control[0], cost_usd=0.01)
    for request_id in control[:2] + friendly[:8]:
        record_feedback(engine, request_id, "converted")
    record_feedback(engine, friendly[0], "revenue", 25.0)
    summaries = {s.variant: s for s in compare_variants(engine, experiment="tone")}
    assert set(summaries) == {"control", "friendly", "shadow"}
    c, f = summaries["control"], summaries["friendly"]
    assert (c.requests, c.errors, f.requests, f.errors) == (10, 0, 11, 1)
    assert c.latency_p50_ms == 105.0 and f.latency_p95_ms == 300.0
    assert c.cost_usd == pytest.approx(0.01) and f.cost_unknown == 1 and c.tokens_in == 100
    assert (f.flagged, f.mean_confidence) == (2, 0.5)
    assert c.outcomes["converted"].count == 2 and f.outcomes["converted"].count == 8
    assert f.outcomes["revenue"].total == 25.0
    assert summaries["shadow"].cost_usd == pytest.approx(0.01)
    rows = {row.variant: row for row in experiment_outcomes(engine, "tone", "converted")}
    assert rows["control"].delta is None and rows["control"].rate == pytest.approx(0.2)
    assert rows["friendly"].delta == pytest.approx(8 / 11 - 0.2)
    assert rows["friendly"].p_value is not None and rows["friendly"].p_value < 0.05


def test_comparisons_by_prompt_ignore_traffic_outside_the_window(engine):
    traffic(engine, variant="production", created_at=datetime.now(UTC) - timedelta(days=30))
    traffic(engine, variant="production")
    traffic(engine, variant="canary")
    traffic(engine)  # not under release control
    counts = {s.variant: s.requests for s in compare_variants(engine, prompt_name="greet")}
    assert counts == {"canary": 1, "production": 1}


def test_shadow_pairs_join_the_served_answer(engine):
    served = traffic(engine, variant="production", response_body="served answer", prompt_version="aaaa")
    traffic(engine, variant="shadow", shadow_of=served, response_body="shadow answer", prompt_version="bbbb",
            status=500, error_class="upstream_error")
    [pair] = shadow_pairs(engine, prompt_name="greet")
    assert (pair.request_id, pair.served_output, pair.shadow_output) == (served, "served answer", "shadow answer")
    assert (pair.served_version, pair.shadow_version, pair.shadow_status) == ("aaaa", "bbbb", 500)


def test_feedback_is_validated(engine):
    with pytest.raises(ReleaseError, match="request id"):
        record_feedback(engine, "", "converted")
    with pytest.raises(ReleaseError, match="outcome"):
        record_feedback(engine, "abc", "")
    assert record_feedback(engine, "abc", "thumbs_up", variant="control", experiment="tone") > 0
