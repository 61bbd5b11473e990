"""Releases: labels on prompt versions and model choices, prompt sources, experiments, feedback and the audit log.

A *subject* is what a label applies to: a prompt name (kind `prompt`, the label names a content version and
optionally a model) or a public model alias (kind `model`, the label names the model that serves it).
`release_revision` holds one counter bumped by every change, so sidecars poll one integer and reload the
labels only when it moved.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.tables.common import utc_now

PRODUCTION = "production"
CANARY = "canary"
SHADOW = "shadow"
LABELS: tuple[str, ...] = (PRODUCTION, CANARY, SHADOW)
KIND_PROMPT = "prompt"
KIND_MODEL = "model"


def _utc(**kwargs: Any) -> Any:
    return Field(sa_type=sa.DateTime(timezone=True), **kwargs)


class ReleaseLabelBase(SQLModel):
    """Where one label of one subject points. `weight` is the share of traffic a canary receives."""

    kind: str = Field(default=KIND_PROMPT, max_length=16, description="prompt or model")
    version: str | None = Field(default=None, max_length=100, description="Prompt content version")
    model: str | None = Field(default=None, max_length=200, description="Model that serves this label")
    weight: float = Field(default=1.0, ge=0, le=1)
    updated_at: datetime = _utc(default_factory=utc_now)
    updated_by: str | None = Field(default=None, max_length=200)


class ReleaseLabel(ReleaseLabelBase, table=True):
    __tablename__ = "release_label"

    subject: str = Field(primary_key=True, max_length=200)
    label: str = Field(primary_key=True, max_length=16)


class ReleaseAudit(SQLModel, table=True):
    """One change of a label (promote, canary, shadow, clear, rollback) or an experiment, and why."""

    __tablename__ = "release_audit"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _utc(default_factory=utc_now, index=True)
    subject: str = Field(max_length=200, index=True)
    label: str | None = Field(default=None, max_length=16)
    action: str = Field(max_length=32)
    from_version: str | None = Field(default=None, max_length=100)
    from_model: str | None = Field(default=None, max_length=200)
    to_version: str | None = Field(default=None, max_length=100)
    to_model: str | None = Field(default=None, max_length=200)
    weight: float | None = None
    forced: bool = False
    reason: str | None = None
    actor: str | None = Field(default=None, max_length=200)
    run_id: str | None = Field(default=None, max_length=32, description="Suite run the gate read")
    gate: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON, description="The gate decision, as data")


class PromptSource(SQLModel, table=True):
    """The text of a prompt version, kept once it is labelled so any sidecar can render it (and roll back to it)."""

    __tablename__ = "release_prompt_source"

    name: str = Field(primary_key=True, max_length=200)
    version: str = Field(primary_key=True, max_length=100)
    source: str
    stored_at: datetime = _utc(default_factory=utc_now)


class Experiment(SQLModel, table=True):
    """An A/B experiment on one subject: arms with weights, each a version and/or model."""

    __tablename__ = "release_experiment"

    name: str = Field(primary_key=True, max_length=200)
    subject: str = Field(max_length=200, index=True)
    arms: list[dict[str, Any]] = Field(default_factory=list, sa_type=sa.JSON)
    status: str = Field(default="running", max_length=16, description="running or stopped")
    description: str | None = None
    started_at: datetime = _utc(default_factory=utc_now)
    stopped_at: datetime | None = _utc(default=None)
    started_by: str | None = Field(default=None, max_length=200)


class Feedback(SQLModel, table=True):
    """A business outcome reported for one served request (`POST /v1/feedback`)."""

    __tablename__ = "release_feedback"

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = _utc(default_factory=utc_now, index=True)
    request_id: str = Field(max_length=64, index=True)
    outcome: str = Field(max_length=100)
    value: float = 1.0
    experiment: str | None = Field(default=None, max_length=200, index=True)
    variant: str | None = Field(default=None, max_length=64)
    user: str | None = Field(default=None, max_length=200)
    details: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)


class ReleaseRevision(SQLModel, table=True):
    """One row (id 1): a counter bumped by every release change, polled by the sidecars."""

    __tablename__ = "release_revision"

    id: int = Field(default=1, primary_key=True)
    revision: int = 0
    changed_at: datetime = _utc(default_factory=utc_now)
