"""What a deployment is called outside its upstream client, and its URL's secrets kept out of every text.

A `base_url` may carry credentials: userinfo (`http://user:pass@host/v1`), a token in the query
(`?key=...`) or an API key as a path segment (`/v1/key-abc123`). Only the upstream client ever sees the
URL; everywhere else (client error bodies, `/metrics` labels, traffic rows, spans, logs) a deployment is its
configured `name` or its public address `scheme://host:port`. Error text produced while talking to the
upstream (ours, aiohttp's or litellm's) goes through `UrlSecrets.scrub`, which replaces the whole URL by
the public address and any remaining piece of a secret (raw or percent-decoded) by `[redacted]`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, unquote_plus, urlsplit

REDACTED = "[redacted]"
_MIN_SECRET_CHARS = 3  # shorter pieces are no secret worth guarding, and scrubbing them would wreck text
# Path segments that name an API rather than hold a secret: plain words and versions (`v1`, `v1beta`).
_PLAIN_SEGMENT = re.compile(r"[A-Za-z]{1,16}|v\d{1,2}(?:alpha|beta)?\d{0,2}")


@dataclass(frozen=True, slots=True)
class UrlSecrets:
    """A base URL's public address and the pieces of it that must never leave the upstream client."""

    address: str
    """`scheme://host:port`: no userinfo, path or query."""
    urls: tuple[str, ...]
    """Spellings of the whole URL (as configured, as aiohttp renders it), longest first."""
    pieces: tuple[str, ...]
    """Userinfo, password, user, query and secret-looking path segments (raw and decoded), longest first."""

    def scrub(self, text: str) -> str:
        """`text` with the URL replaced by the public address and every secret piece by `[redacted]`."""
        for url in self.urls:
            if url in text:
                text = text.replace(url, self.address)
        for piece in self.pieces:
            if piece in text:
                text = text.replace(piece, REDACTED)
        return text


NO_SECRETS = UrlSecrets(address="", urls=(), pieces=())


def public_address(base_url: str) -> str:
    """`scheme://host:port` of `base_url` (the default port spelled out), without userinfo, path or query."""
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # IPv6 literal
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    return f"{parts.scheme}://{host}:{port}"


def url_secrets(base_url: str | None) -> UrlSecrets:
    """The public address of `base_url` and its secret pieces (none for a plain `http://host:port/v1`)."""
    if not base_url:
        return NO_SECRETS
    parts = urlsplit(base_url)
    address = public_address(base_url)
    pieces: set[str] = set()
    userinfo, _, _ = parts.netloc.rpartition("@")
    if userinfo:
        user, _, password = userinfo.partition(":")
        pieces.update((userinfo, user, password, unquote(user), unquote(password)))
    if parts.query:
        pieces.add(parts.query)
        for raw in parts.query.split("&"):
            value = raw.partition("=")[2]
            pieces.update((raw, value, unquote_plus(value)))
    for segment in parts.path.split("/"):
        if segment and not _PLAIN_SEGMENT.fullmatch(segment):
            pieces.update((segment, unquote(segment)))
    urls = {base_url, _aiohttp_spelling(base_url)}
    root = base_url.split("?", 1)[0]
    urls.update((root, root.replace(f"{userinfo}@", "", 1) if userinfo else root))
    urls.discard(address)
    return UrlSecrets(
        address=address,
        urls=tuple(sorted((u for u in urls if u), key=len, reverse=True)),
        pieces=tuple(sorted((p for p in pieces if len(p) >= _MIN_SECRET_CHARS and p not in address), key=len, reverse=True)),
    )


def split_query(base_url: str) -> tuple[str, str]:
    """(`base_url` without its query, `?query` or ''): request paths go between the two."""
    root, mark, query = base_url.partition("?")
    return root.rstrip("/"), f"{mark}{query}" if mark else ""


def _aiohttp_spelling(base_url: str) -> str:
    """The URL as aiohttp/yarl print it in exception messages (it re-quotes some characters)."""
    try:
        from yarl import URL

        return str(URL(base_url))
    except (ValueError, TypeError):
        return base_url
