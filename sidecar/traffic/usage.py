"""Token usage read from OpenAI-shaped bodies and SSE streams, and estimated when the upstream sent none."""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from core.pricing import cached_tokens
from core.sse import parse_events

logger = logging.getLogger("tollgate.traffic")

CHARS_PER_TOKEN = 4
_CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
_MAX_COUNTED_CHARS = 200_000  # past this, tokens are extrapolated from the chars counted


@dataclass(slots=True, frozen=True)
class Usage:
    """Token counts as reported (a count the upstream did not give is None)."""

    tokens_in: int | None
    tokens_out: int | None
    cached_in: int | None = None  # the part of tokens_in read from a provider's prompt cache
    cache_write_in: int | None = None  # the part written to it


@dataclass(slots=True, frozen=True)
class StreamSummary:
    """What a relayed SSE stream said: the assistant text rebuilt from its deltas and its last usage."""

    text: str
    usage: Usage | None


def parse_json(raw: bytes | None) -> Any:
    """The decoded JSON document, or None when `raw` is empty or not JSON."""
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def usage_from(document: Any) -> Usage | None:
    """The `usage` of a completion, chunk or embeddings response (OpenAI or Anthropic key names)."""
    if not isinstance(document, dict):
        return None
    usage = document.get("usage")
    if not isinstance(usage, dict):
        return None
    tokens_in = _int_or_none(usage.get("prompt_tokens", usage.get("input_tokens")))
    tokens_out = _int_or_none(usage.get("completion_tokens", usage.get("output_tokens")))
    total = _int_or_none(usage.get("total_tokens"))
    if tokens_out is None and tokens_in is not None and total is not None:
        tokens_out = max(total - tokens_in, 0)  # embeddings report prompt and total only
    if tokens_in is None and tokens_out is None:
        return None
    return Usage(tokens_in, tokens_out, *cached_tokens(usage))


def summarise_stream(chunks: list[bytes]) -> StreamSummary:
    """Rebuild the streamed text and find the last chunk carrying usage.

    Chunks are the upstream's raw bytes, in any valid SSE framing and split anywhere; they are read with the
    one event-stream parser.
    """
    parts: list[str] = []
    usage: Usage | None = None
    for item in parse_events(chunks):
        if item.done:
            break
        event = parse_json(item.data)
        if not isinstance(event, dict):
            continue
        usage = usage_from(event) or usage
        _collect_text(event, parts)
    return StreamSummary("".join(parts), usage)


def _collect_text(event: dict[str, Any], parts: list[str]) -> None:
    choices = event.get("choices")
    if not isinstance(choices, list):
        return
    for choice in choices:
        if not isinstance(choice, dict):
            continue
        text = choice.get("text")  # legacy completions
        if isinstance(text, str):
            parts.append(text)
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            continue
        content = delta.get("content")
        if isinstance(content, str):
            parts.append(content)
        _collect_tool_arguments(delta.get("tool_calls"), parts)


def request_text(document: Any) -> str:
    """The text a request sends to the model: message contents, a prompt, or embedding inputs."""
    if not isinstance(document, dict):
        return ""
    parts: list[str] = []
    messages = document.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict):
                _collect_strings(message.get("content"), parts)
    _collect_strings(document.get("prompt"), parts)
    _collect_strings(document.get("input"), parts)
    return "\n".join(parts)


def completion_text(document: Any) -> str:
    """The generated text of a non-stream chat or completions response."""
    if not isinstance(document, dict) or not isinstance(document.get("choices"), list):
        return ""
    parts: list[str] = []
    for choice in document["choices"]:
        if not isinstance(choice, dict):
            continue
        message = choice.get("message")
        if isinstance(message, dict):
            _collect_strings(message.get("content"), parts)
            _collect_tool_arguments(message.get("tool_calls"), parts)
        if isinstance(choice.get("text"), str):
            parts.append(choice["text"])
    return "".join(parts)


def _collect_tool_arguments(calls: Any, parts: list[str]) -> None:
    if not isinstance(calls, list):
        return
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        arguments = function.get("arguments") if isinstance(function, dict) else None
        if isinstance(arguments, str):
            parts.append(arguments)


def _collect_strings(value: Any, parts: list[str]) -> None:
    if isinstance(value, str):
        parts.append(value)
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, str):
                parts.append(item)
            elif isinstance(item, dict) and isinstance(item.get("text"), str):
                parts.append(item["text"])


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if value >= 0 else None


class TokenEstimator:
    """Counts tokens with tiktoken's cl100k encoding when litellm's bundled copy is on disk, else chars/4.

    The encoding is loaded on first use (a fraction of a second, in the writer thread), never downloaded.
    """

    def __init__(self) -> None:
        self._encoding: Any = None
        self._loaded = False
        self._lock = threading.Lock()

    def count(self, text: str) -> int:
        """Tokens in `text` (an estimate)."""
        if not text:
            return 0
        encoding = self._load()
        if encoding is None:
            return math.ceil(len(text) / CHARS_PER_TOKEN)
        sample = text[:_MAX_COUNTED_CHARS]
        tokens = len(encoding.encode_ordinary(sample))
        if len(text) > len(sample):
            tokens = math.ceil(tokens * len(text) / len(sample))
        return tokens

    def _load(self) -> Any:
        if self._loaded:
            return self._encoding
        with self._lock:
            if not self._loaded:
                self._encoding = _bundled_cl100k()
                self._loaded = True
        return self._encoding


def _bundled_cl100k() -> Any:
    """cl100k_base from litellm's bundled tokenizer files (found without importing litellm), or None."""
    try:
        spec = importlib.util.find_spec("litellm")
        if spec is None or spec.origin is None:
            return None
        bundled = Path(spec.origin).parent / "litellm_core_utils" / "tokenizers"
        # tiktoken reads its cache folder from the environment; litellm points it at the same folder.
        cache_dir = Path(os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(bundled)))
        if not (cache_dir / hashlib.sha1(_CL100K_URL.encode()).hexdigest()).is_file():
            return None  # tiktoken would try to download it
        import tiktoken

        return tiktoken.get_encoding("cl100k_base")
    except Exception as exc:  # noqa: BLE001  (estimation falls back to chars/4 on any failure)
        logger.info("token estimation falls back to chars/%d: %s", CHARS_PER_TOKEN, exc)
        return None
