"""Providers without an OpenAI-compatible API (Anthropic, Gemini, Bedrock, ...) through litellm.

litellm costs 4-6 s to import, so it is imported on the first call to such a deployment and only when one
is configured. Its responses are converted back to OpenAI JSON bytes so the rest of the proxy (relay,
traffic log) sees one format.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson

from core.litellm_loader import load_litellm
from sidecar.errors import render_error
from sidecar.upstreams.base import (
    Timeouts,
    UpstreamConnectError,
    UpstreamStreamError,
    UpstreamTimeoutError,
)

_PATH_TO_CALL = {
    "/chat/completions": "acompletion",
    "/completions": "atext_completion",
    "/embeddings": "aembedding",
}
_import_lock = asyncio.Lock()


async def _load_litellm() -> Any:
    async with _import_lock:
        # The first import takes seconds: keep it off the event loop.
        return await asyncio.to_thread(load_litellm)


class LitellmResponse:
    """A litellm result presented as an upstream HTTP response."""

    __slots__ = ("_body", "_scrub", "_stream", "retry_after_s", "status")

    def __init__(
        self, status: int, body: bytes = b"", stream: Any = None, retry_after_s: float | None = None,
        scrub: Callable[[str], str] = str,
    ) -> None:
        self.status = status
        self.retry_after_s = retry_after_s
        self._body = body
        self._stream = stream
        self._scrub = scrub

    async def read(self) -> bytes:
        return self._body

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        if self._stream is None:
            yield self._body
            return
        try:
            async for chunk in self._stream:
                yield b"data: " + _dump(chunk) + b"\n\n"
        except TimeoutError as exc:
            raise UpstreamTimeoutError("provider stream went silent") from exc
        except Exception as exc:  # boundary: any provider failure after the first byte ends the stream
            raise UpstreamStreamError(self._scrub(f"provider stream broke off: {exc.__class__.__name__}: {exc}")) from exc
        yield b"data: [DONE]\n\n"

    def release(self) -> None:
        self._stream = None


class LitellmClient:
    """Calls one litellm model (e.g. `anthropic/claude-3-5-haiku-latest`) with the deployment's key.

    litellm's error texts may quote the `api_base` (credentials included): every one goes through `scrub`.
    """

    def __init__(
        self, model: str, api_key: str | None, api_base: str | None, scrub: Callable[[str], str] = str
    ) -> None:
        self._model = model
        self._api_key = api_key
        self._api_base = api_base
        self._scrub = scrub

    async def send(self, path: str, body: bytes, payload: dict | None, timeouts: Timeouts) -> LitellmResponse:
        litellm = await _load_litellm()
        request = dict(payload or orjson.loads(body))
        request["model"] = self._model
        if self._api_key:
            request["api_key"] = self._api_key
        if self._api_base:
            request["api_base"] = self._api_base
        request.setdefault("timeout", timeouts.first_byte_s)
        call = getattr(litellm, _PATH_TO_CALL.get(path, "acompletion"))
        try:
            result = await call(**request)
        except Exception as exc:  # noqa: BLE001 - boundary: map litellm's exception family once, by status code
            return _map_exception(litellm, exc, self._scrub)
        if request.get("stream"):
            return LitellmResponse(200, stream=result, scrub=self._scrub)
        return LitellmResponse(200, body=_dump(result))

    async def aclose(self) -> None:
        return None


def _dump(obj: Any) -> bytes:
    if hasattr(obj, "model_dump"):
        return orjson.dumps(obj.model_dump(exclude_none=True), default=str)
    return orjson.dumps(obj, default=str)


def _map_exception(litellm: Any, exc: Exception, scrub: Callable[[str], str] = str) -> LitellmResponse:
    """litellm's exception as an upstream error or answer; its text is scrubbed of the deployment's URL secrets."""
    exceptions = litellm.exceptions
    text = scrub(str(exc))
    if isinstance(exc, exceptions.Timeout):
        raise UpstreamTimeoutError(f"provider timed out: {text}") from exc
    if isinstance(exc, exceptions.APIConnectionError):
        raise UpstreamConnectError(f"cannot reach provider: {text}") from exc
    status = getattr(exc, "status_code", None)
    if not isinstance(status, int):
        raise UpstreamConnectError(f"provider call failed: {exc.__class__.__name__}: {text}") from exc
    body = render_error(text, "upstream_error", code=exc.__class__.__name__)
    return LitellmResponse(status, body=body)
