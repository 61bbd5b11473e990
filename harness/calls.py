"""Model calls for a whole suite, made concurrently on a background event loop.

pytest runs tests one at a time; waiting for each model call in turn would make a 1,000-case suite take
1,000 round trips. Each case's request is known from its markers before its test body runs, so the pool
submits calls ahead (all of them in a single process, a window ahead under xdist) and each test only waits
for its own future.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from typing import Any

from core.pricing import PriceBook
from harness.client import ModelCallError, SidecarClient, failed_result, to_result
from harness.errors import HarnessError
from harness.recording import RecordingStore, RecordMode, request_hash
from harness.results import LLMResult


class CallPool:
    """Bounded concurrent model calls keyed by test id; a key is called once until its result is taken."""

    def __init__(self, client_factory: Callable[[], SidecarClient], *, prices: PriceBook, concurrency: int = 16,
                 recordings: RecordingStore | None = None, mode: RecordMode = RecordMode.OFF) -> None:
        self._client_factory = client_factory
        self._prices = prices
        self._concurrency = concurrency
        self._recordings = recordings
        self._mode = mode
        self._futures: dict[str, concurrent.futures.Future[LLMResult]] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tollgate-calls", daemon=True)
        self._thread.start()
        self._client: SidecarClient | None = None
        self._semaphore: asyncio.Semaphore | None = None
        asyncio.run_coroutine_threadsafe(self._setup(), self._loop).result()

    async def _setup(self) -> None:
        self._client = self._client_factory()
        self._semaphore = asyncio.Semaphore(self._concurrency)

    def submit(self, key: str, request: dict[str, Any], *, tags: dict[str, str] | None = None,
               prompt: str | None = None, case: str | None = None) -> concurrent.futures.Future[LLMResult]:
        """Start the call for `key` unless it was started already; returns its future."""
        future = self._futures.get(key)
        if future is None:
            coro = self._call(request, tags or {}, prompt, case)
            future = asyncio.run_coroutine_threadsafe(coro, self._loop)
            self._futures[key] = future
        return future

    def take(self, key: str, timeout_s: float | None = None) -> LLMResult:
        """Wait for the call of `key` and hand its result over; the pool keeps no reference to it, so memory
        does not grow with the suite (a later `submit` of the same key makes a new call)."""
        future = self._futures.get(key)
        if future is None:
            raise HarnessError(f"no model call was submitted for {key}")
        result = future.result(timeout=timeout_s)
        del self._futures[key]
        return result

    def submitted(self, key: str) -> bool:
        return key in self._futures

    async def _call(self, request: dict[str, Any], tags: dict[str, str], prompt: str | None,
                    case: str | None) -> LLMResult:
        assert self._semaphore is not None and self._client is not None
        client = self._client
        model = request.get("model")
        async with self._semaphore:
            digest = request_hash(request)
            try:
                if self._recordings is None or self._mode is RecordMode.OFF:
                    response = await client.acomplete(request, tags)
                    return to_result(response, prices=self._prices, requested_model=model, request_hash=digest)
                fetched = await self._recordings.afetch(
                    request, lambda body: client.acomplete(body, tags), self._mode, prompt=prompt, case=case
                )
            except HarnessError as exc:  # ModelCallError, RecordingMissError: data on the case, not a crash
                return failed_result(str(exc), requested_model=model, request_hash=digest)
            except Exception as exc:  # noqa: BLE001 - boundary: one call's failure must not stop the suite
                message = f"{exc.__class__.__name__}: {exc}"
                return failed_result(message, requested_model=model, request_hash=digest)
            return to_result(fetched.response, prices=self._prices, requested_model=model,
                             replayed=fetched.replayed, request_hash=fetched.request_hash)

    def close(self) -> None:
        """Cancel what is still pending, close the client and stop the loop."""
        for future in self._futures.values():
            future.cancel()
        if self._client is not None:
            asyncio.run_coroutine_threadsafe(self._client.aclose(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


__all__ = ["CallPool", "ModelCallError"]
