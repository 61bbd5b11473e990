"""What the fake upstream received: request counts per path and the last requests in full.

Recording keeps references only (the raw body and aiohttp's immutable header view); decoding happens
when a test asks for the snapshot, so the benchmark's hot path pays an append and two counter bumps.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Mapping
from typing import Any

import orjson

from sidecar.fake_upstream.behaviour import Fault

DEFAULT_HISTORY = 64


class RequestLog:
    """Counts of requests per path and per injected fault, and the last `history` API requests."""

    def __init__(self, history: int = DEFAULT_HISTORY) -> None:
        self.by_path: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self._recent: deque[tuple[float, str, str, Mapping[str, str], bytes, Fault]] = deque(maxlen=history)

    def count(self, path: str) -> None:
        """Count a request that is not kept in full (health checks)."""
        self.by_path[path] += 1

    def record(self, method: str, path: str, headers: Mapping[str, str], body: bytes, fault: Fault) -> None:
        """Count an API request and keep it among the recent ones."""
        self.by_path[path] += 1
        if fault is not Fault.NONE:
            self.faults[fault.value] += 1
        self._recent.append((time.time(), method, path, headers, body, fault))

    def clear(self) -> None:
        self.by_path.clear()
        self.faults.clear()
        self._recent.clear()

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready statistics, oldest recent request first; header names are lower-cased."""
        return {
            "requests_total": sum(self.by_path.values()),
            "by_path": dict(self.by_path),
            "faults": dict(self.faults),
            "recent": [_describe(*entry) for entry in self._recent],
        }


def _describe(
    at: float, method: str, path: str, headers: Mapping[str, str], body: bytes, fault: Fault
) -> dict[str, Any]:
    try:
        decoded: Any = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        decoded = body.decode(errors="replace")
    return {
        "at": at,
        "method": method,
        "path": path,
        "headers": {name.lower(): value for name, value in headers.items()},
        "body": decoded,
        "fault": fault.value,
    }
