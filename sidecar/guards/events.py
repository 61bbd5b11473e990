"""What a guard found, and what happens then: the event on the traffic record, the metric, the action.

Every trigger is appended to `record.guard_events` as `{guard, reason, action, score, threshold}` and
counted by guard, reason and action. `flag` also sets the record's review reason (the traffic writer queues
the review item); `block` raises `GuardrailBlocked` with the reason as its code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sidecar.errors import GuardrailBlocked
from sidecar.traffic.record import RawTraffic

Counter = Callable[[str, str, str], None]
"""Counts one trigger: (guard, reason, action)."""


@dataclass(frozen=True, slots=True)
class Finding:
    """A guard's verdict on one text or request: why it triggered, and the score beside its threshold."""

    reason: str
    message: str
    score: float | None = None
    threshold: float | None = None


def note(record: RawTraffic, guard: str, finding: Finding, action: str, count: Counter | None) -> None:
    """Record a trigger on the traffic record and in the metrics, without acting on it."""
    event: dict[str, Any] = {
        "guard": guard,
        "reason": finding.reason,
        "action": action,
        "score": None if finding.score is None else round(float(finding.score), 4),
        "threshold": finding.threshold,
    }
    if record.guard_events is None:
        record.guard_events = [event]
    else:
        record.guard_events.append(event)
    if count is not None:
        count(guard, finding.reason, action)


def flag(record: RawTraffic, guard: str, finding: Finding) -> None:
    """Ask for a review of this request (the first reason wins: one item per request)."""
    if record.review_reason is None:
        record.review_reason = f"guard: {guard} {finding.reason}: {finding.message}"[:500]


def act(record: RawTraffic, guard: str, finding: Finding, action: str, count: Counter | None) -> None:
    """Record the trigger, then apply `block`, `flag` or `log` (`redact` is the guard's own change)."""
    note(record, guard, finding, action, count)
    if action == "flag":
        flag(record, guard, finding)
    elif action == "block":
        raise GuardrailBlocked(f"{guard}: {finding.message}", code=finding.reason)
