"""Queue-based admission: at most `max_in_flight` requests per deployment, the rest wait in a bounded queue.

A request that finds its deployment full waits in the deployment's queue, live traffic ahead of batch jobs
(priority from `ADMISSION_PRIORITY`, first come first served within a priority). A full queue, or a wait
past the deadline, ends in `Overloaded` (503 with `Retry-After`).

Slots are counted by the deployment's own `outstanding` counter, which the forwarder raises when it sends
and the endpoint lowers when the answer is done. That counter says nothing when it falls, so while someone
waits, a ticker task looks at it every few milliseconds; with nobody waiting, admission costs one
comparison and no task runs.
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from sidecar.errors import Overloaded

LIVE = 0
BATCH = 1
ADMISSION_PRIORITY: contextvars.ContextVar[int] = contextvars.ContextVar("tollgate_admission_priority", default=LIVE)
"""The priority of requests made in the current context: `LIVE` (default) or `BATCH` (waits behind live)."""

TICK_S = 0.002


@dataclass(frozen=True, slots=True)
class Limits:
    """A deployment's admission limits."""

    max_in_flight: int
    queue_size: int
    queue_timeout_s: float


@dataclass(order=True, slots=True)
class _Waiter:
    priority: int
    seq: int
    future: asyncio.Future[None] = field(compare=False)
    since: float = field(compare=False, default=0.0)


class Gate:
    """The admission queue of one deployment."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.rejected = 0
        self.timed_out = 0
        self._heap: list[_Waiter] = []
        self._waiting = 0
        self._reserved = 0  # granted to a waiter that has not resumed yet
        self._seq = itertools.count()
        self._ticker: asyncio.Task[None] | None = None
        self._wait_estimate_s = 0.0

    @property
    def depth(self) -> int:
        """Requests waiting now."""
        return self._waiting

    async def enter(self, deployment: Any) -> None:
        """Return when `deployment` may take one more request; the caller raises its `outstanding` at once."""
        limits = self.limits
        if not self._waiting and deployment.outstanding + self._reserved < limits.max_in_flight:
            return
        if self._waiting >= limits.queue_size:
            self.rejected += 1
            raise Overloaded(
                f"{deployment.label} is at capacity ({limits.max_in_flight} in flight, {self._waiting} waiting)",
                retry_after_s=self.retry_after_s(),
                code="queue_full",
            )
        waiter = _Waiter(ADMISSION_PRIORITY.get(), next(self._seq), asyncio.get_running_loop().create_future(),
                         time.monotonic())
        heapq.heappush(self._heap, waiter)
        self._waiting += 1
        self._ensure_ticker(deployment)
        try:
            await asyncio.wait_for(asyncio.shield(waiter.future), limits.queue_timeout_s)
        except TimeoutError:
            if not waiter.future.done():
                waiter.future.cancel()
                self._waiting -= 1
                self.timed_out += 1
                self._prune()
                raise Overloaded(
                    f"{deployment.label}: no capacity within {limits.queue_timeout_s:g} s",
                    retry_after_s=self.retry_after_s(),
                    code="queue_timeout",
                ) from None
        except asyncio.CancelledError:
            if waiter.future.done() and not waiter.future.cancelled():
                self._reserved -= 1
            elif not waiter.future.done():
                waiter.future.cancel()
                self._waiting -= 1
                self._prune()
            raise
        self._reserved -= 1
        waited = time.monotonic() - waiter.since
        self._wait_estimate_s = 0.8 * self._wait_estimate_s + 0.2 * waited

    def _prune(self) -> None:
        # Waiters that gave up stay in the heap until a grant reaches them; while the deployment is stuck,
        # drop them here so the heap stays about as large as the queue.
        if len(self._heap) > 2 * self.limits.queue_size + 16:
            self._heap = [waiter for waiter in self._heap if not waiter.future.done()]
            heapq.heapify(self._heap)

    def retry_after_s(self) -> float:
        """When a refused client should come back: the recent queue wait, at least one second."""
        return max(1.0, self._wait_estimate_s)

    def _ensure_ticker(self, deployment: Any) -> None:
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.get_running_loop().create_task(self._tick(deployment))

    async def _tick(self, deployment: Any) -> None:
        while self._waiting:
            self._grant(deployment)
            if self._waiting:
                await asyncio.sleep(TICK_S)

    def _grant(self, deployment: Any) -> None:
        heap = self._heap
        while heap and deployment.outstanding + self._reserved < self.limits.max_in_flight:
            waiter = heapq.heappop(heap)
            if waiter.future.done():  # timed out or cancelled: already uncounted
                continue
            waiter.future.set_result(None)
            self._waiting -= 1
            self._reserved += 1


class Admission:
    """The gates of the deployments that have `max_in_flight` set, by deployment label."""

    def __init__(self, gates: dict[str, Gate]) -> None:
        self.gates = gates

    def gate(self, label: str) -> Gate | None:
        return self.gates.get(label)

    def depths(self) -> dict[tuple[str, ...], float]:
        """Queue depth per deployment (read at scrape time)."""
        return {(label,): float(gate.depth) for label, gate in self.gates.items()}

    def refusals(self) -> dict[tuple[str, ...], float]:
        """Requests refused per deployment and reason, since start."""
        found: dict[tuple[str, ...], float] = {}
        for label, gate in self.gates.items():
            found[(label, "queue_full")] = float(gate.rejected)
            found[(label, "queue_timeout")] = float(gate.timed_out)
        return found


def build_admission(settings: Any) -> Admission | None:
    """Gates for the configured deployments with a `max_in_flight`; None when no deployment has one."""
    from sidecar.upstreams.deployments import deployment_label

    gates: dict[str, Gate] = {}
    for name, route in settings.models.items():
        for index, deployment in enumerate(route.deployments):
            if deployment.max_in_flight is None:
                continue
            limits = Limits(deployment.max_in_flight, deployment.queue_size, deployment.queue_timeout_s)
            gates[deployment_label(name, deployment, index)] = Gate(limits)
    return Admission(gates) if gates else None
