"""Bootstrap intervals, the paired sign-flip test, pass rates and flaky cases."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from harness.stats import (
    bootstrap_mean_ci,
    case_scores,
    flaky_cases,
    paired_compare,
    pass_rates,
    sign_flip_pvalues,
    suite_stats,
)
from harness.store import CaseRecord

ALPHA = 0.05


def test_bootstrap_interval_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(7)
    hits = sum(bootstrap_mean_ci(rng.normal(0.7, 0.15, size=80), seed=i).contains(0.7) for i in range(200))
    assert 0.88 * 200 <= hits <= 0.99 * 200


def test_bootstrap_interval_on_pass_fail_data_contains_the_mean_and_narrows_with_n():
    rng = np.random.default_rng(3)
    small = bootstrap_mean_ci(rng.random(50) < 0.8)
    large = bootstrap_mean_ci(rng.random(5000) < 0.8)
    assert small.contains(0.8) and large.contains(0.8)
    assert large.high - large.low < (small.high - small.low) / 5


def test_bootstrap_is_deterministic_and_handles_degenerate_input():
    data = np.random.default_rng(1).random(30)
    assert bootstrap_mean_ci(data, seed=5) == bootstrap_mean_ci(data, seed=5)
    empty = bootstrap_mean_ci([])
    assert math.isnan(empty.low) and math.isnan(empty.high)
    assert bootstrap_mean_ci([0.4]) == bootstrap_mean_ci([0.4, 0.4, 0.4])
    assert bootstrap_mean_ci([0.4, 0.4]).low == 0.4


def test_exact_sign_flip_matches_enumeration_by_hand():
    deltas = [-0.5, -1.0, 0.25, -0.75, 0.0, -0.25]
    nonzero = [d for d in deltas if d]
    sums = [sum(s * d for s, d in zip(signs, nonzero)) for signs in itertools.product([1, -1], repeat=len(nonzero))]
    observed = sum(nonzero)
    expected = sum(1 for total in sums if total <= observed + 1e-12) / len(sums)
    p_less, p_greater, method = sign_flip_pvalues(deltas)
    assert method == "exact sign-flip"
    assert p_less == pytest.approx(expected)
    assert p_greater == pytest.approx(sum(1 for t in sums if t >= observed - 1e-12) / len(sums))
    assert sign_flip_pvalues([-1.0] * 5)[0] == pytest.approx(1 / 32)


def test_monte_carlo_sign_flip_agrees_with_exact():
    deltas = np.random.default_rng(11).normal(-0.1, 0.3, size=14)
    exact = sign_flip_pvalues(deltas)
    sampled = sign_flip_pvalues(deltas, exact_max=0, n_resamples=20_000)
    assert sampled[2].startswith("sign-flip (20000")
    assert sampled[0] == pytest.approx(exact[0], abs=0.01)
    assert sampled[1] == pytest.approx(exact[1], abs=0.01)


def test_all_ties_give_p_one_without_warnings():
    assert sign_flip_pvalues([0.0] * 40)[:2] == (1.0, 1.0)
    result = paired_compare({"a": 1.0, "b": 0.5}, {"a": 1.0, "b": 0.5})
    assert (result.mean_delta, result.ci_low, result.ci_high, result.p_value) == (0.0, 0.0, 0.0, 1.0)
    empty = paired_compare({"a": 1.0}, {"b": 1.0})
    assert (empty.n_paired, empty.n_current_only, empty.n_baseline_only, empty.p_value) == (0, 1, 1, 1.0)


def simulated_run(rng: np.random.Generator, difficulty: np.ndarray, shift: float = 0.0, repeats: int = 3):
    """Per-case scores: the pass rate over `repeats` of each case, whose pass probability is fixed per case."""
    chance = np.clip(difficulty + shift, 0.0, 1.0)
    passes = rng.random((difficulty.size, repeats)) < chance[:, None]
    return {f"case-{i}": float(rate) for i, rate in enumerate(passes.mean(axis=1))}


def test_paired_test_detects_a_real_twenty_percent_drop_over_100_cases():
    rng = np.random.default_rng(2024)
    difficulty = rng.uniform(0.6, 1.0, size=100)
    baseline = simulated_run(rng, difficulty)
    current = simulated_run(rng, difficulty, shift=-0.2)
    result = paired_compare(current, baseline)
    assert result.n_paired == 100
    assert result.mean_delta == pytest.approx(-0.2, abs=0.1)  # 3 standard errors
    assert result.p_value < 0.01
    assert result.ci_high < 0


def test_pure_noise_is_flagged_at_about_the_nominal_rate():
    rng = np.random.default_rng(99)
    difficulty = rng.uniform(0.5, 1.0, size=100)
    p_values = [
        paired_compare(simulated_run(rng, difficulty), simulated_run(rng, difficulty), seed=i).p_value
        for i in range(200)
    ]
    false_positives = sum(p < ALPHA for p in p_values) / len(p_values)
    print(f"\nfalse-positive rate over 200 noise comparisons: {false_positives:.3f}")
    assert false_positives <= 2 * ALPHA
    assert np.mean(p_values) > 0.35  # p-values of pure noise spread over (0, 1], not piled near 0


def cases(*rows: tuple[str, int, bool | None], scores: dict | None = None) -> list[CaseRecord]:
    scores = scores or {}
    return [
        CaseRecord(suite="qa", case_id=case_id, repeat=repeat, passed=passed,
                   scores=[{"name": "sim", "value": scores[(case_id, repeat)]}] if (case_id, repeat) in scores else [])
        for case_id, repeat, passed in rows
    ]


def test_pass_rates_and_flaky_cases_over_repeats():
    records = cases(("a", 0, True), ("a", 1, True), ("b", 0, True), ("b", 1, False), ("b", 2, True),
                    ("c", 0, False), ("c", 1, None), ("d", 0, None))
    assert pass_rates(records) == {"a": 1.0, "b": pytest.approx(2 / 3), "c": 0.0}
    assert flaky_cases(records) == ["b"]


def test_suite_stats_use_the_primary_score_and_leave_unscored_out():
    records = cases(("a", 0, True), ("a", 1, False), ("b", 0, None),
                    scores={("a", 0): 0.9, ("a", 1): 0.5})
    by_pass = suite_stats("qa", records)
    assert (by_pass.n_cases, by_pass.n_results, by_pass.n_unscored, by_pass.score) == (1, 3, 1, 0.5)
    by_value = suite_stats("qa", records, primary_score="sim")
    assert by_value.case_scores == {"a": pytest.approx(0.7)}
    assert by_value.n_unscored == 1 and by_value.flaky == ("a",)
    assert case_scores(records, "missing") == {}
