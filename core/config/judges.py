"""LLM-judge scoring (deepeval metrics, the judge model, its cache and calibration)."""

from __future__ import annotations

from core.config.base import Section


class JudgeSettings(Section):
    """LLM-judge scoring (deepeval metrics, the judge model, its cache and calibration)."""
