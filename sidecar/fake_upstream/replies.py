"""The deterministic answers of the fake upstream, rendered to bytes once and cached.

The answer derives only from the request body and the behaviour: the text is `echo:` followed by the
words of the last user message, cycled to the configured number of tokens (a token is a whitespace
word). Rendering is cached on (endpoint, raw body, behaviour), so a benchmark that repeats one request
pays for JSON parsing and serialisation once; after that the hot path is a dictionary look-up.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from typing import Any

import orjson

from sidecar.fake_upstream.behaviour import FakeBehaviour
from sidecar.fake_upstream.embeddings import embedding_reply
from sidecar.fake_upstream.wire import DONE_EVENT, Reply, error_reply, sse_event

_CACHE_SIZE = 2048
_TOKEN = re.compile(r"\s*\S+")
_JSON_FORMATS = frozenset({"json_object", "json_schema"})
_cache: dict[tuple[str, bytes, FakeBehaviour], Reply] = {}


@dataclass(frozen=True, slots=True)
class _Answer:
    """What the fake model 'generated' for one request, before it is put in an endpoint's shape."""

    pieces: list[str]  # one per token, leading whitespace included: "".join(pieces) is the text
    finish_reason: str
    prompt_tokens: int

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    def usage(self) -> dict[str, int]:
        completion = len(self.pieces)
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
        }


def build_reply(endpoint: str, body: bytes, behaviour: FakeBehaviour) -> Reply:
    """The reply for `endpoint` (`chat`, `completions`, `embeddings` or `models`), cached."""
    key = (endpoint, body, behaviour)
    reply = _cache.get(key)
    if reply is None:
        reply = _render(endpoint, body, behaviour)
        if len(_cache) >= _CACHE_SIZE:
            _cache.clear()  # cheaper than LRU bookkeeping; a benchmark repeats few distinct bodies
        _cache[key] = reply
    return reply


def _render(endpoint: str, body: bytes, behaviour: FakeBehaviour) -> Reply:
    if endpoint == "models":
        return _models_reply(behaviour)
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError:
        return error_reply(400, "request body is not valid JSON")
    if not isinstance(request, dict):
        return error_reply(400, "request body must be a JSON object")
    model = request.get("model")
    if not isinstance(model, str) or not model:
        return error_reply(400, "'model' is required", param="model")
    if endpoint == "embeddings":
        return embedding_reply(request, model, behaviour)
    if endpoint == "chat":
        return _chat_reply(request, model, body, behaviour)
    return _completion_reply(request, model, body, behaviour)


def split_tokens(text: str) -> list[str]:
    """Split text into whitespace words, each keeping its leading whitespace, so they join back to it."""
    pieces = _TOKEN.findall(text)
    tail = len(text) - sum(len(piece) for piece in pieces)
    if pieces and tail:
        pieces[-1] += text[-tail:]
    return pieces


def count_tokens(text: str) -> int:
    return len(text.split())


def _answer(words: list[str], request: dict[str, Any], behaviour: FakeBehaviour, json_mode: bool) -> _Answer:
    limit = request.get("max_completion_tokens") or request.get("max_tokens")
    wanted = behaviour.output_tokens
    if behaviour.reply is not None:
        pieces = split_tokens(behaviour.reply)
    elif json_mode:
        pieces = split_tokens(orjson.dumps({"echo": " ".join(_cycle(words, wanted))}).decode())
    else:
        pieces = split_tokens(" ".join(["echo:", *_cycle(words, wanted - 1)])) if wanted else []
    truncated = isinstance(limit, int) and 0 <= limit < len(pieces)
    if truncated:
        pieces = pieces[:limit]
    return _Answer(pieces, "length" if truncated else "stop", 0)


def _cycle(words: list[str], count: int) -> list[str]:
    source = words or ["(empty)"]
    return [source[i % len(source)] for i in range(max(count, 0))]


