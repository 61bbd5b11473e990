"""A fake of Anthropic's Messages API (`POST /v1/messages`), streaming included, with prompt caching.

It checks what the real service checks first (`x-api-key`, `anthropic-version`, `max_tokens`, `messages`)
and answers in its shapes: a `message` object, or the SSE sequence `message_start`, `content_block_start`,
`ping`, `content_block_delta`..., `content_block_stop`, `message_delta` (stop reason, output tokens),
`message_stop`. Errors are `{"type": "error", "error": {"type": ..., "message": ...}}`.

Prompt caching: the prefix up to and including the last block marked `cache_control` (tools, then system,
then messages) is written to the cache the first time (`cache_creation_input_tokens`) and read after that
(`cache_read_input_tokens`); `input_tokens` counts only the rest, as the real API does.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from aiohttp import web

from sidecar.fake_upstream.behaviour import FakeBehaviour
from sidecar.fake_upstream.providers.common import (
    build_provider_app,
    cache_lookup,
    make_answer,
    open_sse,
    pace,
    parse_body,
    sse,
    tokens,
)

_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 529: "overloaded_error"}


def build_anthropic_app(behaviour: FakeBehaviour | None = None, *, history: int = 64) -> web.Application:
    """The fake Anthropic API; point a client's base URL (or litellm's `api_base`) at the server root."""
    return build_provider_app(behaviour, history, [("POST", "/v1/messages", _messages)], anthropic_error)


def anthropic_error(status: int, message: str) -> web.Response:
    kind = _ERROR_TYPES.get(status, "api_error")
    body = orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})
    headers = {"Content-Type": "application/json"}
    if status == 429:
        headers["retry-after"] = "1"
    return web.Response(status=status, body=body, headers=headers)


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def _usage(request: dict[str, Any], app: web.Application) -> dict[str, int]:
    """Input token counts split the way Anthropic reports them around the cache breakpoint."""
    sequence: list[dict[str, Any]] = [t for t in request.get("tools") or [] if isinstance(t, dict)]
    sequence += _blocks(request.get("system"))
    for message in request["messages"]:
        sequence += [{**b, "role": message.get("role")} for b in _blocks(message.get("content"))]
    texts = [str(b.get("text") or b.get("description") or "") for b in sequence]
    total = sum(tokens(t) for t in texts)
    marks = [i for i, b in enumerate(sequence) if b.get("cache_control")]
    if not marks:
        return {"input_tokens": total, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    end = marks[-1] + 1
    prefix = [{k: v for k, v in b.items() if k != "cache_control"} for b in sequence[:end]]
    cached = sum(tokens(t) for t in texts[:end])
    hit = cache_lookup(app, prefix)
    return {
        "input_tokens": total - cached,
        "cache_creation_input_tokens": 0 if hit else cached,
        "cache_read_input_tokens": cached if hit else 0,
    }


def _check(request: web.Request, payload: dict[str, Any] | None) -> web.Response | None:
    if not request.headers.get("x-api-key"):
        return anthropic_error(401, "x-api-key header is required")
    if not request.headers.get("anthropic-version"):
        return anthropic_error(400, "anthropic-version header is required")
    if payload is None:
        return anthropic_error(400, "request body must be a JSON object")
    if not isinstance(payload.get("max_tokens"), int):
        return anthropic_error(400, "max_tokens: Field required")
    messages = payload.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        return anthropic_error(400, "messages: at least one message is required")
    if any(m.get("role") not in ("user", "assistant") for m in messages):
        return anthropic_error(400, "messages: roles must be 'user' or 'assistant' (system goes in 'system')")
    return None


async def _messages(request: web.Request, behaviour: FakeBehaviour, body: bytes) -> web.StreamResponse:
    payload = parse_body(body)
    refused = _check(request, payload)
    if refused is not None:
        return refused
    assert payload is not None
    users = [m for m in payload["messages"] if m.get("role") == "user"]
    last = " ".join(b.get("text", "") for b in _blocks(users[-1].get("content"))) if users else ""
    answer = make_answer(last, behaviour, payload["max_tokens"])
    usage = _usage(payload, request.app)
    stop = "max_tokens" if answer.truncated else "end_turn"
    ident = "msg_" + hashlib.blake2b(body, digest_size=12).hexdigest()
    model = payload.get("model", "claude-fake")
    if not payload.get("stream"):
        message = {"id": ident, "type": "message", "role": "assistant", "model": model,
                   "content": [{"type": "text", "text": answer.text}], "stop_reason": stop, "stop_sequence": None,
                   "usage": {**usage, "output_tokens": len(answer.pieces)}}
        await pace(behaviour, 0)
        return web.Response(body=orjson.dumps(message), headers={"Content-Type": "application/json"})
    response = await open_sse(request)
    start = {"id": ident, "type": "message", "role": "assistant", "model": model, "content": [],
             "stop_reason": None, "stop_sequence": None, "usage": {**usage, "output_tokens": 1}}
    await response.write(sse("message_start", {"type": "message_start", "message": start})
                         + sse("content_block_start", {"type": "content_block_start", "index": 0,
                                                       "content_block": {"type": "text", "text": ""}})
                         + sse("ping", {"type": "ping"}))
    for index, piece in enumerate(answer.pieces):
        await pace(behaviour, index)
        await response.write(sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                         "delta": {"type": "text_delta", "text": piece}}))
    await response.write(
        sse("content_block_stop", {"type": "content_block_stop", "index": 0})
        + sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                                "usage": {"output_tokens": len(answer.pieces)}})
        + sse("message_stop", {"type": "message_stop"})
    )
    await response.write_eof()
    return response
