"""Shadow mirroring: the candidate answers the same request in the background, is logged, and is never returned.

The shadow stage's `on_done` runs after the client has its whole answer; it only schedules the mirrored call.
Calls run at most `releases.shadow_concurrency` at a time with `releases.shadow_queue` waiting; beyond that a
mirror is dropped and counted (shadowing must never build up memory or compete with served traffic).
A mirrored call is always non-streaming and its failures are recorded on its own traffic row only.

Each mirror is one traffic row: `variant = "shadow"`, `shadow_of` = the served request's id, the prompt version
it rendered. It is billed apart: no virtual key, no user, and feature `shadow:<prompt or feature>`, so cost
rollups and budgets never charge the user or key for a comparison they did not ask for.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

import orjson

from core.tables.releases import SHADOW
from sidecar.errors import SidecarError
from sidecar.pipeline import BaseStage, Exchange
from sidecar.releases.stage import SHADOW_STATE, ShadowPlan
from sidecar.traffic.record import RawTraffic

log = logging.getLogger("tollgate.sidecar.releases")
_UPSTREAM_PATHS = {"chat.completions": "/chat/completions", "completions": "/completions", "embeddings": "/embeddings"}


class ShadowMirror:
    """Bounded background sender of mirrored requests."""

    def __init__(self, runtime: Any, concurrency: int, queue: int) -> None:
        self.runtime = runtime
        self.capacity = concurrency + queue
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self.sent = 0
        self.failed = 0
        self.dropped = 0

    def submit(self, plan: ShadowPlan, primary: RawTraffic) -> None:
        if len(self._tasks) >= self.capacity:
            self.dropped += 1
            return
        task = asyncio.get_running_loop().create_task(self._mirror(plan, primary))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        """Let the mirrors in flight finish briefly, then cancel the rest."""
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=2.0)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _mirror(self, plan: ShadowPlan, primary: RawTraffic) -> None:
        payload = dict(plan.payload)
        payload.pop("stream", None)
        payload.pop("stream_options", None)
        body = orjson.dumps(payload)
        record = RawTraffic(
            request_id=uuid.uuid4().hex, started_at=time.time(), endpoint=primary.endpoint, status=0, latency_ms=0.0,
            requested_model=payload.get("model"), segment=primary.segment,
            feature=f"shadow:{plan.prompt_name or primary.feature or primary.requested_model or ''}"[:200],
            prompt_name=plan.prompt_name or primary.prompt_name, prompt_version=plan.version,
            variant=SHADOW, experiment=primary.experiment, shadow_of=primary.request_id, request_body=body,
        )
        async with self._slots:
            t0 = time.perf_counter()
            try:
                await self._call(record, payload, body)
                self.sent += 1
            except SidecarError as error:
                record.status, record.error_class, record.error_message = error.status, error.error_class, error.message
                self.failed += 1
            except Exception as exc:  # noqa: BLE001 - boundary: a shadow failure is data, never the client's problem
                log.warning("shadow call for %s failed: %s", primary.request_id, exc)
                record.status, record.error_class = 500, "internal_error"
                record.error_message = f"{exc.__class__.__name__}: {exc}"
                self.failed += 1
            finally:
                record.latency_ms = (time.perf_counter() - t0) * 1000.0
                traffic = self.runtime.traffic
                if traffic is not None:
                    traffic.submit(record)

    async def _call(self, record: RawTraffic, payload: dict[str, Any], body: bytes) -> None:
        started = await self.runtime.forwarder.start(_UPSTREAM_PATHS.get(record.endpoint, "/chat/completions"),
                                                     payload, body)
        record.attempts, record.served_model = started.attempts, started.route.name
        record.deployment, record.provider = started.deployment.label, started.deployment.provider
        try:
            record.response_body = await started.response.read()
            record.status = started.response.status
        finally:
            started.response.release()
            started.deployment.outstanding -= 1
        if record.status != 200:
            record.error_class = "client_error" if 400 <= record.status < 500 else "upstream_error"
            record.error_message = f"upstream answered HTTP {record.status}"


class ShadowStage(BaseStage):
    """Sends the mirror the release stage prepared, after a successful answer went out."""

    name = "shadow"

    def __init__(self, mirror: ShadowMirror) -> None:
        self.mirror = mirror

    def on_done(self, exchange: Exchange) -> None:
        plan = exchange.state.get(SHADOW_STATE)
        if plan is not None and exchange.record.status == 200:
            self.mirror.submit(plan, exchange.record)
