"""Errors the sidecar answers with, each rendered once in the OpenAI error shape.

Every error carries its HTTP status, the OpenAI `type`/`code`/`param` fields and the error class recorded on
the traffic log, so no handler ever derives a status from a message string.
"""

from __future__ import annotations

from typing import ClassVar

import orjson

from core.errors import TollgateError


class SidecarError(TollgateError):
    """Base class: an error that becomes an HTTP response `{"error": {...}}`."""

    status: ClassVar[int] = 500
    type: ClassVar[str] = "server_error"
    error_class: ClassVar[str] = "internal_error"
    default_code: ClassVar[str | None] = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code or self.default_code

    def body(self) -> bytes:
        return render_error(self.message, self.type, self.param, self.code)


def render_error(message: str, type_: str, param: str | None = None, code: str | None = None) -> bytes:
    """The OpenAI-shaped error body."""
    return orjson.dumps({"error": {"message": message, "type": type_, "param": param, "code": code}})


class InvalidRequest(SidecarError):
    status = 400
    type = "invalid_request_error"
    error_class = "client_error"


class NotFound(SidecarError):
    status = 404
    type = "invalid_request_error"
    error_class = "client_error"
    default_code = "not_found"


class ModelNotFound(SidecarError):
    status = 404
    type = "invalid_request_error"
    error_class = "client_error"
    default_code = "model_not_found"


class MethodNotAllowed(SidecarError):
    status = 405
    type = "invalid_request_error"
    error_class = "client_error"
    default_code = "method_not_allowed"


class PayloadTooLarge(SidecarError):
    status = 413
    type = "invalid_request_error"
    error_class = "client_error"
    default_code = "request_too_large"


class UnsupportedMediaType(SidecarError):
    status = 415
    type = "invalid_request_error"
    error_class = "client_error"
    default_code = "unsupported_media_type"


class UpstreamError(SidecarError):
    """Every deployment and fallback failed (connect errors, 5xx, 429 after retries)."""

    status = 502
    type = "upstream_error"
    error_class = "upstream_error"
    default_code = "upstream_unavailable"


class UpstreamTimeout(SidecarError):
    status = 504
    type = "upstream_error"
    error_class = "timeout"
    default_code = "upstream_timeout"


class UpstreamParseFailure(SidecarError):
    """The upstream answered 200 with a body that is not valid JSON."""

    status = 502
    type = "upstream_error"
    error_class = "parse_failure"
    default_code = "upstream_invalid_response"


class NotReady(SidecarError):
    status = 503
    type = "server_error"
    error_class = "internal_error"
    default_code = "not_ready"


class InternalError(SidecarError):
    status = 500
    type = "server_error"
    error_class = "internal_error"
    default_code = "internal_error"


class Unauthorized(SidecarError):
    status = 401
    type = "invalid_request_error"
    error_class = "client_error"
    default_code = "invalid_api_key"


class Forbidden(SidecarError):
    status = 403
    type = "invalid_request_error"
    error_class = "client_error"
    default_code = "forbidden"


class GuardrailBlocked(SidecarError):
    """A guard refused the request (or the answer); `code` names the guard's reason."""

    status = 400
    type = "invalid_request_error"
    error_class = "guardrail"
    default_code = "guardrail_blocked"


class OutputRejected(SidecarError):
    """The answer failed validation and every fallback did too (escalated to review)."""

    status = 422
    type = "invalid_request_error"
    error_class = "parse_failure"
    default_code = "output_validation_failed"


class RateLimited(SidecarError):
    """Too many requests or tokens for a key, or a budget spent; `retry_after_s` becomes `Retry-After`."""

    status = 429
    type = "rate_limit_error"
    error_class = "client_error"
    default_code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after_s: float | None = None, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after_s = retry_after_s


class Overloaded(SidecarError):
    """Admission queue full or its deadline passed; `Retry-After` tells the client when to come back."""

    status = 503
    type = "server_error"
    error_class = "upstream_error"
    default_code = "overloaded"

    def __init__(self, message: str, *, retry_after_s: float | None = None, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after_s = retry_after_s


def error_headers(error: SidecarError) -> list[tuple[bytes, bytes]]:
    """Extra response headers an error carries (`Retry-After` for 429 and 503)."""
    retry_after = getattr(error, "retry_after_s", None)
    if retry_after is None:
        return []
    return [(b"retry-after", str(max(1, int(retry_after + 0.999))).encode())]


class TrafficLogFull(SidecarError):
    """The traffic log's memory buffer is full (storage refuses rows) and `traffic.when_full` is `refuse`:
    the request is refused before any upstream call, so nothing is served unlogged."""

    status = 503
    type = "server_error"
    error_class = "traffic_log_full"
    default_code = "traffic_log_full"
