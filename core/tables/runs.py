"""Evaluation runs: one row per run, one per case result, named baselines and the prompt versions seen.

A *run* is one pytest session (or one `tollgate` invocation) with its provenance; a *case result* is one case x
one repeat with its output and scores stored as JSON. `sa.JSON` maps to JSON on both SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.tables.common import utc_now

RUN_RUNNING = "running"
RUN_FINISHED = "finished"
RUN_ABORTED = "aborted"

# An integer that is the rowid on SQLite (so it autoincrements) and a BIGINT elsewhere: case results grow fast.
_CASE_ID_TYPE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _utc_column(**kwargs: Any) -> Any:
    return Field(sa_type=sa.DateTime(timezone=True), **kwargs)


def _json_column(**kwargs: Any) -> Any:
    return Field(sa_type=sa.JSON, **kwargs)


class RunBase(SQLModel):
    """One evaluation run and where it came from (commit, machine, prompts, datasets)."""

    started_at: datetime = _utc_column(default_factory=utc_now, index=True)
    finished_at: datetime | None = _utc_column(default=None)
    status: str = Field(default=RUN_RUNNING, max_length=16, description="running, finished or aborted")
    git_commit: str | None = Field(default=None, max_length=64)
    git_branch: str | None = Field(default=None, max_length=255, index=True)
    git_dirty: bool | None = None
    harness_version: str = Field(max_length=32)
    machine: dict[str, Any] = _json_column(default_factory=dict)
    models: dict[str, Any] = _json_column(default_factory=dict, description="model names and parameters used")
    prompt_versions: dict[str, str] = _json_column(default_factory=dict, description="{prompt name: version}")
    dataset_hashes: dict[str, str] = _json_column(default_factory=dict, description="{dataset path: sha256}")
    repeat: int = Field(default=1, ge=1)
    replay: bool = Field(default=False, description="True when any case result was served from a recording")
    label: str | None = Field(default=None, max_length=200, index=True)
    suites: dict[str, Any] = _json_column(default_factory=dict, description="{suite: summary and gate settings}")
    exit_status: int | None = None


class Run(RunBase, table=True):
    __tablename__ = "runs"

    id: str = Field(primary_key=True, max_length=32)


class RunPublic(RunBase):
    id: str


class CaseResultBase(SQLModel):
    """One case x one repeat: what went in, what came out, how it scored."""

    suite: str = Field(max_length=200)
    case_id: str = Field(max_length=500)
    repeat: int = 0
    inputs: dict[str, Any] = _json_column(default_factory=dict)
    output: dict[str, Any] | None = _json_column(default=None, description="LLMResult.to_dict()")
    scores: list[dict[str, Any]] = _json_column(default_factory=list, description="[Score.to_dict()]")
    passed: bool | None = Field(default=None, description="all scores passed; None when unscored")
    error: str | None = None
    latency_ms: float | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost_usd: float | None = None
    replayed: bool = False


class CaseResult(CaseResultBase, table=True):
    __tablename__ = "case_results"
    # The leading run_id column also serves every lookup by run alone.
    __table_args__ = (sa.Index("ix_case_results_run_suite_case", "run_id", "suite", "case_id"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=_CASE_ID_TYPE)
    run_id: str = Field(foreign_key="runs.id", ondelete="CASCADE", max_length=32)


class BaselineBase(SQLModel):
    """A name (`main`, `nightly`) pointing at the run later runs are compared against."""

    run_id: str = Field(foreign_key="runs.id", ondelete="CASCADE", max_length=32, index=True)
    created_at: datetime = _utc_column(default_factory=utc_now)
    note: str | None = None


class Baseline(BaselineBase, table=True):
    __tablename__ = "baselines"

    name: str = Field(primary_key=True, max_length=200)


class BaselinePublic(BaselineBase):
    name: str


class PromptVersion(SQLModel, table=True):
    """The first time a version of a prompt was used in a run."""

    __tablename__ = "prompt_versions"
    __table_args__ = (sa.UniqueConstraint("name", "version", name="uq_prompt_versions_name_version"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    version: str = Field(max_length=100)
    first_seen_at: datetime = _utc_column(default_factory=utc_now)
    path: str | None = Field(default=None, max_length=1000)
    content_hash: str | None = Field(default=None, max_length=64, description="sha256 of the prompt file")
