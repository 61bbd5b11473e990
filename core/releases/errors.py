"""The errors the release functions raise on purpose."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.errors import TollgateError

if TYPE_CHECKING:
    from core.releases.gate import GateDecision


class ReleaseError(TollgateError):
    """A release change that cannot be made (unknown version, nothing to roll back to, ...); one readable line."""


class GateRefused(ReleaseError):
    """Promotion to production refused because the version's latest suite run did not pass the gate."""

    def __init__(self, decision: GateDecision) -> None:
        super().__init__(
            f"{decision.subject}: promotion refused by the gate: {decision.summary()} "
            "(use --force with --reason to override; it is audited)"
        )
        self.decision = decision
