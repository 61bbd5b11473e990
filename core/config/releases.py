"""Releases: prompt labels, canary weights, shadow mirroring, A/B experiments and the promotion gate."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from core.config.base import Section


class GatePolicySettings(Section):
    """What a version's latest suite run must show before it may be promoted to `production`.

    The run must have finished with exit status 0 and no suite that used the prompt may be a `regression`
    against its baseline or below its own `min_score`. The fields below add absolute floors and budgets.
    """

    min_score: float | None = Field(default=None, ge=0, le=1, description="Lowest suite score allowed")
    max_cost_per_case_usd: float | None = Field(default=None, ge=0, description="Budget: mean cost of one case")
    max_latency_p95_ms: float | None = Field(default=None, gt=0, description="Budget: the suite's p95 latency")
    require_comparison: bool = Field(
        default=False, description="Refuse runs that were not compared with a baseline (no regression verdict)"
    )
    max_run_age_days: float | None = Field(default=None, gt=0, description="Refuse runs older than this")


class FeedbackRange(Section):
    """The values `POST /v1/feedback` accepts for one outcome (inclusive)."""

    min: float = -1.0
    max: float = 1.0

    @model_validator(mode="after")
    def _ordered(self) -> FeedbackRange:
        if self.min > self.max:
            raise ValueError(f"a feedback range needs min <= max, got [{self.min:g}, {self.max:g}]")
        return self


class ReleaseSettings(Section):
    """Releases: prompt labels, canary weights, shadow mirroring, A/B experiments and the promotion gate."""

    enabled: bool = Field(
        default=False, description="Serve prompts by name and follow release labels in the sidecar"
    )
    prompts_dir: Path = Field(default=Path("prompts"), description="Where `tollgate release` reads prompt files")
    refresh_interval_s: float = Field(
        default=1.0, gt=0, description="How often each sidecar polls the database for label changes"
    )
    sticky_salt: str = Field(
        default="tollgate", min_length=1, description="Mixed into the user hash that assigns canary and A/B arms"
    )
    shadow_concurrency: int = Field(default=4, ge=1, description="Shadow calls in flight per sidecar")
    shadow_queue: int = Field(
        default=256, ge=0, description="Shadow calls waiting for a slot; beyond it mirrors are dropped and counted"
    )
    gate: GatePolicySettings = GatePolicySettings()
    feedback_range: FeedbackRange = Field(
        default_factory=FeedbackRange, description="Values feedback may carry for an outcome not listed below"
    )
    feedback_outcomes: dict[str, FeedbackRange] = Field(
        default_factory=dict, description="Declared outcomes and their value ranges, e.g. revenue: {min: 0, max: 10000}"
    )

    def feedback_range_of(self, outcome: str) -> FeedbackRange:
        """The values feedback for `outcome` may carry."""
        return self.feedback_outcomes.get(outcome, self.feedback_range)
