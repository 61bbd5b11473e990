"""Which release arm serves a request: pinned label, running experiment, canary weight or production.

Assignment is sticky: a user lands in the same bucket of `[0, 1)` on every request and every sidecar, because
the bucket is a hash of (salt, subject, experiment or `canary`, user) rather than a random draw. Requests
without a user are hashed by their request id, so they spread by weight without being sticky.
"""

from __future__ import annotations

import hashlib

from core.releases.snapshot import Arm, SubjectState
from core.tables.releases import CANARY, PRODUCTION

_SCALE = float(1 << 64)


def bucket(salt: str, subject: str, scope: str, unit: str) -> float:
    """The user's (or request's) position in `[0, 1)` for one subject and one rollout (`scope`)."""
    digest = hashlib.blake2b(f"{salt}\0{subject}\0{scope}\0{unit}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def choose_arm(state: SubjectState, unit: str, salt: str, pinned: str | None = None) -> Arm | None:
    """The arm that serves `unit` (a user id, else a request id); None when nothing is released.

    `pinned` asks for one label (`production`, `canary`, `shadow`) or experiment arm by name, e.g. to test a
    canary by hand; it returns None when that label or arm does not exist.
    """
    if pinned is not None:
        return _pinned(state, pinned)
    experiment = state.experiment
    if experiment is not None and experiment.arms:
        position = bucket(salt, state.subject, experiment.name, unit) * experiment.total_weight
        for arm in experiment.arms:
            position -= arm.weight
            if position < 0:
                return arm
        return experiment.arms[-1]
    canary = state.labels.get(CANARY)
    production = state.labels.get(PRODUCTION)
    if canary is not None and (production is None or bucket(salt, state.subject, CANARY, unit) < canary.weight):
        return canary
    return production


def _pinned(state: SubjectState, pinned: str) -> Arm | None:
    if pinned in state.labels:
        return state.labels[pinned]
    if state.experiment is not None:
        for arm in state.experiment.arms:
            if arm.variant == pinned:
                return arm
    return None
