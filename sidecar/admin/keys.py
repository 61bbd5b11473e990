"""Admin routes for virtual keys, budgets, cost alerts and cost rollups.

The handlers call the same `core` functions as `tollgate keys`, in a thread (the database is blocking),
and ask this sidecar's access stage to reload at once; other sidecars see the change within
`access.refresh_s`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from core.alerts import describe_alert, list_alerts
from core.budgets import BudgetError, BudgetNotFound, add_budget, delete_budget, describe_budget, list_budgets
from core.costs import CostQueryError, cost_by
from core.keys import AccessError, KeyNotFound, create_key, describe_key, list_keys, revoke_key
from sidecar.admin.router import JsonRequest, JsonRouter
from sidecar.errors import InvalidRequest, NotFound

T = TypeVar("T")
Handler = Callable[[JsonRequest], Awaitable[tuple[int, Any]]]


def add_key_routes(router: JsonRouter, runtime: Any) -> None:
    """`/admin/keys`, `/admin/budgets`, `/admin/alerts` and `/admin/costs`."""
    routes = _KeyRoutes(runtime)
    router.add("POST", "/keys", routes.create_key)
    router.add("GET", "/keys", routes.list_keys)
    router.add("DELETE", "/keys/{key_id}", routes.revoke_key)
    router.add("POST", "/budgets", routes.set_budget)
    router.add("GET", "/budgets", routes.list_budgets)
    router.add("DELETE", "/budgets/{budget_id}", routes.delete_budget)
    router.add("GET", "/alerts", routes.list_alerts)
    router.add("GET", "/costs", routes.costs)


class _KeyRoutes:
    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime

    async def create_key(self, request: JsonRequest) -> tuple[int, Any]:
        """Create a key; the token is in this answer only. An optional budget_usd becomes the key's budget."""
        body = request.json()
        models = body.get("allowed_models")
        if models is not None and (not isinstance(models, list) or not all(isinstance(m, str) for m in models)):
            raise InvalidRequest("allowed_models must be a list of model names", param="allowed_models")
        budget = _number(body, "budget_usd")
        period = body.get("budget_period", "daily")

        def work() -> dict[str, Any]:
            engine = self._engine()
            created = create_key(
                engine,
                _string(body, "name", required=True) or "",
                user=_string(body, "user"),
                allowed_models=models,
                requests_per_minute=_integer(body, "requests_per_minute"),
                tokens_per_minute=_integer(body, "tokens_per_minute"),
            )
            document = {"key": created.token, **describe_key(created.key)}
            if budget is not None:
                document["budget"] = describe_budget(add_budget(engine, "key", created.key.id, str(period), budget))
            return document

        document = await self._call(work)
        return 201, document

    async def list_keys(self, request: JsonRequest) -> tuple[int, Any]:
        everything = request.query.get("include_revoked", "") in ("1", "true", "yes")
        keys = await self._call(lambda: list_keys(self._engine(), include_revoked=everything), refresh=False)
        return 200, {"object": "list", "data": [describe_key(key) for key in keys]}

    async def revoke_key(self, request: JsonRequest) -> tuple[int, Any]:
        key = await self._call(lambda: revoke_key(self._engine(), request.params["key_id"]))
        return 200, describe_key(key)

    async def set_budget(self, request: JsonRequest) -> tuple[int, Any]:
        body = request.json()
        limit = _number(body, "limit_usd")
        if limit is None:
            raise InvalidRequest("a budget needs limit_usd", param="limit_usd")
        budget = await self._call(lambda: add_budget(
            self._engine(),
            _string(body, "scope", required=True) or "",
            _string(body, "subject", required=True) or "",
            _string(body, "period") or "daily",
            limit,
        ))
        return 201, describe_budget(budget)

    async def list_budgets(self, request: JsonRequest) -> tuple[int, Any]:
        budgets = await self._call(lambda: list_budgets(self._engine()), refresh=False)
        return 200, {"object": "list", "data": [describe_budget(budget) for budget in budgets]}

    async def delete_budget(self, request: JsonRequest) -> tuple[int, Any]:
        text = request.params["budget_id"]
        budget_id = int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else 0
        if budget_id <= 0:  # not an id a database row can have (SQLite integers are 64-bit)
            raise NotFound(f"no budget with id {text[:40]!r}")
        await self._call(lambda: delete_budget(self._engine(), budget_id))
        return 200, {"id": budget_id, "deleted": True}

    async def list_alerts(self, request: JsonRequest) -> tuple[int, Any]:
        since = _moment(request.query.get("since"), "since")
        kind = request.query.get("kind") or None
        limit = _query_int(request.query.get("limit"), 200)
        alerts = await self._call(lambda: list_alerts(self._engine(), since=since, kind=kind, limit=limit), refresh=False)
        return 200, {"object": "list", "data": [describe_alert(alert) for alert in alerts]}

    async def costs(self, request: JsonRequest) -> tuple[int, Any]:
        """Costs per model, user, feature or key over [since, until) (default: the last 24 hours)."""
        until = _moment(request.query.get("until"), "until") or datetime.now(UTC)
        since = _moment(request.query.get("since"), "since") or until - timedelta(days=1)
        dimension = request.query.get("by", "model")
        rows = await self._call(lambda: cost_by(self._engine(), dimension, since, until), refresh=False)
        return 200, {"object": "list", "by": dimension, "since": since.isoformat(), "until": until.isoformat(),
                     "data": rows}

    def _engine(self) -> Any:
        from sidecar.admin import runtime_engine

        return runtime_engine(self.runtime)

    async def _call(self, work: Callable[[], T], *, refresh: bool = True) -> T:
        """Run blocking database work in a thread, mapping domain errors to HTTP ones."""
        try:
            result = await asyncio.to_thread(work)
        except (KeyNotFound, BudgetNotFound) as exc:
            raise NotFound(str(exc)) from exc
        except (AccessError, BudgetError, CostQueryError) as exc:
            raise InvalidRequest(str(exc)) from exc
        if refresh:
            from core.access_changes import announce_access_change
            from sidecar.access import find_access_stage

            stage = find_access_stage(self.runtime)
            if stage is not None:
                await stage.reload_now()  # in effect here when the admin call answers
            # The other sidecars: at once through Redis, else at their next poll.
            await asyncio.to_thread(announce_access_change, self.runtime.settings.redis_url)
        return result


def _string(body: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(f"{name} must be a non-empty string", param=name)
    return value.strip()


def _integer(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**63:
        raise InvalidRequest(f"{name} must be a positive integer below 2**63", param=name)
    return value


def _number(body: dict[str, Any], name: str) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        raise InvalidRequest(f"{name} must be a positive number", param=name)
    return float(value)


def _moment(text: str | None, name: str) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidRequest(f"{name} must be an ISO 8601 time, got {text!r}", param=name) from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _query_int(text: str | None, default: int) -> int:
    if not text:
        return default
    try:
        return max(1, min(int(text), 10_000))
    except ValueError as exc:
        raise InvalidRequest(f"limit must be an integer, got {text!r}", param="limit") from exc
