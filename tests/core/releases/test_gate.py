"""The promotion gate reads the version's latest suite run: verdicts, floors, budgets and exit status."""

from __future__ import annotations

from core.config.releases import GatePolicySettings
from core.releases import evaluate_gate


def failed(decision) -> set[str]:
    return {check.name for check in decision.checks if not check.passed}


def test_a_version_without_a_run_does_not_pass(engine, add_run):
    add_run({"greet": "aaaaaaaaaaaa"})
    decision = evaluate_gate(engine, "greet", version="bbbbbbbbbbbb")
    assert not decision.passed
    assert failed(decision) == {"run"} and decision.run_id is None
    assert "no finished suite run used greet version bbbbbbbbbbbb" in decision.summary()


def test_a_clean_run_passes_and_names_the_run(engine, add_run):
    run_id = add_run({"greet": "aaaaaaaaaaaa"}, verdict="pass")
    decision = evaluate_gate(engine, "greet", version="aaaaaaaaaaaa")
    assert decision.passed and decision.run_id == run_id
    assert decision.summary() == f"passed (run {run_id[:8]})"
    assert decision.to_dict()["passed"] is True


def test_the_latest_run_decides_not_an_older_passing_one(engine, add_run):
    add_run({"greet": "aaaaaaaaaaaa"}, verdict="pass")
    latest = add_run({"greet": "aaaaaaaaaaaa"}, verdict="regression", exit_status=1)
    decision = evaluate_gate(engine, "greet", version="aaaaaaaaaaaa")
    assert decision.run_id == latest
    assert failed(decision) == {"exit_status", "greeting.regression"}


def test_unfinished_runs_are_ignored(engine, add_run):
    passing = add_run({"greet": "aaaaaaaaaaaa"})
    add_run({"greet": "aaaaaaaaaaaa"}, status="running", exit_status=None)
    assert evaluate_gate(engine, "greet", version="aaaaaaaaaaaa").run_id == passing


def test_policy_floors_and_budgets(engine, add_run):
    add_run({"greet": "aaaaaaaaaaaa"}, score=0.7, cost_usd=0.5, cost_unknown=0, latency_p95_ms=900.0)
    strict = GatePolicySettings(min_score=0.8, max_cost_per_case_usd=0.01, max_latency_p95_ms=500,
                                require_comparison=True)
    decision = evaluate_gate(engine, "greet", version="aaaaaaaaaaaa", policy=strict)
    assert failed(decision) == {"greeting.min_score", "greeting.cost", "greeting.latency", "greeting.regression"}
    loose = GatePolicySettings(min_score=0.6, max_cost_per_case_usd=0.06, max_latency_p95_ms=1000)
    assert evaluate_gate(engine, "greet", version="aaaaaaaaaaaa", policy=loose).passed


def test_unknown_cost_fails_a_cost_budget(engine, add_run):
    add_run({"greet": "aaaaaaaaaaaa"})
    decision = evaluate_gate(engine, "greet", version="aaaaaaaaaaaa",
                             policy=GatePolicySettings(max_cost_per_case_usd=1.0))
    assert failed(decision) == {"greeting.cost"}


def test_the_suites_own_min_score_counts(engine, add_run):
    add_run({"greet": "aaaaaaaaaaaa"}, score=0.5, below_min_score=True, gate={"min_score": 0.8})
    assert failed(evaluate_gate(engine, "greet", version="aaaaaaaaaaaa")) == {"greeting.min_score"}


def test_only_suites_that_used_the_prompt_are_checked(engine, add_run):
    suites = {"greeting": {"prompt": "greet", "score": 0.9}, "other": {"prompt": "other", "verdict": "regression"}}
    add_run({"greet": "aaaaaaaaaaaa", "other": "cccccccccccc"}, suites=suites)
    assert evaluate_gate(engine, "greet", version="aaaaaaaaaaaa").passed
    assert not evaluate_gate(engine, "other", version="cccccccccccc").passed


def test_model_subjects_match_runs_by_model(engine, add_run):
    add_run({"greet": "aaaaaaaaaaaa"}, models={"small-model": 10})
    assert evaluate_gate(engine, "assistant", version=None, model="small-model").passed
    assert not evaluate_gate(engine, "assistant", version=None, model="large-model").passed
