"""The error raised when the embedded model cannot be located, started or kept running."""

from __future__ import annotations

from core.errors import TollgateError


class EmbeddedModelError(TollgateError):
    """The embedded llama.cpp model is missing or failed; the message says what to do about it."""
