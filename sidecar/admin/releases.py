"""Admin routes for releases: label status, promote (gate-checked), canary, shadow, rollback, audit, variants.

    GET    /admin/releases                        labels, running experiments, this sidecar's loaded revision
    POST   /admin/releases/{subject}/promote      {"version", "model", "force", "reason", "actor"}
    POST   /admin/releases/{subject}/canary       {"version", "model", "weight", "reason", "actor"}
    POST   /admin/releases/{subject}/shadow       {"version", "model", "reason", "actor"}
    POST   /admin/releases/{subject}/rollback     {"version", "model", "reason", "actor"}
    DELETE /admin/releases/{subject}/{label}      clear the canary or shadow
    GET    /admin/releases/audit?subject=&limit=
    GET    /admin/releases/variants?prompt=&experiment=

Handlers call the `core.releases` functions the CLI calls, in a thread; a refused promotion is `409` with
code `gate_refused`. This sidecar reloads at once; the others on their next poll (or at once with Redis).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from core.prompts import PromptRegistry
from core.releases import (
    GateRefused,
    InvalidSubject,
    ReleaseError,
    audit_log,
    check_subject,
    clear_label,
    compare_variants,
    list_experiments,
    promote,
    release_status,
    rollback,
    set_canary,
    set_shadow,
)
from core.releases.documents import as_document
from core.releases.notify import publish_change
from sidecar.admin.router import JsonRequest, JsonRouter
from sidecar.errors import InvalidRequest, SidecarError

T = TypeVar("T")


class GateRefusedError(SidecarError):
    status: ClassVar[int] = 409
    type: ClassVar[str] = "invalid_request_error"
    error_class: ClassVar[str] = "client_error"
    default_code: ClassVar[str | None] = "gate_refused"


def add_release_routes(router: JsonRouter, runtime: Any) -> None:
    """Register the release routes on the `/admin` router."""
    routes = _ReleaseRoutes(runtime)
    router.add("GET", "/releases", routes.status)
    router.add("GET", "/releases/audit", routes.audit)
    router.add("GET", "/releases/variants", routes.variants)
    router.add("POST", "/releases/{subject}/promote", routes.promote)
    router.add("POST", "/releases/{subject}/canary", routes.canary)
    router.add("POST", "/releases/{subject}/shadow", routes.shadow)
    router.add("POST", "/releases/{subject}/rollback", routes.rollback)
    router.add("DELETE", "/releases/{subject}/{label}", routes.clear)


class _ReleaseRoutes:
    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self.settings = runtime.settings

    async def status(self, request: JsonRequest) -> tuple[int, Any]:
        labels = await self._call(lambda: release_status(self._engine()), changes=False)
        experiments = await self._call(lambda: list_experiments(self._engine(), running_only=True), changes=False)
        from sidecar.releases import find_release_state

        state = find_release_state(self.runtime)
        return 200, {"object": "list", "data": [as_document(label) for label in labels],
                     "experiments": [as_document(e) for e in experiments],
                     "loaded_revision": state.snapshot.revision if state is not None else None}

    async def audit(self, request: JsonRequest) -> tuple[int, Any]:
        subject, limit = request.query.get("subject") or None, _limit(request.query.get("limit"))
        entries = await self._call(lambda: audit_log(self._engine(), subject, limit), changes=False)
        return 200, {"object": "list", "data": [as_document(entry) for entry in entries]}

    async def variants(self, request: JsonRequest) -> tuple[int, Any]:
        prompt, experiment = request.query.get("prompt") or None, request.query.get("experiment") or None
        rows = await self._call(lambda: compare_variants(self._engine(), prompt_name=prompt, experiment=experiment),
                                changes=False)
        return 200, {"object": "list", "data": [as_document(row) for row in rows]}

    async def promote(self, request: JsonRequest) -> tuple[int, Any]:
        body, subject = request.json(), _subject(request)
        force = body.get("force", False)
        if not isinstance(force, bool):
            raise InvalidRequest("'force' must be true or false", param="force")
        change = await self._call(lambda: promote(
            self._engine(), subject, version=_text(body, "version"), model=_text(body, "model"),
            policy=self.settings.releases.gate, registry=self._registry(), force=force,
            reason=_text(body, "reason"), actor=_text(body, "actor") or "admin-api"))
        return 200, as_document(change)

    async def canary(self, request: JsonRequest) -> tuple[int, Any]:
        body, subject = request.json(), _subject(request)
        weight = body.get("weight")
        if not isinstance(weight, int | float) or isinstance(weight, bool):
            raise InvalidRequest("'weight' must be a number in (0, 1]", param="weight")
        change = await self._call(lambda: set_canary(
            self._engine(), subject, weight=float(weight), version=_text(body, "version"), model=_text(body, "model"),
            registry=self._registry(), reason=_text(body, "reason"), actor=_text(body, "actor") or "admin-api"))
        return 200, as_document(change)

    async def shadow(self, request: JsonRequest) -> tuple[int, Any]:
        body, subject = request.json(), _subject(request)
        change = await self._call(lambda: set_shadow(
            self._engine(), subject, version=_text(body, "version"), model=_text(body, "model"),
            registry=self._registry(), reason=_text(body, "reason"), actor=_text(body, "actor") or "admin-api"))
        return 200, as_document(change)

    async def rollback(self, request: JsonRequest) -> tuple[int, Any]:
        body, subject = request.json(), _subject(request)
        change = await self._call(lambda: rollback(
            self._engine(), subject, version=_text(body, "version"), model=_text(body, "model"),
            reason=_text(body, "reason"), actor=_text(body, "actor") or "admin-api"))
        return 200, as_document(change)

    async def clear(self, request: JsonRequest) -> tuple[int, Any]:
        subject, label = _subject(request), request.params["label"]
        change = await self._call(lambda: clear_label(self._engine(), subject, label, actor="admin-api"))
        return 200, as_document(change)

    def _engine(self) -> Any:
        from sidecar.admin import runtime_engine

        return runtime_engine(self.runtime)

    def _registry(self) -> PromptRegistry:
        return PromptRegistry(self.settings.releases.prompts_dir)

    async def _call(self, work: Callable[[], T], *, changes: bool = True) -> T:
        """Run blocking database work in a thread, mapping release errors to HTTP ones."""
        try:
            result = await asyncio.to_thread(work)
        except GateRefused as exc:
            raise GateRefusedError(str(exc)) from exc
        except ReleaseError as exc:
            raise InvalidRequest(str(exc)) from exc
        if changes:
            from sidecar.releases import find_release_state

            state = find_release_state(self.runtime)
            if state is not None:
                state.refresh_soon()
            await asyncio.to_thread(publish_change, self.settings.redis_url)
        return result


def _subject(request: JsonRequest) -> str:
    """The path's subject, checked before anything reads a file or the database (400 naming `subject`)."""
    try:
        return check_subject(request.params["subject"])
    except InvalidSubject as exc:
        raise InvalidRequest(str(exc), param="subject") from exc


def _text(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(f"'{name}' must be a non-empty string", param=name)
    return value.strip()


def _limit(text: str | None) -> int:
    try:
        return max(1, min(int(text or 100), 1000))
    except ValueError as exc:
        raise InvalidRequest(f"limit must be an integer, got {text!r}", param="limit") from exc
