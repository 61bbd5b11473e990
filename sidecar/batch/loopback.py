"""Calling the sidecar's own OpenAI endpoints in-process, as if a client had sent the request over HTTP.

A batch request thereby takes the live path: stages (cache, guards, routing), retries and fallbacks,
admission, metrics and the traffic log, tagged with segment `batch`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from sidecar.asgi import Message
from sidecar.batch.worker import Call


def endpoint_caller(runtime: Any) -> Call:
    """A function `(url, body, request_id) -> (status, response body)` over the sidecar's endpoints."""
    from sidecar.handlers import make_endpoints

    endpoints = make_endpoints(runtime)

    async def call(url: str, body: dict[str, Any], request_id: str) -> tuple[int, bytes]:
        endpoint = endpoints[url]
        payload = orjson.dumps(body)
        scope = {
            "type": "http",
            "method": "POST",
            "path": url,
            "query_string": b"",
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"x-request-id", request_id.encode()),
                (b"x-tollgate-segment", b"batch"),
            ],
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
