"""Moving release labels: promote (gate-checked), canary, shadow, clear and rollback, each audited.

Every change is one transaction that moves the label, appends to `release_audit` and bumps
`release_revision`, so a sidecar that sees the new revision also sees the new label. A prompt version's text is
stored (`release_prompt_source`) the first time it is labelled, which is what lets any sidecar render it and
lets a rollback return to a version whose file has since changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from core.config.releases import GatePolicySettings
from core.prompts import PromptError, PromptRegistry
from core.releases.errors import GateRefused, ReleaseError
from core.releases.gate import GateDecision, evaluate_gate
from core.releases.subjects import check_subject
from core.tables.common import utc_now
from core.tables.releases import (
    CANARY,
    KIND_MODEL,
    KIND_PROMPT,
    LABELS,
    PRODUCTION,
    SHADOW,
    PromptSource,
    ReleaseAudit,
    ReleaseLabel,
    ReleaseRevision,
)

_MIN_PREFIX = 4


@dataclass(frozen=True, slots=True)
class Target:
    """What a label points at: a prompt version and/or the model that serves it."""

    version: str | None
    model: str | None

    def describe(self) -> str:
        parts = [part for part in (self.version, f"model {self.model}" if self.model else None) if part]
        return " ".join(parts) or "-"


@dataclass(frozen=True, slots=True)
class LabelState:
    """One label of one subject as stored."""

    subject: str
    label: str
    kind: str
    target: Target
    weight: float
    updated_at: datetime
    updated_by: str | None


@dataclass(frozen=True, slots=True)
class ReleaseChange:
    """The outcome of one label change (and its audit id)."""

    subject: str
    label: str
    action: str
    before: Target | None
    after: Target | None
    weight: float | None
    forced: bool
    gate: GateDecision | None
    audit_id: int


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    subject: str
    label: str | None
    action: str
    before: Target | None
    after: Target | None
    weight: float | None
    forced: bool
    reason: str | None
    actor: str | None
    run_id: str | None
    gate: dict[str, Any] | None


def release_status(engine: Engine, subject: str | None = None) -> list[LabelState]:
    """Every label (of one subject, or of all), ordered by subject then production, canary, shadow."""
    query = select(ReleaseLabel)
    if subject is not None:
        query = query.where(ReleaseLabel.subject == subject)
    with Session(engine) as session:
        rows = session.exec(query).all()
        states = [
            LabelState(r.subject, r.label, r.kind, Target(r.version, r.model), r.weight, r.updated_at, r.updated_by)
            for r in rows
        ]
    order = {label: index for index, label in enumerate(LABELS)}
    return sorted(states, key=lambda s: (s.subject, order.get(s.label, 9)))


def promote(
    engine: Engine,
    subject: str,
    *,
    version: str | None = None,
    model: str | None = None,
    policy: GatePolicySettings | None = None,
    registry: PromptRegistry | None = None,
    force: bool = False,
    reason: str | None = None,
    actor: str | None = None,
) -> ReleaseChange:
    """Point `production` at a version (and/or model) if its latest suite run passed the gate.

    `force=True` skips a failing gate but needs a `reason`; the decision and the reason are audited. A canary
    on the same target is cleared (it graduated). Raises `GateRefused` with the decision when refused.
    """
    if force and not (reason and reason.strip()):
        raise ReleaseError("a forced promotion needs a reason (--reason)")
    kind, target = resolve_target(engine, subject, version, model, registry)
    decision = evaluate_gate(engine, subject, version=target.version if kind == KIND_PROMPT else None,
                             model=target.model, policy=policy)
    if not decision.passed and not force:
        raise GateRefused(decision)
    forced = force and not decision.passed
    with Session(engine) as session:
        change = _move(session, subject, PRODUCTION, kind, target, 1.0, "promote", actor=actor, reason=reason,
                       forced=forced, decision=decision)
        canary = session.get(ReleaseLabel, (subject, CANARY))
        if canary is not None and Target(canary.version, canary.model) == target:
            _clear(session, canary, actor, "promoted to production")
        session.commit()
    return change


def set_canary(
    engine: Engine,
    subject: str,
    *,
    weight: float,
    version: str | None = None,
    model: str | None = None,
    registry: PromptRegistry | None = None,
    reason: str | None = None,
    actor: str | None = None,
) -> ReleaseChange:
    """Serve a candidate to a `weight` share (0..1) of users, sticky by user. Not gated; audited."""
    if not 0.0 < weight <= 1.0:
        raise ReleaseError(f"a canary weight is a share of traffic in (0, 1], got {weight:g}")
    return _set_label(engine, subject, CANARY, weight, Target(version, model), registry, reason, actor)


def set_shadow(
    engine: Engine,
    subject: str,
    *,
    version: str | None = None,
    model: str | None = None,
    registry: PromptRegistry | None = None,
    reason: str | None = None,
    actor: str | None = None,
) -> ReleaseChange:
    """Mirror every request of `subject` to a candidate in the background (never returned to clients)."""
    return _set_label(engine, subject, SHADOW, 1.0, Target(version, model), registry, reason, actor)


def _set_label(engine: Engine, subject: str, label: str, weight: float, wanted: Target,
               registry: PromptRegistry | None, reason: str | None, actor: str | None) -> ReleaseChange:
    kind, target = resolve_target(engine, subject, wanted.version, wanted.model, registry)
    with Session(engine) as session:
        change = _move(session, subject, label, kind, target, weight, label, actor=actor, reason=reason)
        session.commit()
    return change


def clear_label(
    engine: Engine, subject: str, label: str, *, reason: str | None = None, actor: str | None = None
) -> ReleaseChange:
    """Remove the `canary` or `shadow` label (production is moved by promote or rollback, never cleared)."""
    check_subject(subject)
    if label not in (CANARY, SHADOW):
        raise ReleaseError(f"only canary and shadow can be cleared, not {label[:40]!r}")
    with Session(engine) as session:
        row = session.get(ReleaseLabel, (subject, label))
        if row is None:
            raise ReleaseError(f"{subject} has no {label} label")
        change = _clear(session, row, actor, reason)
        session.commit()
    return change


def rollback(
    engine: Engine,
    subject: str,
    *,
    version: str | None = None,
    model: str | None = None,
    reason: str | None = None,
    actor: str | None = None,
) -> ReleaseChange:
    """Move `production` back to what it served before its last change (or to a version it served before).

    Not gated (it returns to a version that already served production); the canary is cleared with it.
    """
    check_subject(subject)
    with Session(engine) as session:
        current = session.get(ReleaseLabel, (subject, PRODUCTION))
        if current is None:
            raise ReleaseError(f"{subject} has no production label to roll back")
        now = Target(current.version, current.model)
        history = session.exec(
            select(ReleaseAudit)
            .where(ReleaseAudit.subject == subject, ReleaseAudit.label == PRODUCTION)
            .order_by(col(ReleaseAudit.id).desc())
        ).all()
        target = _rollback_target(subject, now, history, version, model)
        change = _move(session, subject, PRODUCTION, current.kind, target, 1.0, "rollback", actor=actor,
                       reason=reason)
        canary = session.get(ReleaseLabel, (subject, CANARY))
        if canary is not None:
            _clear(session, canary, actor, "rolled back")
        session.commit()
    return change


def audit_log(engine: Engine, subject: str | None = None, limit: int = 100) -> list[AuditEntry]:
    """The most recent label changes, newest first."""
    query = select(ReleaseAudit).order_by(col(ReleaseAudit.id).desc()).limit(limit)
    if subject is not None:
        query = query.where(ReleaseAudit.subject == subject)
    with Session(engine) as session:
        return [_entry(row) for row in session.exec(query).all()]


def resolve_target(
    engine: Engine, subject: str, version: str | None, model: str | None, registry: PromptRegistry | None
) -> tuple[str, Target]:
    """The kind of `subject` and the full target a change names; stores the prompt version's text.

    A prompt subject is one the registry holds or that has stored versions; `version` may be a unique
    prefix, `current` (the file on disk) or omitted (production's version, else the file's). Anything else is
    a model alias and needs `model`.
    """
    check_subject(subject)
    with Session(engine) as session:
        stored = session.exec(select(PromptSource.version).where(PromptSource.name == subject)).all()
        production = session.get(ReleaseLabel, (subject, PRODUCTION))
        on_disk = _prompt_file(registry, subject)
        if on_disk is None and not stored and (production is None or production.kind == KIND_MODEL):
            if version is not None:
                raise ReleaseError(f"unknown prompt {subject!r}: no such file and no stored version")
            if not model:
                raise ReleaseError(f"{subject!r} is not a prompt: name the model that serves it (--model)")
            return KIND_MODEL, Target(None, model)
        if version is None:
            version = production.version if production is not None and production.version else "current"
        if version == "current":
            if on_disk is None:
                raise ReleaseError(f"prompt {subject!r} has no file to take the current version from")
            version = on_disk.version
        if on_disk is not None and on_disk.version.startswith(version) and len(version) >= _MIN_PREFIX:
            version = on_disk.version
            if on_disk.version not in stored:
                session.add(PromptSource(name=subject, version=version, source=on_disk.source))
                session.commit()
            return KIND_PROMPT, Target(version, model)
        matches = [v for v in stored if v == version or (len(version) >= _MIN_PREFIX and v.startswith(version))]
        if len(matches) != 1:
            known = ", ".join(sorted(stored)) or "none stored"
            problem = "is ambiguous" if matches else "is not known"
            raise ReleaseError(f"prompt {subject!r} version {version!r} {problem} (stored versions: {known})")
        return KIND_PROMPT, Target(matches[0], model)


def store_prompt_source(engine: Engine, name: str, version: str, source: str) -> bool:
    """Keep the text of a prompt version (idempotent); True when it was new."""
    with Session(engine) as session:
        if session.get(PromptSource, (name, version)) is not None:
            return False
        session.add(PromptSource(name=name, version=version, source=source))
        session.commit()
    return True


def _prompt_file(registry: PromptRegistry | None, name: str) -> Any:
    if registry is None:
        return None
    try:
        return registry.get(name)
    except PromptError:
        return None


def _rollback_target(
    subject: str, now: Target, history: Any, version: str | None, model: str | None
) -> Target:
    served = [Target(row.to_version, row.to_model) for row in history]
    if version is not None or model is not None:
        for past in served:
            wanted = (version is None or (past.version or "").startswith(version)) and model in (None, past.model)
            if wanted and past != now:
                return past
        raise ReleaseError(f"{subject}: production never served {version or ''} {model or ''}".strip()
                           + "; use promote for a new version")
    # Rollbacks are skipped: rolling back twice goes further back rather than undoing the first rollback.
    for row in history:
        if row.action != "promote" or Target(row.to_version, row.to_model) != now:
            continue
        if row.from_version or row.from_model:
            return Target(row.from_version, row.from_model)
        break
    raise ReleaseError(f"{subject}: nothing to roll back to (production has served only {now.describe()})")


def _move(
    session: Session,
    subject: str,
    label: str,
    kind: str,
    target: Target,
    weight: float,
    action: str,
    *,
    actor: str | None,
    reason: str | None,
    forced: bool = False,
    decision: GateDecision | None = None,
) -> ReleaseChange:
    row = session.get(ReleaseLabel, (subject, label))
    before = Target(row.version, row.model) if row is not None else None
    if row is None:
        row = ReleaseLabel(subject=subject, label=label)
    row.kind, row.version, row.model, row.weight = kind, target.version, target.model, weight
    row.updated_at, row.updated_by = utc_now(), actor
    session.add(row)
    audit = ReleaseAudit(
        subject=subject, label=label, action=action,
        from_version=before.version if before else None, from_model=before.model if before else None,
        to_version=target.version, to_model=target.model, weight=weight if label == CANARY else None,
        forced=forced, reason=reason, actor=actor,
        run_id=decision.run_id if decision is not None else None,
        gate=decision.to_dict() if decision is not None else None,
    )
    session.add(audit)
    bump_revision(session)
    session.flush()
    assert audit.id is not None
    return ReleaseChange(subject, label, action, before, target, weight, forced, decision, audit.id)


def _clear(session: Session, row: ReleaseLabel, actor: str | None, reason: str | None) -> ReleaseChange:
    before = Target(row.version, row.model)
    audit = ReleaseAudit(subject=row.subject, label=row.label, action="clear", from_version=row.version,
                         from_model=row.model, reason=reason, actor=actor)
    session.delete(row)
    session.add(audit)
    bump_revision(session)
    session.flush()
    assert audit.id is not None
    return ReleaseChange(row.subject, row.label, "clear", before, None, None, False, None, audit.id)


def bump_revision(session: Session) -> None:
    """Advance the revision the sidecars poll, inside the caller's transaction."""
    table = ReleaseRevision.__table__  # type: ignore[attr-defined]
    result = session.execute(
        sa.update(table).where(table.c.id == 1).values(revision=table.c.revision + 1, changed_at=utc_now())
    )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        session.add(ReleaseRevision(id=1, revision=1))


def _entry(row: ReleaseAudit) -> AuditEntry:
    assert row.id is not None
    before = Target(row.from_version, row.from_model) if (row.from_version or row.from_model) else None
    after = Target(row.to_version, row.to_model) if (row.to_version or row.to_model) else None
    return AuditEntry(row.id, row.at, row.subject, row.label, row.action, before, after, row.weight, row.forced,
                      row.reason, row.actor, row.run_id, row.gate)
