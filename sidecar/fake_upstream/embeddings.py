"""Deterministic embedding vectors: unit vectors seeded from a hash of each input."""

from __future__ import annotations

import base64
import hashlib
import math
import struct
from typing import Any

import orjson

from sidecar.fake_upstream.behaviour import FakeBehaviour
from sidecar.fake_upstream.wire import Reply, error_reply

_SCALE = 2.0 / 0xFFFFFFFF


def embed(text: str, dimensions: int) -> list[float]:
    """A unit vector in `dimensions` dimensions that depends only on `text` (same text, same vector)."""
    digest = hashlib.shake_256(text.encode()).digest(4 * dimensions)
    values = [v * _SCALE - 1.0 for v in struct.unpack(f"<{dimensions}I", digest)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def _inputs(value: Any) -> list[str] | None:
    """The inputs as strings: a string, an array of strings, a token array or an array of token arrays."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value:
        if all(isinstance(v, int) for v in value):
            return [orjson.dumps(value).decode()]
        if all(isinstance(v, str | list) for v in value):
            return [v if isinstance(v, str) else orjson.dumps(v).decode() for v in value]
    return None


def embedding_reply(request: dict[str, Any], model: str, behaviour: FakeBehaviour) -> Reply:
    """The `/v1/embeddings` answer, honouring `dimensions` and `encoding_format` (float or base64)."""
    inputs = _inputs(request.get("input"))
    if inputs is None:
        return error_reply(400, "'input' must be a string or a non-empty array", param="input")
    dimensions = request.get("dimensions", behaviour.embedding_dim)
    if not isinstance(dimensions, int) or not 1 <= dimensions <= 65536:
        return error_reply(400, "'dimensions' must be an integer from 1 to 65536", param="dimensions")
    encoding = request.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        return error_reply(400, "'encoding_format' must be 'float' or 'base64'", param="encoding_format")
    data = []
    for index, text in enumerate(inputs):
        vector: list[float] | str = embed(text, dimensions)
        if encoding == "base64":  # what the openai SDK asks for by default: little-endian float32
            vector = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": vector})
    tokens = sum(len(text.split()) for text in inputs)
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return Reply(
        status=200, body=orjson.dumps({"object": "list", "data": data, "model": model, "usage": usage})
    )
