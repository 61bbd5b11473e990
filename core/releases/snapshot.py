"""The release state a sidecar serves from: every label, running experiment and the prompt texts they name.

A sidecar loads a `ReleaseSnapshot` at start-up and again whenever `read_revision` moves; it never reads the
database on the request path.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from core.tables.releases import (
    KIND_PROMPT,
    SHADOW,
    Experiment,
    PromptSource,
    ReleaseLabel,
    ReleaseRevision,
)

EXPERIMENT_RUNNING = "running"
_REVISION = ReleaseRevision.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Arm:
    """What serves one share of a subject's traffic: a label (`production`, `canary`, `shadow`) or an A/B arm.

    `variant` is what the traffic log's `variant` column records; `experiment` is set for A/B arms.
    """

    variant: str
    version: str | None
    model: str | None
    weight: float = 1.0
    experiment: str | None = None


@dataclass(frozen=True, slots=True)
class ExperimentSpec:
    name: str
    arms: tuple[Arm, ...]

    @property
    def total_weight(self) -> float:
        return sum(arm.weight for arm in self.arms)


@dataclass(frozen=True, slots=True)
class SubjectState:
    """Everything released for one prompt (kind `prompt`) or model alias (kind `model`)."""

    subject: str
    kind: str
    labels: dict[str, Arm] = field(default_factory=dict)
    experiment: ExperimentSpec | None = None

    @property
    def shadow(self) -> Arm | None:
        return self.labels.get(SHADOW)


@dataclass(frozen=True, slots=True)
class ReleaseSnapshot:
    """Labels and experiments by subject, and the source text of every prompt version they name."""

    revision: int
    subjects: dict[str, SubjectState]
    sources: dict[tuple[str, str], str]

    @classmethod
    def empty(cls) -> ReleaseSnapshot:
        return cls(revision=-1, subjects={}, sources={})


def read_revision(engine: Engine) -> int:
    """The release revision counter: cheap enough to poll every second from every sidecar."""
    with engine.connect() as conn:
        value = conn.execute(sa.select(_REVISION.c.revision).where(_REVISION.c.id == 1)).scalar()
    return int(value or 0)


def load_snapshot(engine: Engine) -> ReleaseSnapshot:
    """Every label, running experiment and needed prompt source, read in one transaction."""
    with Session(engine) as session:
        revision = session.exec(select(ReleaseRevision.revision).where(ReleaseRevision.id == 1)).first() or 0
        labels = session.exec(select(ReleaseLabel)).all()
        experiments = session.exec(select(Experiment).where(Experiment.status == EXPERIMENT_RUNNING)).all()
        wanted = {(row.subject, row.version) for row in labels if row.kind == KIND_PROMPT and row.version}
        for experiment in experiments:
            wanted |= {(experiment.subject, arm["version"]) for arm in experiment.arms if arm.get("version")}
        sources: dict[tuple[str, str], str] = {}
        for name in {name for name, _ in wanted}:
            rows = session.exec(select(PromptSource).where(PromptSource.name == name)).all()
            sources.update({(row.name, row.version): row.source for row in rows if (row.name, row.version) in wanted})
    subjects: dict[str, SubjectState] = {}
    for row in labels:
        state = subjects.setdefault(row.subject, SubjectState(row.subject, row.kind))
        state.labels[row.label] = Arm(row.label, row.version, row.model, row.weight)
    for experiment in experiments:
        kind = subjects[experiment.subject].kind if experiment.subject in subjects else KIND_PROMPT
        arms = tuple(
            Arm(str(arm["name"]), arm.get("version"), arm.get("model"), float(arm.get("weight", 1.0)), experiment.name)
            for arm in experiment.arms
        )
        current = subjects.get(experiment.subject) or SubjectState(experiment.subject, kind)
        subjects[experiment.subject] = SubjectState(current.subject, current.kind, current.labels,
                                                    ExperimentSpec(experiment.name, arms))
    return ReleaseSnapshot(revision=int(revision), subjects=subjects, sources=sources)
