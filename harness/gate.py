"""The verdict: compare a run with its baseline suite by suite and decide what must block a merge.

A suite is a `regression` only when BOTH hold: its mean per-case score fell by more than `max_drop` AND the
paired sign-flip test says the fall is significant (`p < alpha`) on at least `min_cases` paired cases.
A smaller or non-significant fall is `noise`; a significant rise beyond `max_drop` is `improved`. Neither fails.

Replay policy: a suite whose current case results were (even partly) served from recordings, compared with a
baseline recorded live, is reported as `replayed` instead of `pass`/`noise`/`improved`: the model was not
called, so the gate has not checked it. By default (`warn`) this is shown in the table and in
`Comparison.replayed_suites` but does not fail the comparison, because replay is an explicit choice (offline
CI, cost) and is not a regression; with `replay_policy="fail"` any `replayed` suite fails it. A significant
drop is still a `regression` when replayed: scores got worse whatever produced the outputs. Replay against a
baseline that was itself replayed is a like-for-like re-scoring and gets the ordinary verdicts.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from harness.errors import HarnessError
from harness.judges.gate import judge_changes
from harness.stats import DEFAULT_SEED, PairedResult, SuiteStats, paired_compare, pass_rates, suite_stats
from harness.store import CaseRecord, RunData

Verdict = Literal["pass", "improved", "noise", "regression", "no-baseline", "replayed"]
ReplayPolicy = Literal["warn", "fail"]
REPLAY_POLICIES: tuple[ReplayPolicy, ...] = ("warn", "fail")
_EPS = 1e-12  # a drop of exactly max_drop is within tolerance despite float rounding


@dataclass(frozen=True, slots=True)
class GateRule:
    """When a suite's drop counts as a regression. Parse from text with `GateRule.parse("max_drop=0.05")`."""

    max_drop: float = 0.02
    alpha: float = 0.05
    min_cases: int = 5  # with fewer paired cases even a unanimous drop is p >= 1/32 and not trusted

    def __post_init__(self) -> None:
        if not 0.0 <= self.max_drop <= 1.0:
            raise HarnessError(f"gate rule max_drop must be within 0..1, got {self.max_drop}")
        if not 0.0 < self.alpha < 1.0:
            raise HarnessError(f"gate rule alpha must be within (0, 1), got {self.alpha}")
        if self.min_cases < 1:
            raise HarnessError(f"gate rule min_cases must be at least 1, got {self.min_cases}")

    @classmethod
    def parse(cls, text: str, base: GateRule | None = None) -> GateRule:
        """`"max_drop=0.02,alpha=0.05,min_cases=5"`; keys left out keep the values of `base`."""
        values: dict[str, Any] = {}
        for part in filter(None, (piece.strip() for piece in text.split(","))):
            key, sep, raw = (s.strip() for s in part.partition("="))
            if not sep or key not in _RULE_KEYS:
                known = ", ".join(_RULE_KEYS)
                raise HarnessError(f"invalid gate rule {text!r}: expected key=value with key in {known}")
            values[key] = raw
        return (base or cls()).with_overrides(values)

    def with_overrides(self, values: Mapping[str, Any]) -> GateRule:
        """A copy with some fields replaced; values may be strings. Unknown keys are ignored."""
        changes: dict[str, Any] = {}
        for key, convert in _RULE_KEYS.items():
            if values.get(key) is not None:
                try:
                    changes[key] = convert(values[key])
                except (TypeError, ValueError) as exc:
                    raise HarnessError(f"gate rule {key} must be a number, got {values[key]!r}") from exc
        return dataclasses.replace(self, **changes)

    def fails(self, current: SuiteStats, baseline: SuiteStats, paired: PairedResult) -> bool:
        """True when the paired comparison shows a drop both larger than `max_drop` and significant."""
        return (
            paired.n_paired >= self.min_cases
            and paired.mean_delta < -self.max_drop - _EPS
            and paired.p_value < self.alpha
        )

    def __str__(self) -> str:
        return f"max_drop={self.max_drop:g},alpha={self.alpha:g},min_cases={self.min_cases}"


_RULE_KEYS: dict[str, Any] = {"max_drop": float, "alpha": float, "min_cases": int}


@dataclass(frozen=True, slots=True)
class SuiteComparison:
    """One row of the comparison. `score`/`baseline_score` are over each run's own cases; `delta`, the CI and
    `p_value` are over the cases both runs scored (paired)."""

    suite: str
    cases: int
    n_paired: int
    score: float
    baseline_score: float
    delta: float
    ci_low: float
    ci_high: float
    p_value: float  # one-sided: current < baseline (the gate's test)
    p_value_improved: float  # one-sided: current > baseline
    verdict: Verdict
    reasons: tuple[str, ...]
    flaky: tuple[str, ...]
    new_failures: tuple[str, ...]
    rule: GateRule
    replayed: bool
    judge_changes: tuple[str, ...] = ()  # judged scores whose judge or rubric differs from the baseline's


