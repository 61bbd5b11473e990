"""Regression rules in the style of pytest-benchmark's `--benchmark-compare-fail`, and the comparison.

A rule is `METRIC:CHANGE`, several separated by commas: `ttft_p99:+10%,e2e_p50:+5%,goodput:-5%`.
  * METRIC is a summary metric (see `harness.bench.stats`), e.g. `ttft_p99`, `itl_p50`, `requests_per_s`.
  * CHANGE is a tolerated change: `+` watches for a rise, `-` for a fall; without a sign the direction is
    the bad one for that metric (a rise for latencies and errors, a fall for throughput and goodput).
  * The amount is a percentage of the baseline (`10%`), or absolute in the metric's unit, with an optional
    `ms` or `s` suffix for latencies (`+20ms`, `+0.5s`) or a plain number (`goodput:-0.05`).
A rule fails when the current value moves past the tolerance in the watched direction. A metric that is
NaN on either side (no data) never fails a rule: it is reported as not comparable.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from harness.bench.errors import BenchError
from harness.bench.results import BenchRun
from harness.bench.stats import HIGHER_IS_BETTER, LATENCIES, METRICS

_RULE = re.compile(r"^(?P<metric>[a-z0-9_]+):(?P<sign>[+-]?)(?P<amount>\d+(?:\.\d*)?|\.\d+)(?P<unit>%|ms|s)?$")


@dataclass(frozen=True, slots=True)
class RegressionRule:
    """Fail when `metric` rises (`rise=True`) or falls by more than `amount` (a fraction when `relative`)."""

    metric: str
    rise: bool
    amount: float
    relative: bool
    text: str

    def limit(self, baseline: float) -> float:
        """The worst value still accepted, given the baseline's value."""
        delta = abs(baseline) * self.amount if self.relative else self.amount
        return baseline + delta if self.rise else baseline - delta

    def fails(self, current: Mapping[str, float], baseline: Mapping[str, float]) -> bool:
        """Whether the current summary regressed past this rule against the baseline summary."""
        now, before = current.get(self.metric, math.nan), baseline.get(self.metric, math.nan)
        if math.isnan(now) or math.isnan(before):
            return False
        return now > self.limit(before) if self.rise else now < self.limit(before)


def parse_rule(text: str) -> RegressionRule:
    """One rule from `METRIC:CHANGE` (see the module docstring); `BenchError` names what is wrong."""
    spec = text.strip().replace(" ", "")
    match = _RULE.match(spec)
    if match is None:
        raise BenchError(f"bad regression rule {text.strip()!r}: use METRIC:+N% or METRIC:+N[ms|s], "
                         "e.g. ttft_p99:+10%")
    metric, sign, unit = match["metric"], match["sign"], match["unit"]
    if metric not in METRICS:
        raise BenchError(f"bad regression rule {spec!r}: unknown metric {metric!r} "
                         f"(e.g. ttft_p99, e2e_p50, itl_p95, goodput, requests_per_s, error_rate)")
    is_latency = metric.split("_", 1)[0] in LATENCIES
    if unit in ("ms", "s") and not is_latency:
        raise BenchError(f"bad regression rule {spec!r}: {metric} is not a latency, so {unit!r} does not apply")
    amount = float(match["amount"])
    if unit == "%":
        amount /= 100.0
    elif unit == "s":
        amount *= 1000.0  # latencies are kept in milliseconds
    rise = (sign == "+") if sign else metric not in HIGHER_IS_BETTER
    return RegressionRule(metric=metric, rise=rise, amount=amount, relative=unit == "%", text=spec)


# Shown against a baseline when no rule is given: never fail, only report the change.
WATCHED: tuple[str, ...] = ("ttft_p50", "ttft_p99", "itl_p50", "tpot_p50", "e2e_p50", "e2e_p99", "requests_per_s",
                            "goodput")


def report_only_rules(metrics: Sequence[str] = WATCHED) -> tuple[RegressionRule, ...]:
    """Rules that never fail, to show how `metrics` moved against a baseline."""
    return tuple(RegressionRule(metric=m, rise=m not in HIGHER_IS_BETTER, amount=math.inf, relative=False, text=m)
                 for m in metrics)


def parse_rules(text: str | None) -> tuple[RegressionRule, ...]:
    """Comma-separated rules; empty text gives no rules."""
    if not text or not text.strip():
        return ()
    return tuple(parse_rule(part) for part in text.split(",") if part.strip())


@dataclass(frozen=True, slots=True)
class RuleOutcome:
    """One rule applied to one level of the run against the same level of the baseline."""

    level: str
    rule: RegressionRule
    current: float
    baseline: float
    failed: bool

    def describe(self) -> str:
        if math.isnan(self.current) or math.isnan(self.baseline):
            verdict = "not comparable (no data)"
        else:
            verdict = "REGRESSION" if self.failed else ("" if math.isinf(self.rule.amount) else "ok")
        change = _change(self.current, self.baseline)
        return (f"{self.level:>10}  {self.rule.text:<22} baseline {self.baseline:>10.2f}  "
                f"current {self.current:>10.2f}  {change:>9}  {verdict}")


@dataclass(frozen=True, slots=True)
class Comparison:
    """Every rule outcome, plus the levels of the run that the baseline does not have."""

    outcomes: tuple[RuleOutcome, ...]
    unmatched: tuple[str, ...]

    @property
    def failed(self) -> bool:
        return any(outcome.failed for outcome in self.outcomes)

    def lines(self) -> list[str]:
        lines = [outcome.describe() for outcome in self.outcomes]
        lines += [f"{label:>10}  not in the baseline: not compared" for label in self.unmatched]
        return lines


def compare_runs(current: BenchRun, baseline: BenchRun, rules: Sequence[RegressionRule]) -> Comparison:
    """Apply `rules` to each level of `current` against the baseline level with the same label."""
    outcomes: list[RuleOutcome] = []
    unmatched: list[str] = []
    for level in current.levels:
        before = baseline.level(level.label)
        if before is None:
            unmatched.append(level.label)
            continue
        for rule in rules:
            outcomes.append(RuleOutcome(
                level=level.label, rule=rule,
                current=level.summary.get(rule.metric, math.nan), baseline=before.summary.get(rule.metric, math.nan),
                failed=rule.fails(level.summary, before.summary),
            ))
    return Comparison(tuple(outcomes), tuple(unmatched))


def _change(current: float, baseline: float) -> str:
    if math.isnan(current) or math.isnan(baseline) or baseline == 0:
        return ""
    return f"{(current - baseline) / abs(baseline) * 100:+.1f}%"
