"""Admin routes for virtual keys and cost alerts."""

from __future__ import annotations

from typing import Any

from sidecar.admin.router import JsonRouter


def add_key_routes(router: JsonRouter, runtime: Any) -> None:
    """`/admin/keys` (create, list, revoke) and `/admin/alerts` (list)."""
