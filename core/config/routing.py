"""Routing rules, caching, queue-based admission and batch jobs in the sidecar."""

from __future__ import annotations

from core.config.base import Section


class RoutingSettings(Section):
    """Routing rules, caching, queue-based admission and batch jobs in the sidecar."""
