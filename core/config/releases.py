"""Releases: prompt labels, canary weights, shadow mirroring, A/B experiments and the promotion gate."""

from __future__ import annotations

from core.config.base import Section


class ReleaseSettings(Section):
    """Releases: prompt labels, canary weights, shadow mirroring, A/B experiments and the promotion gate."""
