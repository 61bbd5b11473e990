"""Sign-in for the dashboard: salted scrypt (or PBKDF2) password hashes and the roles they unlock.

Hashes are self-describing strings, `scrypt$<n>$<r>$<p>$<salt b64>$<key b64>` or
`pbkdf2_sha256$<iterations>$<salt b64>$<key b64>`, so parameters can be raised later without breaking
existing users. Verification always runs the key derivation, also for unknown users, so the time taken does
not tell whether a name exists.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from core.config.dashboard import DashboardSettings, Role

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
_KEY_BYTES = 32
_SALT_BYTES = 16
_DUMMY_HASH = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="


@dataclass(frozen=True, slots=True)
class User:
    """A signed-in person."""

    name: str
    role: Role

    @property
    def is_lead(self) -> bool:
        """Leads may change releases and label review items; viewers only read."""
        return self.role == "lead"


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """A salted scrypt hash of `password` for the `dashboard.users` config."""
    salt = salt if salt is not None else secrets.token_bytes(_SALT_BYTES)
    key = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, stored: str) -> bool:
    """True when `password` matches the stored hash; a malformed hash never matches."""
    parts = stored.split("$")
    try:
        if parts[0] == "scrypt" and len(parts) == 6:
            n, r, p = (int(part) for part in parts[1:4])
            salt, expected = _unb64(parts[4]), _unb64(parts[5])
            actual = _scrypt(password, salt, n, r, p, len(expected))
        elif parts[0] == "pbkdf2_sha256" and len(parts) == 4:
            salt, expected = _unb64(parts[2]), _unb64(parts[3])
            actual = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, int(parts[1]), len(expected))
        else:
            return False
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(actual, expected)


def authenticate(settings: DashboardSettings, name: str, password: str) -> User | None:
    """The user `name` when `password` is theirs, else None."""
    configured = settings.users.get(name.strip())
    # Unknown names are checked against a dummy hash so both paths cost one key derivation.
    matches = verify_password(password, configured.password_hash if configured else _DUMMY_HASH)
    if configured is None or not matches:
        return None
    return User(name=name.strip(), role=configured.role)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int = _KEY_BYTES) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * 1024 * 1024, dklen=length)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode(), validate=True)
