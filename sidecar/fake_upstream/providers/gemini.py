"""A fake of Google's Gemini API (`generateContent`, `streamGenerateContent?alt=sse`), with implicit caching.

Routes: `POST /v1beta/models/{model}:generateContent` and `...:streamGenerateContent` (point litellm's
`api_base` at `http://HOST:PORT/v1beta`). The key comes in `x-goog-api-key` or `?key=`. Answers carry
`candidates[].content.parts[].text`, `finishReason` (`STOP`, `MAX_TOKENS`) and `usageMetadata`
(`promptTokenCount`, `candidatesTokenCount`, `totalTokenCount`, and `cachedContentTokenCount` when the prompt's
prefix — every text part but the newest, system instruction included — was seen before, as Gemini's implicit
caching reports).
A stream is a series of `data:` events, each a partial response; the last carries the finish reason.
Errors are `{"error": {"code": ..., "message": ..., "status": ...}}`.
"""

from __future__ import annotations

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

_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
           429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


def build_gemini_app(behaviour: FakeBehaviour | None = None, *, history: int = 64) -> web.Application:
    """The fake Gemini API."""
    return build_provider_app(behaviour, history, [("POST", "/v1beta/models/{call}", _call)], gemini_error)


def gemini_error(status: int, message: str) -> web.Response:
    body = orjson.dumps({"error": {"code": status, "message": message, "status": _STATUS.get(status, "UNKNOWN")}})
    return web.Response(status=status, body=body, headers={"Content-Type": "application/json"})


def _text(parts: Any) -> str:
    return " ".join(_part_texts(parts))


def _check(request: web.Request, payload: dict[str, Any] | None, method: str) -> web.Response | None:
    if not (request.headers.get("x-goog-api-key") or request.query.get("key")):
        return gemini_error(403, "Method doesn't allow unregistered callers. Please use an API key.")
    if method not in ("generateContent", "streamGenerateContent"):
        return gemini_error(404, f"method {method!r} is not found")
    if payload is None:
        return gemini_error(400, "Invalid JSON payload received.")
    contents = payload.get("contents")
    if not isinstance(contents, list) or not contents or not all(isinstance(c, dict) for c in contents):
        return gemini_error(400, "* GenerateContentRequest.contents: contents is not specified")
    if any(c.get("role", "user") not in ("user", "model") for c in contents):
        return gemini_error(400, "Please use a valid role: user, model.")
    return None


def _usage(payload: dict[str, Any], app: web.Application, output: int) -> dict[str, int]:
    parts = _part_texts((payload.get("systemInstruction") or payload.get("system_instruction") or {}).get("parts"))
    for content in payload["contents"]:
        parts += _part_texts(content.get("parts"))
    prompt = sum(tokens(t) for t in parts)
    usage = {"promptTokenCount": prompt, "candidatesTokenCount": output, "totalTokenCount": prompt + output}
    prefix = parts[:-1]  # everything before the newest part can have been seen before
    prefix_tokens = sum(tokens(t) for t in prefix)
    if prefix_tokens and cache_lookup(app, prefix):
        usage["cachedContentTokenCount"] = prefix_tokens
    return usage


def _part_texts(parts: Any) -> list[str]:
    if not isinstance(parts, list):
        return []
    return [p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)]


async def _call(request: web.Request, behaviour: FakeBehaviour, body: bytes) -> web.StreamResponse:
    model, _, method = request.match_info["call"].partition(":")
    payload = parse_body(body)
    refused = _check(request, payload, method)
    if refused is not None:
        return refused
    assert payload is not None
    users = [c for c in payload["contents"] if c.get("role", "user") == "user"]
    config = payload.get("generationConfig") or payload.get("generation_config") or {}
    limit = config.get("maxOutputTokens", config.get("max_output_tokens"))
    answer = make_answer(_text(users[-1].get("parts")) if users else "", behaviour, limit)
    finish = "MAX_TOKENS" if answer.truncated else "STOP"
    usage = _usage(payload, request.app, len(answer.pieces))
    if method == "generateContent":
        await pace(behaviour, 0)
        document = {"candidates": [{"content": {"parts": [{"text": answer.text}], "role": "model"},
                                    "finishReason": finish, "index": 0}],
                    "usageMetadata": usage, "modelVersion": model}
        return web.Response(body=orjson.dumps(document), headers={"Content-Type": "application/json"})
    response = await open_sse(request)
    pieces = answer.pieces or [""]
    for index, piece in enumerate(pieces):
        await pace(behaviour, index)
        candidate: dict[str, Any] = {"content": {"parts": [{"text": piece}], "role": "model"}, "index": 0}
        event: dict[str, Any] = {"candidates": [candidate], "modelVersion": model}
        if index == len(pieces) - 1:
            candidate["finishReason"] = finish
            event["usageMetadata"] = usage
        else:
            event["usageMetadata"] = {"promptTokenCount": usage["promptTokenCount"]}
        await response.write(sse(None, event))
    await response.write_eof()
    return response
