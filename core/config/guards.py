"""Guardrails in the sidecar: the ordered guard pipelines per model, prompt or route."""

from __future__ import annotations

from core.config.base import Section


class GuardSettings(Section):
    """Guardrails in the sidecar: the ordered guard pipelines per model, prompt or route."""
