"""What is kept of client-supplied tags: user, feature, segment, prompt and request ids.

Tags come from request headers (`X-Tollgate-User`, `X-Tollgate-Feature`, `X-Tollgate-Segment`,
`X-Tollgate-Prompt`, `x-request-id`) and the body's `user` field, and they go everywhere: traffic rows, cost
rollups, review items, metrics labels, spans, budget counters. So they are cleaned once, where they enter, by
the same PII policy as logged bodies (`core.redaction`): a value is also read NFKC-normalised and
percent-decoded, so `someone%40example.com` or full-width digits are caught too, and it is redacted before it
is cut to length, so a value straddling the cut is never half kept.

With `access.hash_users`, user ids are replaced by a keyed hash (HMAC-SHA256 with a secret from the
environment variable `access.user_hash_key_env`): the same user always gets the same id, so per-user cost
rollups and budgets keep working, but the stored id cannot be turned back into the user without the key.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from typing import TYPE_CHECKING
from urllib.parse import unquote

from core.errors import ConfigError
from core.redaction import CARD_PLACEHOLDER, EMAIL_PLACEHOLDER, PHONE_PLACEHOLDER, luhn_valid, redact_pii

if TYPE_CHECKING:
    from core.settings import Settings

MAX_TAG_CHARS = 200
"""Stored length of a tag (the traffic columns hold 200 characters)."""
SCAN_CHARS = 512
"""Longer values are cut here before redaction (detectors cost time on the request path); with redaction on,
the token the cut fell in is then dropped, so no value cut in half is kept."""
HASHED_USER_PREFIX = "u_"
_HASH_HEX_CHARS = 32  # 128 bits: no collisions among any realistic number of users
# Every PII kind needs a digit, an `@` or a `:` (IPv6); `%` and non-ASCII may hide them (encoded, full-width).
_MAY_HOLD_PII = re.compile(r"[0-9@:%]|[^\x00-\x7f]")
# The domain after an `@`; the local part is taken by walking back from it (a pattern with an open-ended local
# part would backtrack quadratically over a long value without a domain).
_AT_DOMAIN = re.compile(r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}")
_LOCAL_PART_STOP = frozenset(" \t\r\n@[]")
_TRAILING_TOKEN = re.compile(r"\S*\Z")
_GLUED_PHONE = re.compile(
    r"\+\d(?:[ .-]?\d){7,14}(?!\d)"  # international, glued to what precedes the `+`
    r"|(?<!\d)(?:\(\d{3}\) ?|\d{3}[.-])\d{3}[.-]\d{4}(?!\d)"  # North American, glued: `faq-555-123-4567`
)
_GLUED_CARD = re.compile(r"(?<![0-9A-Fa-f])\d{13,19}(?![0-9A-Fa-f])")  # not inside a hex id


class TagPolicy:
    """Cleans tag values before anything stores or exports them."""

    __slots__ = ("_redact", "_user_key")

    def __init__(self, *, redact: bool = True, user_key: bytes | None = None) -> None:
        self._redact = redact
        self._user_key = user_key

    @classmethod
    def from_settings(cls, settings: Settings) -> TagPolicy:
        """The policy the configuration asks for; `hash_users` without its key is a configuration error."""
        access = settings.access
        key: bytes | None = None
        if access.hash_users:
            secret = access.user_hash_key()
            if not secret:
                raise ConfigError(
                    f"access.hash_users is on but the environment variable {access.user_hash_key_env} "
                    "(access.user_hash_key_env) holding the hash key is not set"
                )
            key = secret.encode()
        return cls(redact=settings.traffic.redact_pii, user_key=key)

    @property
    def hashes_users(self) -> bool:
        return self._user_key is not None

    def clean(self, value: str | None, max_chars: int = MAX_TAG_CHARS) -> str | None:
        """`value` with its PII replaced by placeholders (when redaction is on), cut to `max_chars`."""
        if not value:
            return value
        cut = len(value) > SCAN_CHARS
        if cut:
            value = value[:SCAN_CHARS]
        if self._redact:
            if _MAY_HOLD_PII.search(value):
                value = _redacted(value)
            if cut:  # the token the scan cut off may be the start of a value (`someon` of an address)
                value = _TRAILING_TOKEN.sub("…", value, count=1)
        return value[:max_chars]

    def user(self, value: str | None) -> str | None:
        """A user id as it may be stored: its keyed hash with `hash_users`, else cleaned like any tag."""
        if not value:
            return value
        if self._user_key is None:
            return self.clean(value)
        normalised = unicodedata.normalize("NFKC", value).strip()
        digest = hmac.new(self._user_key, normalised.encode("utf-8", "surrogatepass"), hashlib.sha256)
        return HASHED_USER_PREFIX + digest.hexdigest()[:_HASH_HEX_CHARS]


def _redacted(value: str) -> str:
    """Redact `value`, also as it reads once normalised (full-width forms) and percent-decoded.

    Tags are ids, not prose, so values glued to other characters count too (`id_someone@example.com`,
    `order-4111111111111111`, `f-+14155550123`), which the body detectors leave alone to spare ordinary text.
    """
    readable = value if value.isascii() else unicodedata.normalize("NFKC", value)
    for _ in range(3):  # double-encoded values (`%2540`) too
        if "%" not in readable:
            break
        decoded = unquote(readable, errors="replace")
        if decoded == readable:
            break
        readable = decoded
    redacted, found = redact_pii(readable)
    redacted, glued = _redact_glued(redacted)
    return redacted if found or glued else value


def _redact_glued_emails(text: str) -> tuple[str, int]:
    pieces: list[str] = []
    done = found = 0
    for match in _AT_DOMAIN.finditer(text):
        start = match.start()
        while start > done and text[start - 1] not in _LOCAL_PART_STOP:
            start -= 1
        if start == match.start():
            continue  # nothing before the `@`: not an address
        pieces += (text[done:start], EMAIL_PLACEHOLDER)
        done = match.end()
        found += 1
    return "".join(pieces) + text[done:], found


def _redact_glued(text: str) -> tuple[str, int]:
    text, emails = _redact_glued_emails(text) if "@" in text else (text, 0)
    text, phones = _GLUED_PHONE.subn(PHONE_PLACEHOLDER, text)
    cards = 0

    def card(match: re.Match[str]) -> str:
        nonlocal cards
        if luhn_valid(match.group()):
            cards += 1
            return CARD_PLACEHOLDER
        return match.group()

    text = _GLUED_CARD.sub(card, text)
    return text, emails + phones + cards
