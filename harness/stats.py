"""Statistics behind the gate: bootstrap intervals, a paired test of two runs, pass rates and flaky cases.

Everything here is deterministic: random draws come from `numpy.random.default_rng(seed)`, so the same inputs
always give the same interval and p-value (a CI gate must not flip on a re-run of the comparison itself).

Which paired test, and why the sign-flip permutation test rather than Wilcoxon signed-rank:
  * the gate acts on the mean per-case delta, and the sign-flip test uses exactly that statistic;
    Wilcoxon tests a shift in ranks, which can disagree with the mean (a few large drops, many tiny gains);
  * case scores are mostly pass rates, so deltas take few values (-1, -0.5, 0, 0.5, 1) and are heavily
    tied: scipy's exact Wilcoxon does not apply with ties and its normal approximation is rough for small n;
  * it is exact for small n (all 2^m sign patterns are enumerated), needs no normality, and has nothing to
    divide by zero: all-tied or all-zero deltas give p = 1 without a warning.
Under the null hypothesis the two runs are exchangeable within each case, so each non-zero delta is as likely
to be positive as negative; the p-value is the share of sign patterns whose sum is at most the observed one.
Zero deltas cannot change sign and are left out of the enumeration (they add nothing to any pattern's sum).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from harness.store import CaseRecord

DEFAULT_SEED = 0
BOOTSTRAP_RESAMPLES = 2000
PERMUTATION_RESAMPLES = 10_000
EXACT_MAX_NONZERO = 16  # 2^16 sign patterns: enumerate them all up to here, sample beyond
_CHUNK_ELEMENTS = 1_000_000  # bound memory of the vectorised resampling (~8 MB per chunk)
_NAN = float("nan")


@dataclass(frozen=True, slots=True)
class Interval:
    """A confidence interval; both ends are NaN when there is no data."""

    low: float
    high: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


@dataclass(frozen=True, slots=True)
class PairedResult:
    """Current vs baseline on the cases both runs scored. delta = current - baseline."""

    n_paired: int
    n_current_only: int
    n_baseline_only: int
    mean_current: float
    mean_baseline: float
    mean_delta: float
    ci_low: float
    ci_high: float
    p_value: float  # one-sided: current < baseline
    p_value_improved: float  # one-sided: current > baseline
    method: str


@dataclass(frozen=True, slots=True)
class SuiteStats:
    """One suite in one run: per-case scores (mean over repeats) and their mean with a bootstrap CI."""

    suite: str
    n_cases: int
    n_results: int
    n_unscored: int
    n_errors: int
    n_replayed: int
    score: float
    ci_low: float
    ci_high: float
    case_scores: dict[str, float] = field(default_factory=dict)
    pass_rates: dict[str, float] = field(default_factory=dict)
    flaky: tuple[str, ...] = ()
    primary_score: str | None = None


def bootstrap_mean_ci(
    values: Sequence[float] | npt.NDArray[np.float64],
    *,
    confidence: float = 0.95,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> Interval:
    """Percentile bootstrap interval of the mean, resampled in bounded chunks."""
    data = np.asarray(values, dtype=np.float64)
    n = data.size
    if n == 0:
        return Interval(_NAN, _NAN)
    if n == 1 or np.all(data == data[0]):
        return Interval(float(data[0]), float(data[0]))
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    rows = max(1, _CHUNK_ELEMENTS // n)
    for start in range(0, n_resamples, rows):
        stop = min(start + rows, n_resamples)
        means[start:stop] = data[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return Interval(float(low), float(high))


def sign_flip_pvalues(
    deltas: Sequence[float] | npt.NDArray[np.float64],
    *,
    n_resamples: int = PERMUTATION_RESAMPLES,
    seed: int = DEFAULT_SEED,
    exact_max: int = EXACT_MAX_NONZERO,
) -> tuple[float, float, str]:
    """One-sided p-values (mean delta < 0, mean delta > 0) of the paired sign-flip test, and the method used.

    Exact when at most `exact_max` deltas are non-zero, Monte Carlo otherwise with the
    `(1 + hits) / (1 + n_resamples)` estimate, which is never 0 and keeps the test valid.
    """
    data = np.asarray(deltas, dtype=np.float64)
    scale = float(np.abs(data).sum())
    nonzero = data[np.abs(data) > 1e-12 * max(1.0, scale)]
    m = nonzero.size
    if m == 0:
        return 1.0, 1.0, "sign-flip (all deltas zero)"
    observed = float(nonzero.sum())
    tolerance = 1e-9 * max(1.0, scale)  # count float-equal sums as ties, not as more extreme
    if m <= exact_max:
        bits = (np.arange(2**m)[:, None] >> np.arange(m)) & 1
        sums = (1 - 2 * bits) @ nonzero
        less = float(np.mean(sums <= observed + tolerance))
        greater = float(np.mean(sums >= observed - tolerance))
        return less, greater, "exact sign-flip"
    rng = np.random.default_rng(seed)
    hits_less = hits_greater = 0
    rows = max(1, _CHUNK_ELEMENTS // m)
    for start in range(0, n_resamples, rows):
        count = min(rows, n_resamples - start)
        # Flipping a subset F changes the sum by -2 * sum(F): draw F as random bits.
        flips = np.unpackbits(rng.integers(0, 256, size=(count, (m + 7) // 8), dtype=np.uint8), axis=1)
        sums = observed - 2.0 * (flips[:, :m] @ nonzero)
        hits_less += int(np.count_nonzero(sums <= observed + tolerance))
        hits_greater += int(np.count_nonzero(sums >= observed - tolerance))
    denominator = 1 + n_resamples
    return (1 + hits_less) / denominator, (1 + hits_greater) / denominator, f"sign-flip ({n_resamples} draws)"


def paired_compare(
    current: Mapping[str, float],
    baseline: Mapping[str, float],
    *,
    confidence: float = 0.95,
    seed: int = DEFAULT_SEED,
) -> PairedResult:
    """Compare per-case scores matched by key (the case id within a suite)."""
    keys = sorted(current.keys() & baseline.keys())
    n_current_only = len(current.keys() - baseline.keys())
    n_baseline_only = len(baseline.keys() - current.keys())
    if not keys:
        return PairedResult(0, n_current_only, n_baseline_only, _NAN, _NAN, _NAN, _NAN, _NAN, 1.0, 1.0, "none")
    now = np.fromiter((current[k] for k in keys), dtype=np.float64, count=len(keys))
    before = np.fromiter((baseline[k] for k in keys), dtype=np.float64, count=len(keys))
    deltas = now - before
    interval = bootstrap_mean_ci(deltas, confidence=confidence, seed=seed)
    p_less, p_greater, method = sign_flip_pvalues(deltas, seed=seed)
    return PairedResult(
        n_paired=len(keys),
        n_current_only=n_current_only,
        n_baseline_only=n_baseline_only,
        mean_current=float(now.mean()),
        mean_baseline=float(before.mean()),
        mean_delta=float(deltas.mean()),
        ci_low=interval.low,
        ci_high=interval.high,
        p_value=p_less,
        p_value_improved=p_greater,
        method=method,
    )


def case_outcomes(cases: Iterable[CaseRecord]) -> dict[str, list[bool]]:
    """The pass/fail outcome of each scored repeat, by case id (unscored repeats are left out)."""
    outcomes: dict[str, list[bool]] = defaultdict(list)
    for case in cases:
        if case.passed is not None:
            outcomes[case.case_id].append(bool(case.passed))
    return dict(outcomes)


def pass_rates(cases: Iterable[CaseRecord]) -> dict[str, float]:
    """Per case id, the share of its scored repeats that passed."""
    return {case_id: sum(runs) / len(runs) for case_id, runs in case_outcomes(cases).items()}


def flaky_cases(cases: Iterable[CaseRecord]) -> list[str]:
    """Case ids whose outcome differs between repeats within one run (passed in some, failed in others)."""
    return sorted(case_id for case_id, runs in case_outcomes(cases).items() if len(set(runs)) > 1)


def case_scores(cases: Iterable[CaseRecord], primary_score: str | None = None) -> dict[str, float]:
    """Per case id, the mean over repeats of 1.0/0.0 for passed/failed, or of the value of `primary_score`.
    Unscored repeats stay out of the mean; a case with no scored repeat has no score."""
    if primary_score is None:
        return pass_rates(cases)
    values: dict[str, list[float]] = defaultdict(list)
    for case in cases:
        value = case.score_value(primary_score)
        if value is not None:
            values[case.case_id].append(value)
    return {case_id: sum(found) / len(found) for case_id, found in values.items()}


def suite_stats(
    suite: str, cases: Sequence[CaseRecord], *, primary_score: str | None = None, seed: int = DEFAULT_SEED
) -> SuiteStats:
    """Summarise one suite's case results (all repeats) from one run."""
    scores = case_scores(cases, primary_score)
    interval = bootstrap_mean_ci(list(scores.values()), seed=seed)
    mean = sum(scores.values()) / len(scores) if scores else _NAN
    unscored = sum(
        1 for c in cases if (c.passed is None if primary_score is None else c.score_value(primary_score) is None)
    )
    return SuiteStats(
        suite=suite,
        n_cases=len(scores),
        n_results=len(cases),
        n_unscored=unscored,
        n_errors=sum(1 for c in cases if c.error),
        n_replayed=sum(1 for c in cases if c.replayed),
        score=mean,
        ci_low=interval.low,
        ci_high=interval.high,
        case_scores=scores,
        pass_rates=pass_rates(cases),
        flaky=tuple(flaky_cases(cases)),
        primary_score=primary_score,
    )
