"""Virtual keys, rate limits, budgets and cost alerts."""

from __future__ import annotations

import os

from pydantic import Field

from core.config.base import Section


class AccessSettings(Section):
    """Virtual keys, rate limits, budgets and cost alerts."""

    admin_key_env: str = Field(
        default="TOLLGATE_ADMIN_KEY", description="Environment variable holding the admin API key; unset = admin API off"
    )

    def admin_key(self) -> str | None:
        """Read the admin key from the environment when it is needed; it is never stored in settings or logged."""
        return os.environ.get(self.admin_key_env) or None
