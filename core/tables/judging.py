"""LLM-judge verdicts: the cache of verdicts, scores given to logged traffic, and judge calibrations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.tables.common import utc_now


class JudgeCacheEntry(SQLModel, table=True):
    """One judge verdict, keyed by the sha256 of metric, rubric hash, judge, sample, input, output and context.

    Only successful verdicts are stored: a failed call is retried on the next run rather than remembered.
    """

    __tablename__ = "judge_cache"

    key: str = Field(primary_key=True, max_length=64)
    created_at: datetime = Field(default_factory=utc_now, sa_type=sa.DateTime(timezone=True))
    metric: str = Field(max_length=200, index=True)
    rubric_hash: str = Field(max_length=64)
    judge: str = Field(max_length=300)
    value: float
    reason: str | None = None


class JudgeScoreBase(SQLModel):
    """A judged item outside a suite run (a logged traffic record), with the verdict's provenance."""

    created_at: datetime = Field(default_factory=utc_now, sa_type=sa.DateTime(timezone=True), index=True)
    traffic_id: str | None = Field(default=None, max_length=32, index=True)
    metric: str = Field(max_length=200, index=True)
    rubric_hash: str = Field(max_length=64)
    judges: str = Field(max_length=1000, description="Judge ids, comma-separated")
    value: float | None = Field(default=None, description="None: unscored (every judge call failed)")
    passed: bool | None = None
    threshold: float
    spread: float | None = Field(default=None, description="Largest minus smallest verdict")
    cached: bool = False
    error: str | None = None
    details: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)


class JudgeScore(JudgeScoreBase, table=True):
    __tablename__ = "judge_score"

    id: int | None = Field(default=None, primary_key=True)


class JudgeCalibrationBase(SQLModel):
    """How well a judge agreed with human labels for one metric and rubric."""

    created_at: datetime = Field(default_factory=utc_now, sa_type=sa.DateTime(timezone=True), index=True)
    metric: str = Field(max_length=200, index=True)
    rubric_hash: str = Field(max_length=64)
    judges: str = Field(max_length=1000)
    dataset: str = Field(max_length=500)
    dataset_sha256: str | None = Field(default=None, max_length=64)
    n_items: int
    n_scored: int
    accuracy: float | None = None
    kappa: float | None = None
    spearman: float | None = None
    details: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)


class JudgeCalibration(JudgeCalibrationBase, table=True):
    __tablename__ = "judge_calibration"

    id: int | None = Field(default=None, primary_key=True)
