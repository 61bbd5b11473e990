"""A/B experiments on one subject, and the business outcomes (`POST /v1/feedback`) reported per request.

An experiment splits a subject's traffic between named arms by weight, sticky by user, for as long as it runs;
while it runs it takes precedence over the canary. Each served request records its arm in the traffic log
(`experiment`, `variant`); feedback names the request, so outcomes are attributed to the arm that served it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from core.prompts import PromptRegistry
from core.releases.errors import ReleaseError
from core.releases.labels import bump_revision, resolve_target
from core.releases.snapshot import EXPERIMENT_RUNNING
from core.tables.common import utc_now
from core.tables.releases import LABELS, Experiment, Feedback, ReleaseAudit

EXPERIMENT_STOPPED = "stopped"
MAX_OUTCOME_CHARS = 100


@dataclass(frozen=True, slots=True)
class ArmSpec:
    """One arm of an experiment: a name (recorded as the traffic `variant`), what it serves and its weight."""

    name: str
    version: str | None = None
    model: str | None = None
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class ExperimentInfo:
    name: str
    subject: str
    arms: tuple[ArmSpec, ...]
    status: str
    description: str | None
    started_at: datetime
    stopped_at: datetime | None


def start_experiment(
    engine: Engine,
    name: str,
    subject: str,
    arms: Sequence[ArmSpec],
    *,
    registry: PromptRegistry | None = None,
    description: str | None = None,
    actor: str | None = None,
) -> ExperimentInfo:
    """Start splitting `subject`'s traffic between `arms` (at least two, distinct names, positive weights)."""
    _check_arms(arms)
    resolved = []
    for arm in arms:
        _, target = resolve_target(engine, subject, arm.version, arm.model, registry)
        resolved.append({"name": arm.name, "version": target.version, "model": target.model, "weight": arm.weight})
    with Session(engine) as session:
        if session.get(Experiment, name) is not None:
            raise ReleaseError(f"an experiment named {name!r} already exists")
        running = session.exec(select(Experiment.name).where(
            Experiment.subject == subject, Experiment.status == EXPERIMENT_RUNNING)).first()
        if running is not None:
            raise ReleaseError(f"{subject} already runs experiment {running!r}; stop it first")
        row = Experiment(name=name, subject=subject, arms=resolved, description=description, started_by=actor)
        session.add(row)
        session.add(ReleaseAudit(subject=subject, action="experiment_start", reason=description, actor=actor,
                                 gate={"experiment": name, "arms": resolved}))
        bump_revision(session)
        session.commit()
        session.refresh(row)
        return _info(row)


def stop_experiment(engine: Engine, name: str, *, actor: str | None = None) -> ExperimentInfo:
    """Stop an experiment: its subject goes back to the canary/production labels; its data stays."""
    with Session(engine) as session:
        row = session.get(Experiment, name)
        if row is None:
            raise ReleaseError(f"no experiment named {name!r}")
        if row.status != EXPERIMENT_RUNNING:
            raise ReleaseError(f"experiment {name!r} is not running")
        row.status, row.stopped_at = EXPERIMENT_STOPPED, utc_now()
        session.add(row)
        session.add(ReleaseAudit(subject=row.subject, action="experiment_stop", actor=actor,
                                 gate={"experiment": name}))
        bump_revision(session)
        session.commit()
        session.refresh(row)
        return _info(row)


def list_experiments(engine: Engine, *, subject: str | None = None, running_only: bool = False) -> list[ExperimentInfo]:
    """Experiments, newest first."""
    query = select(Experiment).order_by(col(Experiment.started_at).desc())
    if subject is not None:
        query = query.where(Experiment.subject == subject)
    if running_only:
        query = query.where(Experiment.status == EXPERIMENT_RUNNING)
    with Session(engine) as session:
        return [_info(row) for row in session.exec(query).all()]


def record_feedback(
    engine: Engine,
    request_id: str,
    outcome: str,
    value: float = 1.0,
    *,
    experiment: str | None = None,
    variant: str | None = None,
    user: str | None = None,
    details: dict[str, Any] | None = None,
) -> int:
    """Store one business outcome (`converted`, `thumbs_up`, `revenue` with a value...) for a served request.

    The arm is taken from the traffic log at query time (by request id), so `experiment`/`variant` are only
    needed when the caller knows better. Returns the feedback id.
    """
    if not request_id or len(request_id) > 64:
        raise ReleaseError("feedback needs the request id (x-request-id of the answer, at most 64 characters)")
    if not outcome or len(outcome) > MAX_OUTCOME_CHARS:
        raise ReleaseError(f"feedback needs an outcome name of 1..{MAX_OUTCOME_CHARS} characters")
    row = Feedback(request_id=request_id, outcome=outcome, value=float(value), experiment=experiment,
                   variant=variant, user=user, details=details)
    with Session(engine) as session:
        session.add(row)
        session.commit()
        assert row.id is not None
        return row.id


def _check_arms(arms: Sequence[ArmSpec]) -> None:
    if len(arms) < 2:
        raise ReleaseError("an experiment needs at least two arms")
    names = [arm.name for arm in arms]
    if len(set(names)) != len(names):
        raise ReleaseError(f"arm names must be distinct, got {', '.join(names)}")
    for arm in arms:
        if not arm.name or len(arm.name) > 64 or arm.name in LABELS:
            raise ReleaseError(f"arm name {arm.name!r}: 1..64 characters and not a label name ({', '.join(LABELS)})")
        if arm.weight <= 0:
            raise ReleaseError(f"arm {arm.name!r}: weight must be positive, got {arm.weight:g}")


def _info(row: Experiment) -> ExperimentInfo:
    arms = tuple(ArmSpec(str(a["name"]), a.get("version"), a.get("model"), float(a.get("weight", 1.0)))
                 for a in row.arms)
    return ExperimentInfo(row.name, row.subject, arms, row.status, row.description, row.started_at, row.stopped_at)
