"""Embedding similarity for the semantic guards, and the pluggable classifier they score with.

The default classifier is offline: all-MiniLM-L6-v2 (`core.embeddings`, numpy only) loaded once when the
guard stage is built, never per request. A text's score for a category is its highest cosine similarity to the
category's exemplars; `off_topic` is scored as one minus the best similarity to the allowed intents.

Any object with `score(text) -> float` is a `Classifier`; `classifier: package.module:factory` in a semantic
guard's settings names a factory `(category, exemplars) -> Classifier` (a judge model, a hosted moderation
API), so the guard never knows how the score was made.
"""

from __future__ import annotations

import asyncio
import importlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from core.errors import ConfigError
from sidecar.guards.exemplars import CATEGORIES

_CACHE_SIZE = 4096
_MAX_CHARS = 2000  # MiniLM reads 256 word pieces at most; longer texts are cut before tokenising


class Classifier(Protocol):
    """Scores a text for one category: higher means more of it (compared with the guard's threshold)."""

    def score(self, text: str) -> float: ...


ClassifierFactory = Callable[[str, Sequence[str]], Classifier]


class Embedder:
    """Unit-vector embeddings with a small LRU cache, so guards of one request share one forward pass.

    `aprepare` computes the missing vectors in a worker thread (the encoder releases the GIL in BLAS),
    keeping the event loop free; the guards then read from the cache synchronously.
    """

    def __init__(self, encode: Callable[[Sequence[str]], np.ndarray] | None = None) -> None:
        if encode is None:
            from core.embeddings import default_encoder

            encoder = default_encoder()  # loaded here, at stage build: about 0.3 s, once per process
            encode = encoder.encode
        self._encode = encode
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors for `texts` (rows), computing only the ones not cached."""
        keys = [text[:_MAX_CHARS] for text in texts]
        with self._lock:
            missing = [key for key in dict.fromkeys(keys) if key not in self._cache]
        if missing:
            vectors = self._encode(missing)
            with self._lock:
                for key, vector in zip(missing, vectors, strict=True):
                    self._cache[key] = vector
                while len(self._cache) > _CACHE_SIZE:
                    self._cache.popitem(last=False)
        with self._lock:
            rows = []
            for key in keys:
                vector = self._cache.get(key)
                if vector is None:  # evicted between the two locks by another thread: compute it again
                    vector = self._encode([key])[0]
                else:
                    self._cache.move_to_end(key)
                rows.append(vector)
        return np.stack(rows) if rows else np.empty((0, 0), dtype=np.float32)

    async def aprepare(self, texts: Sequence[str]) -> None:
        """Compute `texts`' vectors off the event loop (no-op when all are cached)."""
        with self._lock:
            needed = [text for text in texts if text and text[:_MAX_CHARS] not in self._cache]
        if needed:
            await asyncio.to_thread(self.embed, needed)


class ExemplarClassifier:
    """Highest cosine similarity between a text and a category's exemplars."""

    def __init__(self, embedder: Embedder, exemplars: Sequence[str], *, invert: bool = False) -> None:
        if not exemplars:
            raise ConfigError("a semantic guard needs at least one exemplar")
        self._embedder = embedder
        self._matrix = embedder.embed(list(exemplars))
        self._invert = invert

    def similarity(self, text: str) -> float:
        if not text.strip():
            return 0.0
        vector = self._embedder.embed([text])[0]
        return float(np.clip(np.max(self._matrix @ vector), -1.0, 1.0))

    def score(self, text: str) -> float:
        best = self.similarity(text)
        return 1.0 - best if self._invert else best


def exemplars_for(category: str, extra: Sequence[str]) -> list[str]:
    """The bundled exemplars of `category` plus the configured ones."""
    return [*CATEGORIES.get(category, ()), *extra]


def build_classifier(spec: str, category: str, exemplars: Sequence[str], embedder: Embedder | None) -> Classifier:
    """`embedding` (the default) or a `module:factory` import path."""
    if spec == "embedding":
        if embedder is None:
            raise ConfigError("the embedding classifier needs the embedding model")
        return ExemplarClassifier(embedder, exemplars, invert=category == "off_topic")
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"guard classifier {spec!r}: use 'embedding' or 'package.module:factory'")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"guard classifier {spec!r} cannot be imported: {exc}") from exc
    classifier: Classifier = factory(category, list(exemplars))
    return classifier
