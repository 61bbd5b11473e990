"""The Streamlit dashboard: address, port and the users who may sign in."""

from __future__ import annotations

from core.config.base import Section


class DashboardSettings(Section):
    """The Streamlit dashboard: address, port and the users who may sign in."""
