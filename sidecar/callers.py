"""Who calls a non-proxy route (`/v1/models`, `/v1/files`, `/v1/batches`, `/v1/feedback`), and what they may see.

The proxied endpoints are checked by the access stage itself. Every other `/v1` route asks `identify` for
the caller before doing anything: with `access.require_keys`, no key (or a revoked one) is 401 there too.
Files and batches belong to the key that created them; a caller sees only its own, and the admin key (the
admin API's bearer token) sees all.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Caller:
    """The key a request came with (None: no key, keys not required), or the admin."""

    key_id: str | None = None
    admin: bool = False

    def sees(self, owner_key_id: str | None) -> bool:
        """Whether an object owned by `owner_key_id` exists for this caller (others' objects are 404)."""
        return self.admin or owner_key_id == self.key_id


INTERNAL_HEADER = "x-tollgate-internal-key"
"""Carries the access stage's `internal_credential(key_id)` on the batch worker's in-process calls."""
ANONYMOUS = Caller()
Identify = Callable[[Mapping[str, str]], Caller]
"""Headers (lower-cased names) -> the caller; raises `Unauthorized` when the request may not go on."""


def build_identify(runtime: Any) -> Identify:
    """The caller check of this sidecar: the admin key, else the access stage's keys, else anonymous."""
    settings = runtime.settings
    admin_key = settings.access.admin_key()
    stage = None
    if settings.access.active:
        from sidecar.access import find_access_stage

        stage = find_access_stage(runtime)

    def identify(headers: Mapping[str, str]) -> Caller:
        if admin_key and _is_admin(headers.get("authorization"), admin_key):
            return Caller(admin=True)
        if stage is None:
            return ANONYMOUS
        key = stage.authenticate(headers)
        return Caller(key.id) if key is not None else ANONYMOUS

    return identify


def _is_admin(authorization: str | None, admin_key: str) -> bool:
    scheme, _, token = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), admin_key.encode())
