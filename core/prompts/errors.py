"""The root of every error the prompt registry raises on purpose."""

from __future__ import annotations

from core.errors import TollgateError


class PromptError(TollgateError):
    """A prompt file is invalid, missing, or cannot be rendered; the message is one readable line."""
