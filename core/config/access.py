"""Virtual keys, rate limits, budgets and cost alerts."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field, field_validator

from core.config.base import Section

BudgetScope = Literal["key", "user", "feature"]
BudgetPeriod = Literal["daily", "monthly"]


class BudgetRule(Section):
    """A spending limit in USD for one key, user or feature per UTC day or calendar month.

    `subject` '*' gives every key, user or feature of that scope its own limit of that size.
    """

    scope: BudgetScope
    subject: str = Field(min_length=1, max_length=200)
    period: BudgetPeriod = "daily"
    limit_usd: float = Field(gt=0)


class AccessSettings(Section):
    """Virtual keys, rate limits, budgets and cost alerts."""

    admin_key_env: str = Field(
        default="TOLLGATE_ADMIN_KEY", description="Environment variable holding the admin API key; unset = admin API off"
    )
    enabled: bool = Field(
        default=False, description="Run the access stage: virtual keys, per-key models, rate limits, budgets"
    )
    require_keys: bool = Field(
        default=False, description="Refuse requests without a valid virtual key (401); implies enabled"
    )
    default_requests_per_minute: int | None = Field(
        default=None, gt=0, description="Requests per minute for a key without its own limit; None = unlimited"
    )
    default_tokens_per_minute: int | None = Field(
        default=None, gt=0, description="Tokens (in + out) per minute for a key without its own limit"
    )
    budgets: list[BudgetRule] = Field(
        default_factory=list, description="Budgets from the config file, in addition to those in the database"
    )
    alert_thresholds: list[float] = Field(
        default_factory=lambda: [0.5, 0.8, 1.0],
        description="Fractions of a budget at which a soft alert is recorded (1.0 = spent; requests are then refused)",
    )
    spike_factor: float = Field(
        default=3.0, gt=1, description="An hour's cost above this many times its trailing median is a spike"
    )
    spike_min_usd: float = Field(
        default=1.0, ge=0, description="Hours cheaper than this are never spikes (a quiet day's noise)"
    )
    spike_window_hours: int = Field(default=24, ge=3, le=24 * 14, description="Trailing hours the median covers")
    runaway_factor: float = Field(
        default=10.0, gt=1, description="A key whose requests this hour exceed this many times its trailing median"
    )
    runaway_min_requests: int = Field(
        default=500, ge=1, description="... and at least this many requests in the hour, is a runaway key"
    )
    webhook_url_env: str | None = Field(
        default=None, description="Environment variable holding a URL that receives each new alert as JSON (POST)"
    )
    reserve_max_tokens: int = Field(
        default=4096, ge=1,
        description="Output tokens a budget reserves for a request that sets no max_tokens (settled to the real cost after)",
    )
    reserve_price_per_mtok: float = Field(
        default=10.0, ge=0,
        description="USD per million tokens a budget reserves at for a model whose price is not known (yet)",
    )
    refresh_s: float = Field(
        default=5.0, gt=0, description="How often each sidecar reloads keys, budgets and spend from the database"
    )
    alert_interval_s: float = Field(default=60.0, gt=0, description="How often a sidecar looks for new alerts")
    hash_users: bool = Field(
        default=False,
        description="Store user ids only as a keyed hash (HMAC-SHA256), stable so per-user rollups still work",
    )
    user_hash_key_env: str = Field(
        default="TOLLGATE_USER_HASH_KEY",
        description="Environment variable holding the key for hash_users; the sidecar refuses to start without it",
    )

    @field_validator("alert_thresholds")
    @classmethod
    def _fractions(cls, value: list[float]) -> list[float]:
        if any(not 0 < threshold <= 1 for threshold in value):
            raise ValueError("alert thresholds are fractions of a budget in (0, 1]")
        return sorted(set(value))

    @property
    def active(self) -> bool:
        """Whether the access stage runs."""
        return self.enabled or self.require_keys

    def admin_key(self) -> str | None:
        """Read the admin key from the environment when it is needed; it is never stored in settings or logged."""
        return os.environ.get(self.admin_key_env) or None

    def user_hash_key(self) -> str | None:
        """The key user ids are hashed with (`hash_users`); read from the environment, never stored."""
        return os.environ.get(self.user_hash_key_env) or None

    def webhook_url(self) -> str | None:
        """The alert webhook URL (it often carries a token, so it lives in the environment)."""
        return (os.environ.get(self.webhook_url_env) or None) if self.webhook_url_env else None