@dataclass(frozen=True, slots=True)
class Comparison:
    """Every suite of the current run against the baseline, and what that means for the exit status."""

    current: str
    baseline: str
    rows: tuple[SuiteComparison, ...]
    missing_suites: tuple[str, ...]  # in the baseline but not run now (a subset was selected): informational
    replay_policy: ReplayPolicy = "warn"

    @property
    def regressions(self) -> list[SuiteComparison]:
        return [row for row in self.rows if row.verdict == "regression"]

    @property
    def replayed_suites(self) -> list[SuiteComparison]:
        return [row for row in self.rows if row.verdict == "replayed"]

    @property
    def failed(self) -> bool:
        """A regression in any suite, or a replayed suite under `replay_policy="fail"`."""
        return bool(self.regressions) or (self.replay_policy == "fail" and bool(self.replayed_suites))

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


def compare_runs(
    current: RunData,
    baseline: RunData,
    rules: Mapping[str, GateRule] | None = None,
    default: GateRule | None = None,
    *,
    replay_policy: ReplayPolicy = "warn",
    seed: int = DEFAULT_SEED,
) -> Comparison:
    """Compare `current` with `baseline` suite by suite, cases matched by (suite, case_id).

    `rules` holds per-suite rules (see `rules_from_run`); other suites use `default`. A suite's primary score
    (`suites[name]["primary_score"]` in the current run) replaces the pass rate as the case score.
    """
    if replay_policy not in REPLAY_POLICIES:
        raise HarnessError(f"replay policy must be one of {', '.join(REPLAY_POLICIES)}, got {replay_policy!r}")
    rules = rules or {}
    default = default or GateRule()
    now, before = _by_suite(current.cases), _by_suite(baseline.cases)
    rows = []
    for suite in sorted(now):
        primary = _suite_setting(current, suite, "primary_score")
        rows.append(
            _compare_suite(
                suite, now[suite], before.get(suite), rules.get(suite, default), primary=primary, seed=seed
            )
        )
    return Comparison(
        current=current.describe(),
        baseline=baseline.describe(),
        rows=tuple(rows),
        missing_suites=tuple(sorted(before.keys() - now.keys())),
        replay_policy=replay_policy,
    )


def rules_from_run(run: RunData, default: GateRule | None = None) -> dict[str, GateRule]:
    """Per-suite rules recorded in a run's `suites` summary: `{"gate": "max_drop=0.05"}` or the keys
    `max_drop` / `alpha` / `min_cases` directly (as given to the suite marker). They override `default`."""
    base = default or GateRule()
    rules = {}
    for suite, summary in (run.meta.suites or {}).items():
        if not isinstance(summary, Mapping):
            continue
        gate = summary.get("gate")
        rule = GateRule.parse(gate, base) if isinstance(gate, str) else base
        rule = rule.with_overrides(gate if isinstance(gate, Mapping) else summary)
        if rule != base:
            rules[suite] = rule
    return rules


def _compare_suite(
    suite: str,
    cases: list[CaseRecord],
    baseline_cases: list[CaseRecord] | None,
    rule: GateRule,
    *,
    primary: str | None,
    seed: int,
) -> SuiteComparison:
    now = suite_stats(suite, cases, primary_score=primary, seed=seed)
    before = suite_stats(suite, baseline_cases, primary_score=primary, seed=seed) if baseline_cases else None
    paired = paired_compare(now.case_scores, before.case_scores if before else {}, seed=seed)
    verdict, reasons = _judge(now, before, paired, rule)
    new_failures = _new_failures(cases, baseline_cases or [])
    if new_failures:
        shown = ", ".join(new_failures[:5]) + (", ..." if len(new_failures) > 5 else "")
        reasons.append(f"{len(new_failures)} case(s) newly failing: {shown}")
    return SuiteComparison(
        suite=suite,
        cases=now.n_cases,
        n_paired=paired.n_paired,
        score=now.score,
        baseline_score=before.score if before else math.nan,
        delta=paired.mean_delta,
        ci_low=paired.ci_low,
        ci_high=paired.ci_high,
        p_value=paired.p_value if paired.n_paired else math.nan,
        p_value_improved=paired.p_value_improved if paired.n_paired else math.nan,
        verdict=verdict,
        reasons=tuple(reasons),
        flaky=now.flaky,
        new_failures=tuple(new_failures),
        rule=rule,
        replayed=now.n_replayed > 0,
        judge_changes=tuple(judge_changes(cases, baseline_cases or [])),
    )


