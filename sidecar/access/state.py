"""What the access stage knows from the database: live keys, budgets and spend, as one immutable snapshot.

Loaded once at start-up and then by a background task every `access.refresh_s` (and right after an admin
change on this sidecar); the request path only ever reads the current snapshot.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine

from core.budgets import BudgetBook, all_limits, spend_by_scope, window_of
from core.config.access import AccessSettings
from core.keys import allowed_models, list_keys
from core.tables.common import utc_now


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """A live virtual key as the request path needs it."""

    id: str
    name: str
    user: str | None
    models: tuple[str, ...] | None
    requests_per_minute: int | None
    tokens_per_minute: int | None
    _exact: frozenset[str] = field(default=frozenset())

    def allows(self, model: str) -> bool:
        """Whether the key may call `model` (names or shell-style globs such as `gpt-4o*`)."""
        if self.models is None or model in self._exact:
            return True
        return any(fnmatch.fnmatchcase(model, pattern) for pattern in self.models)


@dataclass(frozen=True, slots=True)
class AccessSnapshot:
    """Keys by token hash, budgets, and each budget window's spend as the database last had it."""

    keys: dict[str, KeyInfo]
    budgets: BudgetBook
    spend: dict[str, float]
    loaded_at: datetime
    by_id: dict[str, KeyInfo] = field(default_factory=dict)
    """The same keys by key id (filled from `keys`): batch requests run as the key id that created them."""

    def __post_init__(self) -> None:
        if not self.by_id and self.keys:
            object.__setattr__(self, "by_id", {key.id: key for key in self.keys.values()})


def spend_id(scope: str, subject: str, period: str, label: str) -> str:
    """The counter name of one subject's budget window, e.g. `user:ana:daily:2026-11-27`."""
    return f"{scope}:{subject}:{period}:{label}"


def load_snapshot(engine: Engine, settings: AccessSettings, now: datetime | None = None) -> AccessSnapshot:
    """Read keys, budgets and current-window spend (blocking: call it from a thread or at start-up)."""
    now = now or utc_now()
    keys: dict[str, KeyInfo] = {}
    for key in list_keys(engine):
        models = allowed_models(key)
        info = KeyInfo(
            id=key.id,
            name=key.name,
            user=key.user,
            models=tuple(models) if models is not None else None,
            requests_per_minute=key.requests_per_minute or settings.default_requests_per_minute,
            tokens_per_minute=key.tokens_per_minute or settings.default_tokens_per_minute,
            _exact=frozenset(m for m in models or () if not any(c in m for c in "*?[")),
        )
        keys[key.key_hash] = info
    book = BudgetBook(all_limits(engine, settings.budgets))
    spend: dict[str, float] = {}
    for (scope, period), by_subject in spend_by_scope(engine, book.scope_periods(), now).items():
        label = window_of(period, now).label
        for subject, amount in by_subject.items():
            spend[spend_id(scope, subject, period, label)] = amount
    return AccessSnapshot(keys, book, spend, now)


def empty_snapshot() -> AccessSnapshot:
    return AccessSnapshot({}, BudgetBook(()), {}, utc_now())


def describe_snapshot(snapshot: AccessSnapshot) -> dict[str, Any]:
    """Counts for logs and the admin API."""
    return {"keys": len(snapshot.keys), "budgets": len(snapshot.budgets.limits), "loaded_at": snapshot.loaded_at.isoformat()}
