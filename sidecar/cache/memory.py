"""The in-memory tier: least recently used entries, bounded by count and bytes, expired by wall-clock time."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass


@dataclass(slots=True)
class CacheEntry:
    """One cached answer: the complete (non-stream) response document as JSON bytes.

    `scope`, `query` and `vector` are set for entries the semantic cache can find.
    """

    key: str
    body: bytes
    expires_at: float  # seconds since the epoch (shared tiers agree on it)
    endpoint: str = "chat.completions"
    model: str | None = None
    prompt_name: str | None = None
    prompt_version: str | None = None
    scope: str | None = None
    query: str | None = None
    vector: bytes | None = None

    def expired(self, now: float | None = None) -> bool:
        return (now if now is not None else time.time()) >= self.expires_at


class MemoryTier:
    """An LRU map of entries that never holds more than `max_entries` or `max_bytes` of bodies."""

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.bytes = 0
        self.evictions = 0
        self._entries: OrderedDict[str, CacheEntry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str, now: float | None = None) -> CacheEntry | None:
        """The live entry for `key` (and mark it recently used); an expired one is dropped."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expired(now):
            self._remove(key)
            return None
        self._entries.move_to_end(key)
        return entry

    def put(self, entry: CacheEntry) -> None:
        """Store `entry`, evicting the least recently used ones to stay within bounds."""
        if len(entry.body) > self.max_bytes:
            return
        if entry.key in self._entries:
            self._remove(entry.key)
        self._entries[entry.key] = entry
        self.bytes += len(entry.body)
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            oldest = next(iter(self._entries))
            self._remove(oldest)
            self.evictions += 1

    def _remove(self, key: str) -> None:
        entry = self._entries.pop(key)
        self.bytes -= len(entry.body)
