"""Budgets: USD limits per key, user or feature per UTC day or calendar month, and what has been spent.

Budgets come from two places: the `budget` table (admin API, `tollgate keys create --budget`) and
`access.budgets` in the config file. A subject of '*' gives every key, user or feature of that scope its
own limit. Spend is read from the cost rollups (`core.costs`), never from the traffic table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, select

from core.config.access import BudgetRule
from core.costs import cost_by, day_start, month_start, next_month
from core.errors import TollgateError
from core.tables.access import Budget
from core.tables.common import utc_now

SCOPES = ("key", "user", "feature")
PERIODS = ("daily", "monthly")
EVERY = "*"


class BudgetError(TollgateError):
    """A budget was asked for with a bad scope, period or limit."""


class BudgetNotFound(BudgetError):
    """No budget has that id."""


@dataclass(frozen=True, slots=True)
class Limit:
    """One budget as the enforcement and alerting code sees it."""

    scope: str
    subject: str
    period: str
    limit_usd: float


@dataclass(frozen=True, slots=True)
class Window:
    """The UTC day or month a budget currently counts: [start, end), with a label like 2026-11-27 or 2026-11."""

    start: datetime
    end: datetime
    label: str


def window_of(period: str, now: datetime | None = None) -> Window:
    """The current window of a daily or monthly budget."""
    now = now or utc_now()
    if period == "daily":
        start = day_start(now)
        return Window(start, start + timedelta(days=1), start.strftime("%Y-%m-%d"))
    if period == "monthly":
        start = month_start(now)
        return Window(start, next_month(now), start.strftime("%Y-%m"))
    raise BudgetError(f"budget period must be one of {', '.join(PERIODS)}, not {period!r}")


def add_budget(engine: Engine, scope: str, subject: str, period: str, limit_usd: float) -> Budget:
    """Create the budget, or change the limit of the one with the same scope, subject and period."""
    _check(scope, subject, period, limit_usd)
    with Session(engine, expire_on_commit=False) as session:
        budget = session.exec(
            select(Budget).where(Budget.scope == scope, Budget.subject == subject, Budget.period == period)
        ).first()
        if budget is None:
            budget = Budget(scope=scope, subject=subject, period=period, limit_usd=limit_usd)
        else:
            budget.limit_usd = limit_usd
        session.add(budget)
        session.commit()
        return budget


def list_budgets(engine: Engine) -> list[Budget]:
    """The budgets in the database, by scope, subject and period."""
    with Session(engine, expire_on_commit=False) as session:
        found = list(session.exec(select(Budget)))
    return sorted(found, key=lambda b: (b.scope, b.subject, b.period))


def delete_budget(engine: Engine, budget_id: int) -> None:
    """Remove a budget; an unknown id is an error."""
    with Session(engine) as session:
        budget = session.get(Budget, budget_id)
        if budget is None:
            raise BudgetNotFound(f"no budget with id {budget_id}")
        session.delete(budget)
        session.commit()


def all_limits(engine: Engine | None, rules: Sequence[BudgetRule]) -> list[Limit]:
    """Database budgets and configured ones together (a database budget wins over the same configured one)."""
    limits: dict[tuple[str, str, str], Limit] = {
        (rule.scope, rule.subject, rule.period): Limit(rule.scope, rule.subject, rule.period, rule.limit_usd)
        for rule in rules
    }
    if engine is not None:
        for budget in list_budgets(engine):
            limits[(budget.scope, budget.subject, budget.period)] = Limit(
                budget.scope, budget.subject, budget.period, budget.limit_usd
            )
    return list(limits.values())


class BudgetBook:
    """Limits indexed for the request path: which budgets apply to a key, user and feature."""

    def __init__(self, limits: Iterable[Limit]) -> None:
        self.limits = list(limits)
        self._by_subject: dict[tuple[str, str], list[Limit]] = {}
        for limit in self.limits:
            self._by_subject.setdefault((limit.scope, limit.subject), []).append(limit)

    def __bool__(self) -> bool:
        return bool(self.limits)

    def applying(self, subjects: dict[str, str | None]) -> list[tuple[Limit, str]]:
        """(limit, concrete subject) for every budget covering `subjects` ({'key': id, 'user': ..., ...})."""
        found: list[tuple[Limit, str]] = []
        for scope, subject in subjects.items():
            if not subject:
                continue
            exact = self._by_subject.get((scope, subject), [])
            found.extend((limit, subject) for limit in exact)
            exact_periods = {limit.period for limit in exact}
            found.extend(
                (limit, subject)
                for limit in self._by_subject.get((scope, EVERY), [])
                if limit.period not in exact_periods  # a named budget overrides the '*' one
            )
        return found

    def scope_periods(self) -> set[tuple[str, str]]:
        """The (scope, period) pairs any budget uses: what spend must be known for."""
        return {(limit.scope, limit.period) for limit in self.limits}


def spend_by_scope(
    engine: Engine | Connection, pairs: Iterable[tuple[str, str]], now: datetime | None = None
) -> dict[tuple[str, str], dict[str, float]]:
    """USD spent in the current window per (scope, period), per subject: one rollup query per pair."""
    spend: dict[tuple[str, str], dict[str, float]] = {}
    for scope, period in pairs:
        window = window_of(period, now)
        rows = cost_by(engine, scope, window.start, window.end)
        spend[(scope, period)] = {row[scope]: row["cost_usd"] for row in rows if row[scope]}
    return spend


def describe_budget(budget: Budget) -> dict[str, Any]:
    """A budget as JSON-ready data."""
    return {
        "id": budget.id,
        "scope": budget.scope,
        "subject": budget.subject,
        "period": budget.period,
        "limit_usd": budget.limit_usd,
    }


def _check(scope: str, subject: str, period: str, limit_usd: float) -> None:
    if scope not in SCOPES:
        raise BudgetError(f"budget scope must be one of {', '.join(SCOPES)}, not {scope!r}")
    if period not in PERIODS:
        raise BudgetError(f"budget period must be one of {', '.join(PERIODS)}, not {period!r}")
    if not subject or len(subject) > 200:
        raise BudgetError("a budget needs a subject (a key id, user or feature, or '*') of at most 200 characters")
    if not limit_usd > 0:
        raise BudgetError(f"a budget's limit must be a positive number of USD, got {limit_usd}")
