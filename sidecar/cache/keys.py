"""What identifies a cacheable request: its canonical hash, its semantic scope and query, and bypass rules.

The exact key hashes the endpoint, prompt name and version and every request field that can change the
answer, in a canonical form (sorted keys, numeric sampling parameters as floats). Fields that only change
the delivery (`stream`, `stream_options`) or the bookkeeping (`user`, `metadata`) are left out, so a streamed
request and a plain one share their entry.

The semantic scope is the same hash without the last user message; that message is the query whose
embedding is compared. Two requests are semantic neighbours only when everything else is identical.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from sidecar.request_text import message_text
from sidecar.traffic.record import RawTraffic

CACHEABLE_ENDPOINTS = frozenset({"chat.completions", "completions"})
_DELIVERY_FIELDS = frozenset({"stream", "stream_options", "user", "metadata", "store", "service_tier"})
_FLOAT_FIELDS = ("temperature", "top_p", "presence_penalty", "frequency_penalty", "repetition_penalty", "min_p")


@dataclass(frozen=True, slots=True)
class CacheRequest:
    """A request as the cache sees it."""

    key: str
    deterministic: bool
    scope: str | None = None
    query: str | None = None


def describe_request(endpoint: str, payload: dict[str, Any], record: RawTraffic) -> CacheRequest | None:
    """The request's cache identity, or None when the endpoint is not cached."""
    if endpoint not in CACHEABLE_ENDPOINTS:
        return None
    fields = {name: value for name, value in payload.items() if name not in _DELIVERY_FIELDS}
    for name in _FLOAT_FIELDS:
        value = fields.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            fields[name] = float(value)
    prompt = [record.prompt_name, record.prompt_version]
    key = _digest({"endpoint": endpoint, "prompt": prompt, "request": fields})
    deterministic = fields.get("temperature") == 0.0 and fields.get("n", 1) == 1
    if not deterministic:
        return CacheRequest(key, False)
    split = _split_query(endpoint, fields)
    if split is None:
        return CacheRequest(key, True)
    rest, query = split
    scope = _digest({"endpoint": endpoint, "prompt": prompt, "request": rest, "semantic": True})
    return CacheRequest(key, True, scope, query)


def _split_query(endpoint: str, fields: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
    """The request without its last user text, and that text; None when there is no such text."""
    if endpoint == "completions":
        prompt = fields.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            return None
        return {name: value for name, value in fields.items() if name != "prompt"}, prompt
    messages = fields.get("messages")
    if not isinstance(messages, list) or not messages:
        return None
    last = messages[-1]
    if not isinstance(last, dict) or last.get("role") != "user":
        return None
    text = message_text(last.get("content"))
    if not text.strip():
        return None
    return {**fields, "messages": [*messages[:-1], {"role": "user"}]}, text


def _digest(material: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(material, option=orjson.OPT_SORT_KEYS)).hexdigest()


def bypass_mode(headers: dict[str, str]) -> str | None:
    """How the client asked to skip the cache: `bypass` (no read, no write), `refresh` (no read) or None.

    `x-tollgate-cache: bypass` and `Cache-Control: no-store` skip it entirely; `Cache-Control: no-cache`
    asks for a fresh answer, which then replaces the stored one.
    """
    asked = headers.get("x-tollgate-cache", "").strip().lower()
    if asked in ("bypass", "off", "no-store"):
        return "bypass"
    if asked in ("refresh", "no-cache"):
        return "refresh"
    control = headers.get("cache-control", "").lower()
    if "no-store" in control:
        return "bypass"
    if "no-cache" in control:
        return "refresh"
    return None
