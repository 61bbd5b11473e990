"""The memory buffer of last resort: finalised rows that neither the database nor the spool would take.

A full disk (the database and the spool on the same filesystem, say) makes both refuse. Those rows are
acknowledged requests, so they are not dropped: they wait here, oldest first, and the writer retries the
database and then the spool with backoff until one takes them. The buffer has a size in rows and bytes;
beyond it the sidecar applies `traffic.when_full` to new requests (refuse them, or serve them unlogged).
Rows are never dropped from here to make room: the bound is enforced at admission, before the upstream.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from sidecar.traffic.record import TrafficRow

_ROW_OVERHEAD_BYTES = 512  # dict, keys and the numeric columns of one row, roughly
_FIRST_RETRY_S = 0.25
_MAX_RETRY_S = 2.0  # short: refusals last until the next successful retry after room comes back


class HeldRows:
    """Rows held in memory with their retry schedule. Thread-safe."""

    def __init__(self, max_rows: int, max_bytes: int) -> None:
        self._max_rows = max_rows
        self._max_bytes = max_bytes
        self._rows: deque[tuple[TrafficRow, int]] = deque()
        self._bytes = 0
        self._lock = threading.Lock()
        self._retry_at = 0.0
        self._backoff_s = 0.0

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def bytes(self) -> int:
        return self._bytes

    @property
    def full(self) -> bool:
        """True once the rows or bytes held reach the configured bound."""
        return len(self._rows) >= self._max_rows or self._bytes >= self._max_bytes

    def hold(self, rows: list[TrafficRow]) -> None:
        """Keep `rows` (after any already held, so order is kept) and schedule the next retry."""
        with self._lock:
            for row in rows:
                size = row_bytes(row)
                self._rows.append((row, size))
                self._bytes += size
        self._delay()

    def retry(self, store: Callable[[list[TrafficRow]], bool], chunk: int) -> int:
        """When a retry is due, hand the held rows to `store`, `chunk` at a time, oldest first, until it
        fails (`store` returns True once a chunk is durable). Chunks keep each transaction and spool write
        small, so a disk with a little room takes what fits instead of refusing one huge write forever.

        Returns the number of rows that left the buffer (0 when not due, or the first chunk failed again).
        """
        if not self._rows or time.monotonic() < self._retry_at:
            return 0
        moved = 0
        while self._rows:
            with self._lock:
                taken = [self._rows.popleft() for _ in range(min(chunk, len(self._rows)))]
                self._bytes -= sum(size for _row, size in taken)
            if not store([row for row, _size in taken]):
                with self._lock:  # put them back in front of anything held meanwhile
                    self._rows.extendleft(reversed(taken))
                    self._bytes += sum(size for _row, size in taken)
                self._delay()
                return moved
            moved += len(taken)
        self._backoff_s = 0.0
        return moved

    def retry_at_once(self) -> None:
        """Make the next `retry` run now, whatever the backoff (shutdown, or the disk is known to have room)."""
        self._retry_at = 0.0

    def drop_all(self) -> int:
        """Forget everything held (only at shutdown, after the last retries failed); returns how many."""
        with self._lock:
            count = len(self._rows)
            self._rows.clear()
            self._bytes = 0
        return count

    def _delay(self) -> None:
        self._backoff_s = min(max(self._backoff_s * 2, _FIRST_RETRY_S), _MAX_RETRY_S)
        self._retry_at = time.monotonic() + self._backoff_s


def row_bytes(row: TrafficRow) -> int:
    """About how much memory one finalised row takes (its strings plus a fixed overhead)."""
    size = _ROW_OVERHEAD_BYTES
    for value in row.values():
        if isinstance(value, str):
            size += len(value)
    return size
