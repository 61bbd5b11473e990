"""The access stage: who may call (virtual keys), which models, how often (rate limits), how much (budgets).

On the request path it reads the current `AccessSnapshot` and asks the counters (a dict, or one Redis
pipeline); it never touches the database. `on_done` counts the request's tokens and cost. A background task
reloads the snapshot every `access.refresh_s` and looks for cost alerts every `access.alert_interval_s`.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from core import tag_policy
from core.alerts import evaluate_alerts
from core.budgets import Limit, Window, window_of
from core.costs import CACHE_HITS
from core.keys import TOKEN_PREFIX, hash_token
from core.pricing import DEFAULT_PRICES, PriceBook
from core.settings import Price, Settings
from sidecar.access.counters import Counters
from sidecar.access.reservation import used_tokens, worst_case_cost
from sidecar.access.state import AccessSnapshot, KeyInfo, load_snapshot, spend_id
from sidecar.callers import INTERNAL_HEADER
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
        self._tags = tag_policy.TagPolicy.from_settings(settings)
        self._windows: dict[str, Window] = {}
        self._windows_until = 0.0
        self._applying_cache: dict[tuple[str | None, str | None, str | None], _Applying] = {}
        self._internal_secret = secrets.token_urlsafe(32)
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.listening = asyncio.Event()
        """Set once the stage is subscribed to announced changes (Redis only)."""
        self.reloads = 0
        counters.rebase(snapshot.spend, counters.snapshot())

    # -- request path ---------------------------------------------------------------------------------

    async def on_request(self, exchange: Exchange) -> Reply | None:
        key = self.authenticate(exchange.headers)
        record = exchange.record
        if key is not None:
            record.key_id = key.id
            if record.user is None and key.user:
                record.user = self._tags.user(key.user)  # a key's owner is stored like any user id
            model = exchange.payload.get("model")
            if isinstance(model, str) and not key.allows(model):
                raise Forbidden(f"key '{key.name}' may not call model '{model}'", param="model", code="model_not_allowed")
        budgets, spend_ids = self._applying(key, record.user, record.feature)
        limited = key is not None and (key.requests_per_minute or key.tokens_per_minute)
        if not limited and not budgets:
            return None
        key_id = key.id if limited and key is not None else None
        reserve = self._worst_case(exchange) if budgets else 0.0
        limits = [limit.limit_usd for limit, _, _ in budgets]
        usage = await self.counters.admit(key_id, spend_ids, limits, reserve)
        reserved = reserve if usage.exhausted is None else 0.0
        if limited and key is not None:
            try:
                _check_rates(key, usage.requests, usage.tokens)
            except RateLimited:
                self.counters.add(None, 0, spend_ids, 0.0, reserved)  # refused: give the reservation back
                raise
        if usage.exhausted is not None:
            limit, subject, window = budgets[usage.exhausted]
            raise RateLimited(
                f"{limit.scope} '{subject}' has spent its {limit.period} budget of ${limit.limit_usd:g} "
                f"(${usage.spend[usage.exhausted]:.4f} in {window.label}, requests in flight included); "
                f"it resets at {window.end:%Y-%m-%dT%H:%MZ}",
                retry_after_s=max(window.end.timestamp() - time.time(), 1.0),
                code="budget_exceeded",
            )
        exchange.state["access"] = (key_id, spend_ids, reserved)
        return None

    def on_done(self, exchange: Exchange) -> None:
        """Count tokens and settle the budget reservation to the real cost (released when nothing was used)."""
        counted = exchange.state.get("access")
        if counted is None:
            return
        key_id, spend_ids, reserved = counted
        record = exchange.record
        tokens_in = tokens_out = 0
        if record.cache_status not in CACHE_HITS:  # a cache hit: no upstream tokens, no cost
            tokens_in, tokens_out = used_tokens(exchange)
        cost = 0.0
        model = record.served_model or record.requested_model
        price = self._price(model) if model and (tokens_in or tokens_out) else None
        if price is not None:
            cost = (tokens_in * price.input_per_mtok + tokens_out * price.output_per_mtok) / 1_000_000
        if tokens_in or tokens_out or reserved:
            self.counters.add(key_id, tokens_in + tokens_out, spend_ids, cost, reserved)

    def _worst_case(self, exchange: Exchange) -> float:
        model = exchange.payload.get("model")
        return worst_case_cost(exchange, self._price(model) if isinstance(model, str) else None, self.access)

    def authenticate(self, headers: Mapping[str, str]) -> KeyInfo | None:
        """The caller's live key: a batch request's internal credential, else the bearer token.

        Raises `Unauthorized` for an unknown or revoked key, a forged internal credential, or no key when
        keys are required. None means an anonymous caller (keys not required).
        """
        internal = headers.get(INTERNAL_HEADER)
        if internal is not None:
            return self._internal_key(internal)
        token = _bearer(headers.get("authorization"))
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

    def internal_credential(self, key_id: str) -> str:
        """The `INTERNAL_HEADER` value that makes an in-process call (the batch worker's) run as `key_id`.

        It holds a random secret of this process, never sent over the network nor stored; a client that
        sends the header without it is refused.
        """
        return f"{self._internal_secret}:{key_id}"

    def _internal_key(self, credential: str) -> KeyInfo:
        secret, _, key_id = credential.partition(":")
        if not hmac.compare_digest(secret.encode(), self._internal_secret.encode()):
            raise Unauthorized("invalid internal credential", code="invalid_api_key")
        key = self.snapshot.by_id.get(key_id)
        if key is None:
            raise Unauthorized("the key that created this batch is unknown or revoked", code="invalid_api_key")
        return key

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
        """Start the refresh loop, the change listener (Redis) and, beside them, the price warm-up.

        Keys never wait for prices: litellm's map may take 20-30 s to import, and a key revoked meanwhile
        must be refused at once. Until a price is warm, `_price` uses configured and built-in prices only.
        """
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._run(), name="tollgate-access-refresh"),
                       loop.create_task(self._warm_prices(models), name="tollgate-access-prices")]
        if self.settings.redis_url:
            from sidecar.access.changes import listen_for_changes

            self._tasks.append(loop.create_task(
                listen_for_changes(self.settings.redis_url, self.refresh_soon, self.listening),
                name="tollgate-access-changes"))

    def refresh_soon(self) -> None:
        """Reload now instead of at the next interval (after an admin change here or an announced one)."""
        self._wake.set()

    async def reload_now(self) -> None:
        """Reload at once and return when done (after an admin change on this sidecar); failures are logged."""
        await self._guarded("refresh keys and budgets", self.refresh)

    async def refresh(self) -> None:
        """Reload keys, budgets and spend from the database (in a thread)."""
        started = self.counters.snapshot()
        snapshot = await asyncio.to_thread(load_snapshot, self.engine, self.access)
        self.snapshot = snapshot
        self._applying_cache.clear()
        self.counters.rebase(snapshot.spend, started)
        self.reloads += 1

    async def _warm_prices(self, models: list[str]) -> None:
        book = PriceBook(self.settings)
        for model in models:
            price = await asyncio.to_thread(book.price, model)
            self._prices[model] = price

    async def _run(self) -> None:
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
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
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
