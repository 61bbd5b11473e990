"""The wire format of the fake upstream's answers: a pre-rendered `Reply`, SSE events and error bodies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

DONE_EVENT = b"data: [DONE]\n\n"
JSON_HEADERS = {"Content-Type": "application/json"}
SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}

# The OpenAI error `type` for a status; other statuses get "api_error" (4xx) or "server_error" (5xx).
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    409: "conflict_error",
    422: "invalid_request_error",
    429: "requests",
}


@dataclass(frozen=True, slots=True)
class Reply:
    """A fully rendered answer: a JSON body, or the SSE events of a stream.

    `tokens` and `first_token` drive the timing: the first event waits `ttft_s`, and each token event
    after the first (events `first_token + 1 .. first_token + tokens - 1`) waits `inter_token_s`.
    """

    status: int
    body: bytes = b""
    events: tuple[bytes, ...] = ()
    tokens: int = 0
    first_token: int = 0
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def stream(self) -> bool:
        return bool(self.events)

    def generation_time(self, ttft_s: float, inter_token_s: float) -> float:
        """Seconds until the last token is ready."""
        return ttft_s + max(self.tokens - 1, 0) * inter_token_s

    def delay_before(self, index: int, ttft_s: float, inter_token_s: float) -> float:
        """Seconds to wait before sending event `index` of a stream."""
        if index == 0:
            return ttft_s
        if self.first_token < index < self.first_token + self.tokens:
            return inter_token_s
        return 0.0


def sse_event(data: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


def error_type(status: int) -> str:
    return _ERROR_TYPES.get(status, "server_error" if status >= 500 else "api_error")


def error_body(message: str, type_: str, *, param: str | None = None, code: str | None = None) -> bytes:
    """The OpenAI-shaped error body `{"error": {...}}`."""
    return orjson.dumps({"error": {"message": message, "type": type_, "param": param, "code": code}})


def error_reply(
    status: int,
    message: str,
    type_: str | None = None,
    *,
    param: str | None = None,
    code: str | None = None,
    retry_after_s: int | None = None,
) -> Reply:
    """An error answer; 429 carries Retry-After like the real services."""
    headers = (("Retry-After", str(retry_after_s)),) if retry_after_s is not None else ()
    body = error_body(message, type_ or error_type(status), param=param, code=code)
    return Reply(status=status, body=body, headers=headers)