def _message_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: keep the text ones
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _envelope(prefix: str, body: bytes, kind: str, model: str) -> dict[str, Any]:
    """The fields every answer and chunk starts with; the id derives from the request body."""
    identity = f"{prefix}-{hashlib.blake2b(body, digest_size=12).hexdigest()}"
    return {
        "id": identity,
        "object": kind,
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_fake",
    }


def _chat_reply(request: dict[str, Any], model: str, body: bytes, behaviour: FakeBehaviour) -> Reply:
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        return error_reply(400, "'messages' must be a non-empty array of objects", param="messages")
    texts = [_message_text(m.get("content")) for m in messages]
    user = [text for m, text in zip(messages, texts) if m.get("role") == "user"]
    fmt = request.get("response_format")
    json_mode = isinstance(fmt, dict) and fmt.get("type") in _JSON_FORMATS
    answer = _answer((user or texts)[-1].split(), request, behaviour, json_mode)
    answer = _Answer(answer.pieces, answer.finish_reason, sum(count_tokens(t) for t in texts))
    stream = bool(request.get("stream"))
    base = _envelope("chatcmpl", body, "chat.completion.chunk" if stream else "chat.completion", model)
    if not stream:
        message = {"role": "assistant", "content": answer.text, "refusal": None}
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": answer.finish_reason}
        data = {**base, "choices": [choice], "usage": answer.usage()}
        return Reply(status=200, body=orjson.dumps(data), tokens=len(answer.pieces))
    deltas = [{"role": "assistant", "content": "", "refusal": None}, *({"content": p} for p in answer.pieces)]
    choices = [[{"index": 0, "delta": d, "logprobs": None, "finish_reason": None}] for d in deltas]
    choices.append([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": answer.finish_reason}])
    return _stream_reply(base, choices, answer, request)


def _completion_reply(request: dict[str, Any], model: str, body: bytes, behaviour: FakeBehaviour) -> Reply:
    prompt = request.get("prompt")
    if isinstance(prompt, list):
        prompt = " ".join(p if isinstance(p, str) else str(p) for p in prompt)
    if not isinstance(prompt, str):
        return error_reply(400, "'prompt' must be a string or an array", param="prompt")
    answer = _answer(prompt.split(), request, behaviour, json_mode=False)
    answer = _Answer(answer.pieces, answer.finish_reason, count_tokens(prompt))
    base = _envelope("cmpl", body, "text_completion", model)
    if not request.get("stream"):
        choice = {"index": 0, "text": answer.text, "logprobs": None, "finish_reason": answer.finish_reason}
        data = {**base, "choices": [choice], "usage": answer.usage()}
        return Reply(status=200, body=orjson.dumps(data), tokens=len(answer.pieces))
    choices = [[{"index": 0, "text": p, "logprobs": None, "finish_reason": None}] for p in answer.pieces]
    choices.append([{"index": 0, "text": "", "logprobs": None, "finish_reason": answer.finish_reason}])
    # Legacy completions have no role event: the first token is the first event.
    return _stream_reply(base, choices, answer, request, first_token=0)


def _stream_reply(
    base: dict[str, Any],
    choices: list[list[dict[str, Any]]],
    answer: _Answer,
    request: dict[str, Any],
    first_token: int = 1,
) -> Reply:
    """SSE events as OpenAI sends them: one per token, a finish event, usage if asked for, [DONE]."""
    options = request.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    extra = {"usage": None} if include_usage else {}
    events = [sse_event({**base, "choices": c, **extra}) for c in choices]
    if include_usage:
        events.append(sse_event({**base, "choices": [], "usage": answer.usage()}))
    events.append(DONE_EVENT)
    if not answer.pieces:
        first_token = len(events)  # nothing to time: no token events
    return Reply(status=200, events=tuple(events), tokens=len(answer.pieces), first_token=first_token)


def _models_reply(behaviour: FakeBehaviour) -> Reply:
    data = [{"id": m, "object": "model", "created": 0, "owned_by": "tollgate-fake"} for m in behaviour.models]
    return Reply(status=200, body=orjson.dumps({"object": "list", "data": data}))
