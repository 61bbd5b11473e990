"""Calling the sidecar's own OpenAI endpoints in-process, as if a client had sent the request over HTTP.

A batch request thereby takes the live path: stages (cache, guards, routing), retries and fallbacks,
admission, metrics and the traffic log, tagged with segment `batch`, and as the key that created the batch: the call carries the access stage's
per-process secret with the key id (`internal_credential`), which no outside client can know, so the stage
applies that key's models, limits and budget without the raw token ever being stored.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from sidecar.asgi import Message
from sidecar.batch.worker import Call
from sidecar.callers import INTERNAL_HEADER


def endpoint_caller(runtime: Any) -> Call:
    """A function `(url, body, request_id) -> (status, response body)` over the sidecar's endpoints."""
    from sidecar.handlers import make_endpoints

    endpoints = make_endpoints(runtime)
    access = None
    if runtime.settings.access.active:
        from sidecar.access import find_access_stage

        access = find_access_stage(runtime)

    async def call(url: str, body: dict[str, Any], request_id: str, key_id: str | None) -> tuple[int, bytes]:
        endpoint = endpoints[url]
        payload = orjson.dumps(body)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
            (b"x-request-id", request_id.encode()),
            (b"x-tollgate-segment", b"batch"),
        ]
        if access is not None and key_id is not None:
            headers.append((INTERNAL_HEADER.encode(), access.internal_credential(key_id).encode()))
        scope = {
            "type": "http",
            "method": "POST",
            "path": url,
            "query_string": b"",
            "headers": headers,
        }
        delivered = asyncio.Event()
        sent = False
        status = 0
        parts: list[bytes] = []

        async def receive() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": payload, "more_body": False}
            await delivered.wait()  # the "client" stays connected until the answer is complete
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                parts.append(message.get("body", b""))
                if not message.get("more_body", False):
                    delivered.set()

        await endpoint(scope, receive, send)
        return status, b"".join(parts)

    return call
