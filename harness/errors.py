"""The root of every error the harness raises on purpose."""

from __future__ import annotations

from core.errors import TollgateError


class HarnessError(TollgateError):
    """A harness operation failed; the message is meant for a person to read."""
