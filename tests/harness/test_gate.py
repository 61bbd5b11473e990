"""Gate rules and verdicts: regressions need a large AND significant drop; noise and improvements pass."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest

from core.tables import RunPublic
from harness.errors import HarnessError
from harness.gate import GateRule, compare_runs, format_table, rules_from_run, to_json
from harness.stats import paired_compare, suite_stats
from harness.store import CaseRecord, RunData


def make_run(
    outcomes: dict[str, dict[str, list[bool | None]]],
    *,
    run_id: str = "c" * 32,
    label: str | None = None,
    replayed: bool = False,
    suites: dict | None = None,
) -> RunData:
    """A run from {suite: {case_id: [passed per repeat]}}."""
    records = [
        CaseRecord(suite=suite, case_id=case_id, repeat=repeat, passed=passed, replayed=replayed)
        for suite, by_case in outcomes.items()
        for case_id, repeats in by_case.items()
        for repeat, passed in enumerate(repeats)
    ]
    meta = RunPublic(id=run_id, harness_version="0.1.0", label=label, suites=suites or {})
    return RunData(meta=meta, cases=records)


def suite_of(passes: list[bool], prefix: str = "c") -> dict[str, list[bool | None]]:
    return {f"{prefix}{i}": [passed] for i, passed in enumerate(passes)}


def baseline_run(suite: dict[str, list[bool | None]], **kwargs) -> RunData:
    return make_run({"qa": suite}, run_id="b" * 32, label="main", **kwargs)


def verdict(current: dict, baseline: dict, rule: GateRule | None = None, **kwargs) -> str:
    comparison = compare_runs(make_run({"qa": current}), baseline_run(baseline), default=rule, **kwargs)
    return comparison.rows[0].verdict


def test_rule_parses_from_text_and_validates():
    rule = GateRule.parse(" max_drop=0.05, alpha=0.01 ")
    assert rule == GateRule(max_drop=0.05, alpha=0.01, min_cases=5)
    assert GateRule.parse(str(rule)) == rule
    assert GateRule.parse("min_cases=20", base=rule) == GateRule(0.05, 0.01, 20)
    with pytest.raises(HarnessError, match="expected key=value"):
        GateRule.parse("max_drop=0.05,tolerance=3")
    with pytest.raises(HarnessError, match="must be a number"):
        GateRule.parse("alpha=often")
    with pytest.raises(HarnessError, match="alpha must be within"):
        GateRule.parse("alpha=1.5")


def test_fails_needs_both_a_large_and_a_significant_drop():
    rule = GateRule(max_drop=0.02, alpha=0.05)
    # 30 of 2000 cases newly fail: a significant drop of 0.015, smaller than max_drop.
    now = suite_stats("qa", make_run({"qa": suite_of([i >= 30 for i in range(2000)])}).cases)
    before = suite_stats("qa", make_run({"qa": suite_of([True] * 2000)}).cases)
    small = paired_compare(now.case_scores, before.case_scores)
    assert small.p_value < 0.001 and not rule.fails(now, before, small)
    # 6 cases fail and 4 are fixed out of 10: a large drop (0.2) that is not significant.
    now = suite_stats("qa", make_run({"qa": suite_of([False] * 6 + [True] * 4)}).cases)
    before = suite_stats("qa", make_run({"qa": suite_of([True] * 6 + [False] * 4)}).cases)
    large = paired_compare(now.case_scores, before.case_scores)
    assert large.mean_delta == pytest.approx(-0.2) and large.p_value > 0.3
    assert not rule.fails(now, before, large)
    # Both: 20 of 100 cases newly fail.
    now = suite_stats("qa", make_run({"qa": suite_of([i >= 20 for i in range(100)])}).cases)
    before = suite_stats("qa", make_run({"qa": suite_of([True] * 100)}).cases)
    both = paired_compare(now.case_scores, before.case_scores)
    assert rule.fails(now, before, both)


def test_each_verdict():
    same = suite_of([True] * 40 + [False] * 10)
    assert verdict(same, same) == "pass"
    assert verdict(suite_of([True] * 50), same) == "improved"
    assert verdict(suite_of([True] * 39 + [False] * 11), same) == "noise"  # fell 0.02: within max_drop
    assert verdict(suite_of([True] * 30 + [False] * 20), same) == "regression"
    assert verdict(suite_of([True] * 40 + [False] * 10, prefix="new"), same) == "no-baseline"


def test_drop_on_too_few_cases_is_noise_with_the_reason():
    comparison = compare_runs(make_run({"qa": suite_of([False] * 4)}), baseline_run(suite_of([True] * 4)))
    row = comparison.rows[0]
    assert row.verdict == "noise" and row.delta == -1.0
    assert any("< min_cases 5" in reason for reason in row.reasons)
    assert row.new_failures == ("c0", "c1", "c2", "c3")
    # five unanimous drops reach p = 1/32 < 0.05; four cannot (p = 1/16) whatever min_cases says
    assert verdict(suite_of([False] * 5), suite_of([True] * 5)) == "regression"
    assert verdict(suite_of([False] * 5), suite_of([True] * 5), GateRule(min_cases=10)) == "noise"
    assert verdict(suite_of([False] * 4), suite_of([True] * 4), GateRule(min_cases=1)) == "noise"


def test_replayed_suite_is_marked_and_fails_only_under_the_fail_policy():
    live = suite_of([True] * 40 + [False] * 10)
    current = make_run({"qa": live}, replayed=True)
    warned = compare_runs(current, baseline_run(live))
    assert warned.rows[0].verdict == "replayed" and warned.rows[0].replayed
    assert not warned.failed and warned.exit_code == 0 and len(warned.replayed_suites) == 1
    assert "does not fail the gate" in format_table(warned)
    strict = compare_runs(current, baseline_run(live), replay_policy="fail")
    assert strict.failed and strict.exit_code == 1
    # replay against a replayed baseline is like for like; a real drop is a regression either way
    assert compare_runs(current, baseline_run(live, replayed=True)).rows[0].verdict == "pass"
    worse = make_run({"qa": suite_of([True] * 25 + [False] * 25)}, replayed=True)
    assert compare_runs(worse, baseline_run(live)).rows[0].verdict == "regression"
    with pytest.raises(HarnessError, match="replay policy"):
        compare_runs(current, baseline_run(live), replay_policy="ignore")  # type: ignore[arg-type]


def test_comparison_rows_carry_flaky_and_newly_failing_cases_and_missing_suites():
    current = make_run({
        "qa": {"a": [True, False, True], "b": [False, False, False], "c": [True, True, True]},
        "extra": {"x": [True]},
    })
    baseline = make_run({
        "qa": {"a": [True, True, True], "b": [True, True, True], "c": [True, True, True]},
        "gone": {"y": [True]},
    }, run_id="b" * 32)
    comparison = compare_runs(current, baseline)
    rows = {row.suite: row for row in comparison.rows}
    assert rows["qa"].flaky == ("a",) and rows["qa"].new_failures == ("b",)
    assert rows["qa"].score == pytest.approx((2 / 3 + 0 + 1) / 3)
    assert rows["extra"].verdict == "no-baseline" and math.isnan(rows["extra"].baseline_score)
    assert comparison.missing_suites == ("gone",)


def test_per_suite_rules_from_the_run_summary_override_the_default():
    loose = {"qa": {"gate": "max_drop=0.5"}, "strict": {"max_drop": 0.0, "alpha": 0.1}, "plain": {"cases": 3}}
    current = make_run({"qa": suite_of([True] * 30 + [False] * 20)}, suites=loose)
    rules = rules_from_run(current, GateRule(alpha=0.01))
    assert rules == {"qa": GateRule(max_drop=0.5, alpha=0.01), "strict": GateRule(max_drop=0.0, alpha=0.1)}
    baseline = baseline_run(suite_of([True] * 40 + [False] * 10))
    assert compare_runs(current, baseline, rules).rows[0].verdict == "noise"
    assert compare_runs(current, baseline).rows[0].verdict == "regression"


def test_primary_score_replaces_the_pass_rate():
    def scored(values: list[float], run_id: str) -> RunData:
        records = [CaseRecord(suite="qa", case_id=f"c{i}", passed=True,
                              scores=[{"name": "similarity", "value": v}]) for i, v in enumerate(values)]
        meta = RunPublic(id=run_id, harness_version="0.1.0", suites={"qa": {"primary_score": "similarity"}})
        return RunData(meta=meta, cases=records)

    comparison = compare_runs(scored([0.6] * 30, "c" * 32), scored([0.9] * 30, "b" * 32))
    row = comparison.rows[0]
    assert row.delta == pytest.approx(-0.3) and row.verdict == "regression"


def test_noise_almost_never_becomes_a_regression():
    rng = np.random.default_rng(5)
    chance = rng.uniform(0.5, 1.0, size=60)

    def noisy_run(run_id: str) -> RunData:
        passes = rng.random((60, 3)) < chance[:, None]
        return make_run({"qa": {f"c{i}": list(map(bool, row)) for i, row in enumerate(passes)}}, run_id=run_id)

    failed = sum(compare_runs(noisy_run("c" * 32), noisy_run("b" * 32), seed=i).failed for i in range(200))
    assert failed <= 2 * 0.05 * 200


def test_table_and_json_output():
    same = suite_of([True] * 40 + [False] * 10)
    current = make_run({"qa": suite_of([True] * 30 + [False] * 20), "new_suite": same}, label="pr-7")
    comparison = compare_runs(current, baseline_run(same))
    table = format_table(comparison)
    lines = table.splitlines()
    assert lines[0] == f"current {'c' * 8} (pr-7) vs baseline {'b' * 8} (main)"
    assert lines[1].split() == ["suite", "cases", "score", "baseline", "delta", "95%", "CI", "p", "verdict"]
    by_suite = {line.split()[0]: line for line in lines[2:4]}
    assert by_suite["qa"].split()[:5] == ["qa", "50", "0.600", "0.800", "-0.200"]
    assert by_suite["qa"].endswith("regression")
    assert by_suite["new_suite"].split()[2:5] == ["0.800", "-", "-"]
    for line in lines[2:4]:  # the verdict column is aligned
        assert line.index(line.split()[-1]) == lines[1].index("verdict")
    assert any(line.startswith("  qa: regression: score fell 0.200") for line in lines)

    data = orjson.loads(orjson.dumps(to_json(comparison)))
    assert data["failed"] is True and data["exit_code"] == 1
    rows = {row["suite"]: row for row in data["suites"]}
    assert rows["qa"]["verdict"] == "regression" and rows["qa"]["rule"] == "max_drop=0.02,alpha=0.05,min_cases=5"
    assert rows["new_suite"]["baseline_score"] is None and rows["new_suite"]["p_value"] is None
