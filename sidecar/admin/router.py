"""A small JSON router for the admin API and the sidecar's other non-proxy endpoints.

Paths are matched segment by segment; `{name}` captures a segment. Handlers receive the request as a
`JsonRequest` and return `(status, document)`; a `SidecarError` becomes the OpenAI error shape.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from sidecar.asgi import (
    JSON_HEADERS,
    Receive,
    Scope,
    Send,
    read_body,
    request_headers,
    send_bytes,
    send_error,
)
from sidecar.callers import ANONYMOUS, Caller, Identify
from sidecar.errors import Forbidden, MethodNotAllowed, NotFound, SidecarError, Unauthorized
from sidecar.validation import parse_json_object

MAX_ADMIN_BODY = 1 << 20


@dataclass(slots=True)
class JsonRequest:
    method: str
    path: str
    params: dict[str, str]
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    caller: Caller = ANONYMOUS
    """Who calls (set when the router has an `identify` check)."""
    _json: Any = field(default=None)

    def json(self) -> dict[str, Any]:
        """The body as a JSON object (400 in the OpenAI shape when it is not one)."""
        if self._json is None:
            self._json = parse_json_object(self.body) if self.body else {}
        return self._json


JsonHandler = Callable[[JsonRequest], Awaitable[tuple[int, Any]]]


class JsonRouter:
    """Routes under one prefix.

    `require_key` means every route needs `Authorization: Bearer <admin key>`; `identify` means every route
    first asks who calls (401 when keys are required and missing) and hands the caller to the handler.
    """

    def __init__(self, prefix: str, *, admin_key: str | None = None, require_key: bool = False,
                 identify: Identify | None = None) -> None:
        self.prefix = prefix.rstrip("/")
        self._admin_key = admin_key
        self._require_key = require_key
        self._identify = identify
        self._routes: list[tuple[str, list[str], JsonHandler]] = []

    def add(self, method: str, path: str, handler: JsonHandler) -> None:
        """Register `handler` for `method` on `path` (relative to the prefix, `{name}` captures)."""
        self._routes.append((method.upper(), [s for s in path.strip("/").split("/") if s], handler))

    def matches(self, path: str) -> bool:
        return path == self.prefix or path.startswith(self.prefix + "/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._dispatch(scope, receive, send)
        except SidecarError as error:
            await send_error(send, error)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = request_headers(scope)
        if self._require_key:
            self._check_key(headers.get("authorization", ""))
        caller = self._identify(headers) if self._identify is not None else ANONYMOUS
        segments = [s for s in scope["path"][len(self.prefix):].strip("/").split("/") if s]
        allowed: list[str] = []
        for method, pattern, handler in self._routes:
            params = _match(pattern, segments)
            if params is None:
                continue
            if method != scope["method"]:
                allowed.append(method)
                continue
            body = await read_body(receive, MAX_ADMIN_BODY, None)
            query = _query(scope.get("query_string", b""))
            request = JsonRequest(scope["method"], scope["path"], params, query, headers, body, caller)
            status, document = await handler(request)
            await send_bytes(send, status, orjson.dumps(document), JSON_HEADERS)
            return
        if allowed:
            raise MethodNotAllowed(f"{scope['path']} accepts {', '.join(sorted(set(allowed)))}, not {scope['method']}")
        raise NotFound(f"no route for {scope['method']} {scope['path']}")

    def _check_key(self, authorization: str) -> None:
        if not self._admin_key:
            raise Forbidden("the admin API is disabled: set the admin key (access.admin_key_env) to enable it")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self._admin_key.encode()):
            raise Unauthorized("the admin API needs 'Authorization: Bearer <admin key>'")


def _match(pattern: list[str], segments: list[str]) -> dict[str, str] | None:
    if len(pattern) != len(segments):
        return None
    params: dict[str, str] = {}
    for expected, actual in zip(pattern, segments, strict=True):
        if expected.startswith("{") and expected.endswith("}"):
            params[expected[1:-1]] = actual
        elif expected != actual:
            return None
    return params


def _query(raw: bytes) -> dict[str, str]:
    from urllib.parse import parse_qsl

    return dict(parse_qsl(raw.decode("latin-1")))
