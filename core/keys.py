"""Virtual API keys: created with a random token shown once, stored only as its SHA-256, revoked in place.

The CLI (`tollgate keys`), the admin API and the sidecar's access stage all go through these functions.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from core.errors import TollgateError
from core.tables.access import VirtualKey
from core.tables.common import utc_now

TOKEN_PREFIX = "tg-"
_TOKEN_BYTES = 32  # 256 bits: a plain hash is enough, nothing to brute-force
_PREFIX_CHARS = 10


class AccessError(TollgateError):
    """A key operation was asked for something that is not allowed."""


class KeyNotFound(AccessError):
    """No key has that id."""


@dataclass(frozen=True, slots=True)
class CreatedKey:
    """A new key and its secret token; the token is never stored and cannot be shown again."""

    token: str
    key: VirtualKey


def hash_token(token: str) -> str:
    """The stored form of a token: hex SHA-256."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """A fresh high-entropy token (`tg-` + 43 URL-safe characters)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(_TOKEN_BYTES)


def create_key(
    engine: Engine,
    name: str,
    *,
    user: str | None = None,
    allowed_models: Sequence[str] | None = None,
    requests_per_minute: int | None = None,
    tokens_per_minute: int | None = None,
) -> CreatedKey:
    """Store a new key and return it with its token (show the token once, then forget it)."""
    name = name.strip()
    if not name:
        raise AccessError("a key needs a name")
    for label, value in (("requests_per_minute", requests_per_minute), ("tokens_per_minute", tokens_per_minute)):
        if value is not None and value <= 0:
            raise AccessError(f"{label} must be a positive number, got {value}")
    token = new_token()
    key = VirtualKey(
        id="key_" + secrets.token_hex(8),
        name=name[:200],
        user=user,
        allowed_models=orjson.dumps(list(allowed_models)).decode() if allowed_models else None,
        requests_per_minute=requests_per_minute,
        tokens_per_minute=tokens_per_minute,
        key_hash=hash_token(token),
        prefix=token[:_PREFIX_CHARS],
    )
    with Session(engine, expire_on_commit=False) as session:
        session.add(key)
        session.commit()
    return CreatedKey(token, key)


def list_keys(engine: Engine, *, include_revoked: bool = False) -> list[VirtualKey]:
    """Keys by creation time, oldest first."""
    table = VirtualKey.__table__  # type: ignore[attr-defined]
    query = select(VirtualKey).order_by(table.c.created_at, table.c.id)
    if not include_revoked:
        query = query.where(table.c.revoked_at.is_(None))
    with Session(engine, expire_on_commit=False) as session:
        return [_aware(key) for key in session.exec(query)]


def revoke_key(engine: Engine, key_id: str) -> VirtualKey:
    """Mark a key revoked (kept for the traffic log's sake); revoking twice keeps the first time."""
    with Session(engine, expire_on_commit=False) as session:
        key = session.get(VirtualKey, key_id)
        if key is None:
            raise KeyNotFound(f"no key with id {key_id!r}")
        if key.revoked_at is None:
            key.revoked_at = utc_now()
            session.add(key)
            session.commit()
        return _aware(key)


def verify_token(engine: Engine, token: str) -> VirtualKey | None:
    """The live key for `token`, or None (unknown or revoked)."""
    with Session(engine, expire_on_commit=False) as session:
        key = session.exec(select(VirtualKey).where(VirtualKey.key_hash == hash_token(token))).first()
    if key is None or key.revoked_at is not None or not hmac.compare_digest(key.key_hash, hash_token(token)):
        return None
    return key


def allowed_models(key: VirtualKey) -> list[str] | None:
    """The key's model names or globs, or None when every model is allowed."""
    if not key.allowed_models:
        return None
    value = orjson.loads(key.allowed_models)
    return [str(item) for item in value] if isinstance(value, list) else None


def describe_key(key: VirtualKey) -> dict[str, Any]:
    """A key as JSON-ready data, without anything secret."""
    return {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "user": key.user,
        "allowed_models": allowed_models(key),
        "requests_per_minute": key.requests_per_minute,
        "tokens_per_minute": key.tokens_per_minute,
        "created_at": _iso(key.created_at),
        "revoked_at": _iso(key.revoked_at),
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _aware(key: VirtualKey) -> VirtualKey:
    """SQLite hands datetimes back without their zone; they were stored as UTC."""
    for name in ("created_at", "revoked_at"):
        moment = getattr(key, name)
        if moment is not None and moment.tzinfo is None:
            setattr(key, name, moment.replace(tzinfo=UTC))
    return key
