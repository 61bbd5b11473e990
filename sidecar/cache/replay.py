"""Between the two shapes of an answer: a cached document replayed as SSE, and a relayed stream stored whole.

Entries always hold the non-stream document (`chat.completion` or `text_completion`), so a streamed request
and a plain one share the cache.
"""

from __future__ import annotations

from typing import Any

import orjson

from core.sse import DONE_EVENT, encode_event, parse_events


def document_to_sse(document: dict[str, Any], *, include_usage: bool) -> bytes:
    """The events a stream of `document` would have carried: content, finish reasons, usage, `[DONE]`."""
    chat = document.get("object") == "chat.completion"
    head = {
        "id": document.get("id"),
        "object": "chat.completion.chunk" if chat else "text_completion",
        "created": document.get("created"),
        "model": document.get("model"),
    }
    events: list[bytes] = []
    finals: list[dict[str, Any]] = []
    for choice in document.get("choices") or []:
        index = choice.get("index", 0)
        if chat:
            message = choice.get("message") or {}
            delta: dict[str, Any] = {"role": message.get("role", "assistant"), "content": message.get("content")}
            if message.get("tool_calls"):
                delta["tool_calls"] = [{"index": i, **call} for i, call in enumerate(message["tool_calls"])]
            events.append(_event({**head, "choices": [{"index": index, "delta": delta, "finish_reason": None}]}))
            finals.append({"index": index, "delta": {}, "finish_reason": choice.get("finish_reason")})
        else:
            text = {"index": index, "text": choice.get("text", ""), "finish_reason": None}
            events.append(_event({**head, "choices": [text]}))
            finals.append({"index": index, "text": "", "finish_reason": choice.get("finish_reason")})
    if finals:
        events.append(_event({**head, "choices": finals}))
    if include_usage and isinstance(document.get("usage"), dict):
        events.append(_event({**head, "choices": [], "usage": document["usage"]}))
    events.append(DONE_EVENT)
    return b"".join(events)


def _event(data: dict[str, Any]) -> bytes:
    return encode_event(orjson.dumps(data))


def sse_to_document(chunks: list[bytes], endpoint: str) -> dict[str, Any] | None:
    """The document a relayed stream amounts to; None when it is incomplete or not simple text.

    Streams with tool-call deltas, errors, or without `[DONE]` are not turned into cache entries. The chunks
    are the upstream's raw bytes, read with the one event-stream parser whatever their framing.
    """
    events = parse_events(chunks)
    end = next((i for i, item in enumerate(events) if item.done), None)
    if end is None:
        return None
    chat = endpoint == "chat.completions"
    head: dict[str, Any] | None = None
    texts: dict[int, list[str]] = {}
    finish: dict[int, str | None] = {}
    usage = None
    for item in events[:end]:
        try:
            event = orjson.loads(item.data)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(event, dict) or "error" in event:
            return None
        head = head or event
        if isinstance(event.get("usage"), dict):
            usage = event["usage"]
        for choice in event.get("choices") or []:
            index = int(choice.get("index", 0))
            if chat:
                delta = choice.get("delta") or {}
                if delta.get("tool_calls") or delta.get("function_call"):
                    return None
                piece = delta.get("content")
            else:
                piece = choice.get("text")
            if isinstance(piece, str):
                texts.setdefault(index, []).append(piece)
            if choice.get("finish_reason"):
                finish[index] = choice["finish_reason"]
    if head is None or not finish:
        return None
    indexes = sorted(set(texts) | set(finish))
    if chat:
        choices = [{"index": i, "message": {"role": "assistant", "content": "".join(texts.get(i, []))},
                    "finish_reason": finish.get(i)} for i in indexes]
    else:
        choices = [{"index": i, "text": "".join(texts.get(i, [])), "finish_reason": finish.get(i)} for i in indexes]
    document: dict[str, Any] = {
        "id": head.get("id"),
        "object": "chat.completion" if chat else "text_completion",
        "created": head.get("created"),
        "model": head.get("model"),
        "choices": choices,
    }
    if usage is not None:
        document["usage"] = usage
    return document
