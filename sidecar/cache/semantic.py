"""The semantic tier: per scope, the embeddings of cached queries, searched for the nearest neighbour.

Vectors are unit length (MiniLM), so a matrix-vector product gives every cosine similarity at once. Each
scope keeps at most `max_per_scope` vectors (oldest replaced first) and at most `max_scopes` scopes are
kept (least recently used dropped), so memory stays bounded whatever the traffic.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from core.embeddings import DIMENSION

Encode = Callable[[Sequence[str]], np.ndarray]


class _Scope:
    __slots__ = ("keys", "matrix", "next", "size")

    def __init__(self, capacity: int) -> None:
        self.keys: list[str] = [""] * capacity
        self.matrix = np.zeros((capacity, DIMENSION), dtype=np.float32)
        self.size = 0
        self.next = 0


class SemanticIndex:
    """Nearest cached query within a scope, when it is similar enough."""

    def __init__(self, threshold: float, max_per_scope: int, max_scopes: int = 1_000) -> None:
        self.threshold = threshold
        self.max_per_scope = max_per_scope
        self.max_scopes = max_scopes
        self._scopes: OrderedDict[str, _Scope] = OrderedDict()

    def __len__(self) -> int:
        return sum(scope.size for scope in self._scopes.values())

    def add(self, scope_key: str, key: str, vector: np.ndarray) -> None:
        """Index `key` under `scope_key` (replacing the oldest vector when the scope is full)."""
        scope = self._scopes.get(scope_key)
        if scope is None:
            # Start small and grow: most scopes hold a handful of queries.
            scope = self._scopes[scope_key] = _Scope(min(16, self.max_per_scope))
            while len(self._scopes) > self.max_scopes:
                self._scopes.popitem(last=False)
        self._scopes.move_to_end(scope_key)
        if scope.size == len(scope.keys) and scope.size < self.max_per_scope:
            _grow(scope, min(self.max_per_scope, scope.size * 2))
        slot = scope.next
        scope.keys[slot] = key
        scope.matrix[slot] = vector
        scope.next = (slot + 1) % len(scope.keys)
        scope.size = min(scope.size + 1, len(scope.keys))

    def keys(self, scope_key: str) -> set[str]:
        """The keys indexed under `scope_key`."""
        scope = self._scopes.get(scope_key)
        return set(scope.keys[: scope.size]) if scope is not None else set()

    def nearest(self, scope_key: str, vector: np.ndarray) -> tuple[str, float] | None:
        """The most similar indexed key and its similarity, if it reaches the threshold."""
        scope = self._scopes.get(scope_key)
        if scope is None or scope.size == 0:
            return None
        scores = scope.matrix[: scope.size] @ vector
        best = int(np.argmax(scores))
        similarity = float(scores[best])
        if similarity < self.threshold:
            return None
        return scope.keys[best], similarity


def _grow(scope: _Scope, capacity: int) -> None:
    matrix = np.zeros((capacity, DIMENSION), dtype=np.float32)
    matrix[: scope.size] = scope.matrix[: scope.size]
    scope.matrix = matrix
    scope.keys.extend([""] * (capacity - len(scope.keys)))
    scope.next = scope.size


class Embedder:
    """Embeds queries off the event loop, one at a time, on a thread of its own."""

    def __init__(self, encode: Encode | None = None) -> None:
        if encode is None:
            from core.embeddings import encode as default_encode

            encode = default_encode
        self._encode = encode
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tollgate-cache-embed")

    def warm_up(self) -> None:
        """Load the model in the background so the first request does not pay for it."""
        self._pool.submit(self._encode, ["warm up"])

    async def embed(self, text: str) -> np.ndarray:
        vectors = await asyncio.get_running_loop().run_in_executor(self._pool, self._encode, [text])
        return np.asarray(vectors[0], dtype=np.float32)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
