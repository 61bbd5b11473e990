"""Prefix affinity: requests that share a long prompt prefix go to the same replica, whose prefix cache holds it.

The key is the shortest run of leading messages (the last message excluded) that reaches `min_prefix_chars`,
cut at `prefix_chars`: a long shared system prompt alone when there is one, else the opening turns of a
conversation, so every later turn of that conversation keeps the same key. A prompt whose earlier messages
are too short falls back to its own first `prefix_chars` characters when it is long enough.

The replica for a key is chosen by rendezvous hashing over the healthy candidates: taking a replica out moves
only its own keys, and they come back when it returns. Load still wins over affinity: when the home replica's
load exceeds the least loaded one's by more than `max_load_gap`, the request goes to the least loaded instead
(consistent hashing with bounded loads).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

from core.config.routing import AffinitySettings
from sidecar.request_text import message_text

_SEPARATOR = "\x1e"


class Labelled(Protocol):
    @property
    def label(self) -> str: ...


R = TypeVar("R", bound=Labelled)


def prompt_parts(payload: dict[str, Any]) -> list[str]:
    """The prompt as ordered text parts: one per chat message (role included), or the completion prompt."""
    messages = payload.get("messages")
    if isinstance(messages, list):
        parts = []
        for message in messages:
            if isinstance(message, dict):
                parts.append(f"{message.get('role', '')}:{message_text(message.get('content'))}")
        return parts
    prompt = payload.get("prompt")
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, list) and all(isinstance(p, str) for p in prompt):
        return ["".join(prompt)]
    return []


class PrefixAffinity:
    """Maps a request to its home replica; counts how often the home was used or overflowed."""

    def __init__(self, settings: AffinitySettings) -> None:
        self.prefix_chars = settings.prefix_chars
        self.min_prefix_chars = settings.min_prefix_chars
        self.max_load_gap = settings.max_load_gap
        self.outcomes: Counter[str] = Counter()
        """'home' (sent to the key's replica), 'overflow' (home too loaded), 'none' (no usable prefix)."""

    def key(self, payload: dict[str, Any]) -> bytes | None:
        """The affinity key of a request, or None when its prompt has no prefix worth keeping together."""
        parts = prompt_parts(payload)
        if not parts:
            return None
        leading: list[str] = []
        size = 0
        for part in parts[:-1]:
            leading.append(part)
            size += len(part) + 1
            if size >= self.min_prefix_chars:
                return _digest(_SEPARATOR.join(leading)[: self.prefix_chars])
        whole = _SEPARATOR.join(parts)
        if len(whole) >= max(self.min_prefix_chars, 1) and len(whole) > self.prefix_chars:
            return _digest(whole[: self.prefix_chars])
        return None

    def home(self, key: bytes, candidates: Sequence[R]) -> R:
        """The candidate with the highest rendezvous weight for `key`."""
        return max(candidates, key=lambda d: hashlib.blake2b(key + d.label.encode(), digest_size=8).digest())


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
