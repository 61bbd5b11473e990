"""Virtual keys, rate limits, budgets, cost alerts and releases (labels, canary, shadow, A/B)."""

from __future__ import annotations

from core.config.base import Section


class AccessSettings(Section):
    """Virtual keys, rate limits, budgets, cost alerts and releases (labels, canary, shadow, A/B)."""