def _judge(
    now: SuiteStats, before: SuiteStats | None, paired: PairedResult, rule: GateRule
) -> tuple[Verdict, list[str]]:
    """The verdict of one suite and the reasons a person reading the table needs."""
    reasons: list[str] = []
    if before is None or paired.n_paired == 0:
        reasons.append("suite not in the baseline" if before is None else "no case scored in both runs")
        return "no-baseline", reasons
    if paired.n_current_only or paired.n_baseline_only:
        reasons.append(
            f"compared on {paired.n_paired} shared cases "
            f"({paired.n_current_only} only in current, {paired.n_baseline_only} only in baseline)"
        )
    drop = -paired.mean_delta
    if rule.fails(now, before, paired):
        reasons.append(
            f"score fell {drop:.3f} (> max_drop {rule.max_drop:g}), p={paired.p_value:.4f} (< alpha {rule.alpha:g})"
        )
        return "regression", reasons
    if now.n_replayed and not before.n_replayed:
        reasons.append(
            f"{now.n_replayed} of {now.n_results} case results replayed from recordings; baseline recorded live"
        )
        return "replayed", reasons
    if paired.mean_delta > rule.max_drop + _EPS and paired.p_value_improved < rule.alpha:
        reasons.append(f"score rose {paired.mean_delta:.3f}, p={paired.p_value_improved:.4f}")
        return "improved", reasons
    if drop > _EPS:
        if drop <= rule.max_drop + _EPS:
            reasons.append(f"fell {drop:.3f}, within max_drop {rule.max_drop:g}")
        elif paired.n_paired < rule.min_cases:
            reasons.append(f"fell {drop:.3f} on only {paired.n_paired} paired cases (< min_cases {rule.min_cases})")
        else:
            reasons.append(f"fell {drop:.3f} but p={paired.p_value:.4f} >= alpha {rule.alpha:g}: not significant")
        return "noise", reasons
    return "pass", reasons


def _new_failures(cases: list[CaseRecord], baseline_cases: list[CaseRecord]) -> list[str]:
    """Cases that passed every repeat in the baseline and fail every repeat now."""
    before = pass_rates(baseline_cases)
    return sorted(case_id for case_id, rate in pass_rates(cases).items() if rate == 0.0 and before.get(case_id) == 1.0)


def _by_suite(cases: list[CaseRecord]) -> dict[str, list[CaseRecord]]:
    grouped: dict[str, list[CaseRecord]] = defaultdict(list)
    for case in cases:
        grouped[case.suite].append(case)
    return dict(grouped)


def _suite_setting(run: RunData, suite: str, key: str) -> Any:
    summary = (run.meta.suites or {}).get(suite)
    return summary.get(key) if isinstance(summary, Mapping) else None


def format_table(comparison: Comparison) -> str:
    """An aligned terminal table (suite | cases | score | baseline | delta | 95% CI | p | verdict) and notes.
    `p` is the one-sided p-value in the direction of the delta (of a drop, or of a rise)."""
    header = ("suite", "cases", "score", "baseline", "delta", "95% CI", "p", "verdict")
    body = [
        (
            row.suite,
            str(row.cases),
            _number(row.score),
            _number(row.baseline_score),
            _number(row.delta, signed=True),
            "-" if math.isnan(row.ci_low) else f"[{row.ci_low:+.3f}, {row.ci_high:+.3f}]",
            _p_value(row.p_value_improved if row.delta > 0 else row.p_value),
            row.verdict,
        )
        for row in comparison.rows
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    left = {0, 7}  # text columns; numbers are right-aligned

    def render(line: tuple[str, ...]) -> str:
        cells = [cell.ljust(w) if i in left else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths))]
        return "  ".join(cells).rstrip()

    lines = [f"current {comparison.current} vs baseline {comparison.baseline}", render(header)]
    lines += [render(line) for line in body]
    lines += _notes(comparison)
    return "\n".join(lines)


def _notes(comparison: Comparison) -> list[str]:
    notes = []
    for row in comparison.rows:
        if (row.reasons and row.verdict != "pass") or row.new_failures:
            notes.append(f"  {row.suite}: {row.verdict}: " + "; ".join(row.reasons))
        for change in row.judge_changes:
            notes.append(f"  {row.suite}: {change}")
        if row.flaky:
            shown = ", ".join(row.flaky[:5]) + (", ..." if len(row.flaky) > 5 else "")
            notes.append(f"  {row.suite}: {len(row.flaky)} flaky case(s) (outcome varies across repeats): {shown}")
    if comparison.missing_suites:
        notes.append("  not run now (in the baseline only): " + ", ".join(comparison.missing_suites))
    if comparison.replayed_suites:
        effect = "fails the gate" if comparison.replay_policy == "fail" else "does not fail the gate (policy: warn)"
        notes.append(f"  replayed suites were not checked against the live model; this {effect}")
    return ["notes:", *notes] if notes else []


def _number(value: float, *, signed: bool = False) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def _p_value(value: float) -> str:
    if math.isnan(value):
        return "-"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def to_json(comparison: Comparison) -> dict[str, Any]:
    """The comparison as JSON-ready data (NaN becomes null)."""
    suites = []
    for row in comparison.rows:
        item = {f.name: _finite(getattr(row, f.name)) for f in dataclasses.fields(row)}
        item.update(rule=str(row.rule), reasons=list(row.reasons), flaky=list(row.flaky))
        item["new_failures"] = list(row.new_failures)
        item["judge_changes"] = list(row.judge_changes)
        suites.append(item)
    return {
        "current": comparison.current,
        "baseline": comparison.baseline,
        "failed": comparison.failed,
        "exit_code": comparison.exit_code,
        "replay_policy": comparison.replay_policy,
        "missing_suites": list(comparison.missing_suites),
        "suites": suites,
    }


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value
