"""A panel of judges: every judge gives `samples` verdicts on an item, and they are aggregated into one.

A verdict the judge could not give (timeout, error, unparseable output, a score outside 0..1) is kept as a
failed verdict: it is reported, and it counts neither for nor against the item. When every verdict failed
the item is unscored. Mean aggregation averages the values; majority aggregation takes the pass/fail vote at
the threshold (ties fail) and scores 1.0 or 0.0. Spread and variance of the values are reported either way.
"""

from __future__ import annotations

import asyncio
import logging
import math
import statistics
from dataclasses import dataclass, field
from typing import Any, Literal

from harness.judges.cache import JudgeCache, cache_key
from harness.judges.metrics import AGGREGATES, JudgeItem, MetricSpec, build_metric, build_test_case
from harness.judges.model import JudgeFailure, JudgeSpec, Transport, make_judge_model

log = logging.getLogger("tollgate.judges")
Aggregate = Literal["mean", "majority"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """One judge's answer (or failure) for one sample."""

    judge: str
    sample: int
    value: float | None
    reason: str | None = None
    cached: bool = False
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"judge": self.judge, "sample": self.sample, "value": self.value, "cached": self.cached,
                "error": self.error}


@dataclass(frozen=True, slots=True)
class Judgement:
    """The panel's aggregated verdict on one item, with what it is based on."""

    metric: str
    rubric_hash: str
    judges: tuple[str, ...]
    aggregate: str
    threshold: float
    verdicts: tuple[Verdict, ...] = field(default_factory=tuple)

    @property
    def values(self) -> list[float]:
        return [v.value for v in self.verdicts if v.value is not None]

    @property
    def value(self) -> float | None:
        values = self.values
        if not values:
            return None
        if self.aggregate == "majority":
            passes = sum(1 for v in values if v >= self.threshold)
            return 1.0 if passes * 2 > len(values) else 0.0
        return sum(values) / len(values)

    @property
    def passed(self) -> bool | None:
        value = self.value
        return None if value is None else value >= self.threshold

    @property
    def spread(self) -> float | None:
        values = self.values
        return max(values) - min(values) if len(values) > 1 else (0.0 if values else None)

    @property
    def variance(self) -> float | None:
        values = self.values
        return statistics.pvariance(values) if values else None

    @property
    def calls(self) -> int:
        """Judge calls made for this judgement (cached verdicts cost none)."""
        return sum(1 for v in self.verdicts if not v.cached)

    @property
    def cached(self) -> bool:
        return bool(self.verdicts) and all(v.cached for v in self.verdicts)

    @property
    def error(self) -> str | None:
        errors = [f"{v.judge}#{v.sample}: {v.error}" for v in self.verdicts if v.error]
        if not errors:
            return None
        prefix = "judge failed" if self.value is None else "some verdicts failed"
        return f"{prefix}: " + "; ".join(errors)[:400]

    @property
    def reason(self) -> str | None:
        return next((v.reason for v in self.verdicts if v.reason), None)

    def details(self) -> dict[str, Any]:
        """Provenance stored with the score: judges, rubric hash, every verdict, cached or not."""
        return {
            "judge": {"metric": self.metric, "judges": ",".join(self.judges), "rubric_hash": self.rubric_hash},
            "aggregate": self.aggregate,
            "cached": self.cached,
            "judge_calls": self.calls,
            "spread": self.spread,
            "variance": self.variance,
            "reason": self.reason,
            "verdicts": [v.to_dict() for v in self.verdicts],
        }


class JudgePanel:
    """Judges (each a `JudgeSpec` reached at `base_url`), the cache, and the counts of calls made."""

    def __init__(self, judges: list[JudgeSpec], base_url: str, *, cache: JudgeCache | None, samples: int = 1,
                 aggregate: str = "mean", timeout_s: float = 60.0, feature: str = "judge",
                 transport: Transport | None = None) -> None:
        if not judges:
            raise ValueError("a judge panel needs at least one judge")
        if aggregate not in AGGREGATES:
            raise ValueError(f"aggregate must be one of {', '.join(AGGREGATES)}, got {aggregate!r}")
        self.judges = judges
        self.base_url = base_url
        self.cache = cache
        self.samples = samples
        self.aggregate = aggregate
        self.timeout_s = timeout_s
        self.feature = feature
        self.transport = transport
        self.calls = 0
        self.cache_hits = 0
        self.failures = 0

    async def ajudge(self, spec: MetricSpec, item: JudgeItem, *, threshold: float) -> Judgement:
        """Every judge's verdicts on `item`, one call at a time (a deterministic order for local judges)."""
        verdicts: list[Verdict] = []
        missing = spec.missing(item)
        for judge in self.judges:
            for sample in range(self.samples):
                if missing is not None:
                    verdicts.append(Verdict(judge.id, sample, None, error=missing))
                else:
                    verdicts.append(await self._verdict(spec, judge, sample, item))
        return Judgement(spec.label, spec.rubric_hash, tuple(j.id for j in self.judges), self.aggregate,
                         threshold, tuple(verdicts))

    async def _verdict(self, spec: MetricSpec, judge: JudgeSpec, sample: int, item: JudgeItem) -> Verdict:
        key = cache_key(spec, judge.id, sample, item)
        if self.cache is not None:
            found = self.cache.get(key)
            if found is not None:
                self.cache_hits += 1
                return Verdict(judge.id, sample, found[0], found[1], cached=True)
        model = make_judge_model(judge, self.base_url, timeout_s=self.timeout_s, feature=self.feature,
                                 transport=self.transport)
        # Direct calls time out one by one (`timeout_s` each); this bounds a whole verdict (a metric makes up to
        # three calls). Through a session's call pool a judge call may first wait behind queued model calls, so
        # there only the pool's own timeouts apply: a slow machine must not turn into unscored cases.
        limit = None if self.transport is not None else self.timeout_s * 4
        try:
            value, reason = await asyncio.wait_for(self._measure(spec, model, item), timeout=limit)
        except (JudgeFailure, TimeoutError) as exc:
            error = str(exc) or f"timed out after {limit:g} s"
            return self._failed(judge, sample, error, model)
        except Exception as exc:  # noqa: BLE001 - boundary: a deepeval error about one verdict is that verdict's
            return self._failed(judge, sample, f"{type(exc).__name__}: {exc}".splitlines()[0][:300], model)
        finally:
            self.calls += model.calls.calls
        if self.cache is not None:
            self.cache.put(key, metric=spec.label, rubric_hash=spec.rubric_hash, judge=judge.id, value=value,
                           reason=reason)
        return Verdict(judge.id, sample, value, reason)

    def _failed(self, judge: JudgeSpec, sample: int, error: str, model: Any) -> Verdict:
        self.failures += 1
        log.warning("judge %s gave no verdict: %s", judge.id, error)
        return Verdict(judge.id, sample, None, error=error)

    @staticmethod
    async def _measure(spec: MetricSpec, model: Any, item: JudgeItem) -> tuple[float, str | None]:
        metric = build_metric(spec, model)
        await metric.a_measure(build_test_case(item), _show_indicator=False)
        value = metric.score
        if value is None or isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            raise JudgeFailure(f"no score in the verdict ({value!r})")
        if not 0.0 <= float(value) <= 1.0:
            raise JudgeFailure(f"verdict {value!r} is outside 0..1")
        return float(value), getattr(metric, "reason", None)
