"""LLM-judge scoring (deepeval metrics, the judge model, its cache and calibration)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from core.config.base import Section


class JudgeSettings(Section):
    """LLM-judge scoring (deepeval metrics, the judge model, its cache and calibration).

    A judge is any model the sidecar serves; its calls carry `X-Tollgate-Feature: <feature>` so the traffic
    log records and prices them like any other call.
    """

    model: str | None = Field(default=None, description="Judge model; None = the embedded model")
    models: list[str] = Field(
        default_factory=list, description="Several judges scoring every item (aggregated); overrides `model`"
    )
    base_url: str | None = Field(
        default=None, description="OpenAI-compatible endpoint (…/v1) of the judge; None = the sidecar"
    )
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(default=256, gt=0)
    timeout_s: float = Field(default=60.0, gt=0, description="A slower verdict is a judge failure (unscored)")
    samples: int = Field(default=1, ge=1, le=20, description="Verdicts asked of each judge per item")
    aggregate: Literal["mean", "majority"] = "mean"
    cache: bool = Field(default=True, description="Reuse stored verdicts for unchanged inputs and outputs")
    concurrency: int = Field(default=1, ge=1, description="Judge calls in flight (commands; suites use 1)")
    feature: str = Field(default="judge", max_length=200, description="Traffic feature tag of judge calls")
    min_agreement: float | None = Field(
        default=None, ge=-1.0, le=1.0,
        description="Gate: required Cohen's kappa of a judge's latest calibration for the metric it scores",
    )
    metrics: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Named judge metrics as scorer configs: {name: {name: geval, args: {...}, threshold: 0.5}}",
    )
    review_confidence_below: float = Field(
        default=0.5, ge=0.0, le=1.0, description="Online evaluation queues traffic whose confidence is lower"
    )
    review_spread_above: float = Field(
        default=0.3, ge=0.0, le=1.0, description="Online evaluation queues items whose verdicts spread wider"
    )
