"""The access stage: who may call (virtual keys), which models, how often (rate limits), how much (budgets).

On the request path it reads the current `AccessSnapshot` and asks the counters (a dict, or one Redis
pipeline); it never touches the database. `on_done` counts the request's tokens and cost. A background task
reloads the snapshot every `access.refresh_s` and looks for cost alerts every `access.alert_interval_s`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from core.alerts import evaluate_alerts
from core.budgets import Limit, Window, window_of
from core.costs import CACHE_HITS
from core.keys import TOKEN_PREFIX, hash_token
from core.pricing import DEFAULT_PRICES, PriceBook
from core.settings import Price, Settings
from core.sse import parse_events
from sidecar.access.counters import Counters
from sidecar.access.state import AccessSnapshot, KeyInfo, load_snapshot, spend_id
from sidecar.errors import Forbidden, RateLimited, Unauthorized
from sidecar.pipeline import BaseStage, Exchange, Reply

log = logging.getLogger("tollgate.sidecar.access")

_MINUTE = 60.0
_CACHE_LIMIT = 10_000
_Applying = tuple[list[tuple[Limit, str, Window]], list[str]]
_NONE: _Applying = ([], [])


class AccessStage(BaseStage):
    """Virtual keys, per-key models, rate limits and budgets (see the module docstring)."""

    name = "access"

    def __init__(self, settings: Settings, engine: Any, counters: Counters, snapshot: AccessSnapshot) -> None:
        self.settings = settings
        self.access = settings.access
        self.engine = engine
        self.counters = counters
        self.snapshot = snapshot
        self._prices: dict[str, Price | None] = {}
        self._windows: dict[str, Window] = {}
        self._windows_until = 0.0
        self._applying_cache: dict[tuple[str | None, str | None, str | None], _Applying] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        counters.rebase(snapshot.spend, counters.snapshot())

    # -- request path ---------------------------------------------------------------------------------

    async def on_request(self, exchange: Exchange) -> Reply | None:
        key = self._key(exchange.headers.get("authorization"))
        record = exchange.record
        if key is not None:
            record.key_id = key.id
            if record.user is None and key.user:
                record.user = key.user
            model = exchange.payload.get("model")
            if isinstance(model, str) and not key.allows(model):
                raise Forbidden(f"key '{key.name}' may not call model '{model}'", param="model", code="model_not_allowed")
        budgets, spend_ids = self._applying(key, record.user, record.feature)
        limited = key is not None and (key.requests_per_minute or key.tokens_per_minute)
        if not limited and not budgets:
            return None
        usage = await self.counters.admit(key.id if limited and key is not None else None, spend_ids)
        if limited and key is not None:
            _check_rates(key, usage.requests, usage.tokens)
        for (limit, subject, window), spent in zip(budgets, usage.spend, strict=True):
            if spent >= limit.limit_usd:
                raise RateLimited(
                    f"{limit.scope} '{subject}' has spent its {limit.period} budget of ${limit.limit_usd:g} "
                    f"(${spent:.4f} in {window.label}); it resets at {window.end:%Y-%m-%dT%H:%MZ}",
                    retry_after_s=max(window.end.timestamp() - time.time(), 1.0),
                    code="budget_exceeded",
                )
        exchange.state["access"] = (key.id if limited and key is not None else None, spend_ids)
        return None

    def on_done(self, exchange: Exchange) -> None:
        counted = exchange.state.get("access")
        if counted is None:
            return
        key_id, spend_ids = counted
        record = exchange.record
        if record.cache_status in CACHE_HITS:
            return  # answered from the cache: no upstream tokens, no cost
        tokens_in, tokens_out = _tokens(exchange)
        if not tokens_in and not tokens_out:
            return
        cost = 0.0
        model = record.served_model or record.requested_model
        price = self._price(model) if model else None
        if price is not None:
            cost = (tokens_in * price.input_per_mtok + tokens_out * price.output_per_mtok) / 1_000_000
        self.counters.add(key_id, tokens_in + tokens_out, spend_ids, cost)

    def _key(self, authorization: str | None) -> KeyInfo | None:
        token = _bearer(authorization)
        if token is not None and token.startswith(TOKEN_PREFIX):
            key = self.snapshot.keys.get(hash_token(token))
            if key is None:
                raise Unauthorized("unknown or revoked virtual key", code="invalid_api_key")
            return key
        if self.access.require_keys:
            raise Unauthorized(
                "this sidecar needs a virtual key: send 'Authorization: Bearer tg-...'", code="missing_api_key"
            )
        return None

    def _applying(self, key: KeyInfo | None, user: str | None, feature: str | None) -> _Applying:
        """The budgets covering this key, user and feature with their counter names (cached per snapshot)."""
        if not self.snapshot.budgets:
            return _NONE
        windows = self._current_windows()
        cache_key = (key.id if key is not None else None, user, feature)
        found = self._applying_cache.get(cache_key)
        if found is None:
            subjects = {"key": cache_key[0], "user": user, "feature": feature}
            budgets = [(limit, subject, windows[limit.period])
                       for limit, subject in self.snapshot.budgets.applying(subjects)]
            ids = [spend_id(limit.scope, subject, limit.period, window.label) for limit, subject, window in budgets]
            if len(self._applying_cache) >= _CACHE_LIMIT:
                self._applying_cache.clear()
            found = self._applying_cache[cache_key] = (budgets, ids)
        return found

    def _current_windows(self) -> dict[str, Window]:
        now = time.time()
        if now >= self._windows_until:
            self._applying_cache.clear()
            moment = datetime.fromtimestamp(now, UTC)
            self._windows = {period: window_of(period, moment) for period in ("daily", "monthly")}
            self._windows_until = min(w.end.timestamp() for w in self._windows.values())
        return self._windows

    def _price(self, model: str) -> Price | None:
        try:
            return self._prices[model]
        except KeyError:
            # Not warmed (a model outside the routes): configured or built-in prices only, never an import here.
            price = self.settings.price_for(model) or DEFAULT_PRICES.get(model)
            self._prices[model] = price
            return price

    # -- background ------------------------------------------------------------------------------------

    def start(self, models: list[str]) -> None:
        """Warm prices (litellm's map may take seconds to import) and start the refresh loop."""
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._run(models))

    def refresh_soon(self) -> None:
        """Reload now instead of at the next interval (after an admin change on this sidecar)."""
        self._wake.set()

    async def refresh(self) -> None:
        """Reload keys, budgets and spend from the database (in a thread)."""
        started = self.counters.snapshot()
        snapshot = await asyncio.to_thread(load_snapshot, self.engine, self.access)
        self.snapshot = snapshot
        self._applying_cache.clear()
        self.counters.rebase(snapshot.spend, started)

    async def _run(self, models: list[str]) -> None:
        book = PriceBook(self.settings)
        prices = await asyncio.to_thread(lambda: {model: book.price(model) for model in models})
        self._prices.update(prices)
        next_alerts = time.monotonic() + self.access.alert_interval_s
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.access.refresh_s)
            except TimeoutError:
                pass
            self._wake.clear()
            await self._guarded("refresh keys and budgets", self.refresh)
            if time.monotonic() >= next_alerts:
                next_alerts = time.monotonic() + self.access.alert_interval_s
                await self._guarded("evaluate cost alerts", self._alerts)

    async def _alerts(self) -> None:
        fresh = await asyncio.to_thread(evaluate_alerts, self.engine, self.access)
        for alert in fresh:
            log.warning("cost alert: %s", alert["message"])

    async def _guarded(self, what: str, step: Callable[[], Any]) -> None:
        try:
            await step()
        except Exception as exc:  # noqa: BLE001 - boundary: the database may be away; keep the last snapshot
            log.warning("access: could not %s: %s", what, exc)

    async def aclose(self) -> None:
        """Stop the background task and close the counters."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.counters.aclose()


def _check_rates(key: KeyInfo, requests: float, tokens: float) -> None:
    retry = _MINUTE - time.time() % _MINUTE
    if key.requests_per_minute and requests > key.requests_per_minute:
        raise RateLimited(
            f"key '{key.name}' is over its limit of {key.requests_per_minute} requests per minute",
            retry_after_s=retry,
            code="rate_limit_exceeded",
        )
    if key.tokens_per_minute and tokens >= key.tokens_per_minute:
        raise RateLimited(
            f"key '{key.name}' used its {key.tokens_per_minute} tokens per minute",
            retry_after_s=retry,
            code="tokens_per_minute_exceeded",
        )


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _tokens(exchange: Exchange) -> tuple[int, int]:
    """Reported tokens; when the upstream reported none, a rough estimate (4 bytes a token, an event a token)."""
    tokens_in, tokens_out = exchange.usage[0], exchange.usage[1]
    record = exchange.record
    if tokens_in is None and tokens_out is None and record.status >= 400:
        return 0, 0
    if tokens_in is None:
        tokens_in = len(record.request_body or b"") // 4
    if tokens_out is None:
        if record.stream:
            tokens_out = sum(not event.done for event in parse_events(record.response_chunks))
        else:
            tokens_out = len(record.response_body or b"") // 4
    return int(tokens_in), int(tokens_out)
