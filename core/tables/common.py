"""Helpers shared by the table modules."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    """The current time, timezone-aware (sqlmodel rejects naive datetimes)."""
    return datetime.now(UTC)
