"""The harness's client to the sidecar: one chat call in, one recordable response out.

Calls stream by default so time to first token is measured from the caller's side; usage comes from the
final chunk (the sidecar asks every upstream for it). Cost is priced here with `core.pricing`, the same
price book the sidecar's traffic log uses.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson

from core.pricing import PriceBook
from harness.errors import HarnessError
from harness.results import LLMResult


class ModelCallError(HarnessError):
    """The sidecar answered with an error, or could not be reached."""


class SidecarClient:
    """Async client for chat completions through the sidecar at `base_url` (ending in `/v1`)."""

    def __init__(self, base_url: str, *, stream: bool = True, timeout_s: float = 300.0,
                 headers: dict[str, str] | None = None, max_connections: int = 64) -> None:
        self.base_url = base_url.rstrip("/")
        self.stream = stream
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._client = httpx.AsyncClient(
            base_url=self.base_url, timeout=httpx.Timeout(timeout_s, connect=10.0), limits=limits,
            headers={"Content-Type": "application/json", **(headers or {})},
        )

    async def acomplete(self, request: dict[str, Any], tags: dict[str, str] | None = None) -> dict[str, Any]:
        """Call the model; returns a JSON-ready response record (what recordings store)."""
        body = dict(request)
        if self.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        started = time.perf_counter()
        try:
            if self.stream:
                return await self._stream(body, tags or {}, started)
            response = await self._client.post("/chat/completions", content=orjson.dumps(body), headers=tags)
        except httpx.TimeoutException as exc:
            raise ModelCallError(f"sidecar at {self.base_url} timed out ({exc.__class__.__name__})") from exc
        except httpx.TransportError as exc:
            raise ModelCallError(f"sidecar at {self.base_url} is unreachable ({exc.__class__.__name__})") from exc
        latency_ms = (time.perf_counter() - started) * 1000.0
        data = _json_or_error(response)
        message = (data.get("choices") or [{}])[0].get("message") or {}
        return _record(message.get("content") or "", data.get("model"), data.get("usage"), latency_ms, None,
                       (data.get("choices") or [{}])[0].get("finish_reason"))

    async def _stream(self, body: dict[str, Any], tags: dict[str, str], started: float) -> dict[str, Any]:
        parts: list[str] = []
        usage = model = finish = None
        ttft_ms = None
        async with self._client.stream("POST", "/chat/completions", content=orjson.dumps(body), headers=tags) as response:
            if response.status_code != 200:
                await response.aread()
                _json_or_error(response)
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                payload = line[6:]
                if payload == "[DONE]":
                    break
                chunk = orjson.loads(payload)
                if "error" in chunk:
                    raise ModelCallError(f"stream ended with an error: {chunk['error'].get('message')}")
                model = chunk.get("model") or model
                usage = chunk.get("usage") or usage
                for choice in chunk.get("choices") or ():
                    content = (choice.get("delta") or {}).get("content")
                    if content:
                        if ttft_ms is None:
                            ttft_ms = (time.perf_counter() - started) * 1000.0
                        parts.append(content)
                    finish = choice.get("finish_reason") or finish
            else:
                raise ModelCallError("stream ended without [DONE]")
        latency_ms = (time.perf_counter() - started) * 1000.0
        return _record("".join(parts), model, usage, latency_ms, ttft_ms, finish)

    async def aclose(self) -> None:
        await self._client.aclose()


def _json_or_error(response: httpx.Response) -> dict[str, Any]:
    try:
        data = orjson.loads(response.content)
    except orjson.JSONDecodeError as exc:
        raise ModelCallError(f"sidecar answered HTTP {response.status_code} with a body that is not JSON") from exc
    if response.status_code != 200 or not isinstance(data, dict):
        error = data.get("error") if isinstance(data, dict) else None
        message = error.get("message") if isinstance(error, dict) else str(data)[:200]
        raise ModelCallError(f"sidecar answered HTTP {response.status_code}: {message}")
    return data


def _record(text: str, model: str | None, usage: dict | None, latency_ms: float, ttft_ms: float | None,
            finish_reason: str | None) -> dict[str, Any]:
    return {
        "text": text,
        "model": model,
        "usage": usage,
        "latency_ms": round(latency_ms, 3),
        "ttft_ms": None if ttft_ms is None else round(ttft_ms, 3),
        "finish_reason": finish_reason,
    }


def to_result(response: dict[str, Any], *, prices: PriceBook, requested_model: str | None,
              replayed: bool = False, request_hash: str | None = None) -> LLMResult:
    """An `LLMResult` from a response record (live or replayed); cost is priced now."""
    usage = response.get("usage") or {}
    tokens_in = usage.get("prompt_tokens")
    tokens_out = usage.get("completion_tokens")
    model = requested_model or response.get("model")
    return LLMResult(
        text=response.get("text") or "",
        model=response.get("model") or requested_model,
        latency_ms=float(response.get("latency_ms") or 0.0),
        ttft_ms=response.get("ttft_ms"),
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        cost_usd=prices.cost(model, tokens_in, tokens_out),
        replayed=replayed,
        request_hash=request_hash,
        raw={"finish_reason": response.get("finish_reason")},
    )


def failed_result(message: str, *, requested_model: str | None, request_hash: str | None = None) -> LLMResult:
    return LLMResult(text="", model=requested_model, latency_ms=0.0, ttft_ms=None, tokens_in=None,
                     tokens_out=None, cost_usd=None, error=message, request_hash=request_hash)
