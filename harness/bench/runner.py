"""The load modes of `tollgate bench`.

* `sequential`: one request at a time (a closed loop of one).
* `sweep`: closed loops at fixed concurrency levels, one level after another; each worker sends its next
  request as soon as its previous one ends.
* `rate`: an open loop. Arrival times are drawn up front (exponential gaps, i.e. a Poisson process at
  `rate` requests/s) and each request is *due* at its arrival time whatever happened to the ones before.
  At most `max_concurrency` are in flight; a request that finds every slot taken waits in the client, and
  that wait is part of its measured latency (see `harness.bench.timing`) and is reported as `queue_ms`.

A level ends when its request count is reached or its duration has passed (whichever comes first); requests
already sent are waited for, so the level's wall time runs to its last completion.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

import numpy as np

from core.tables import utc_now
from harness.bench.errors import BenchError
from harness.bench.progress import Progress, SilentProgress
from harness.bench.results import BenchRun, LevelResult
from harness.bench.stats import SLO, summarize
from harness.bench.timing import BenchClient, RequestRecord
from harness.bench.workload import Workload
from harness.provenance import collect_provenance

MODES: tuple[str, ...] = ("sequential", "sweep", "rate")
DEFAULT_REQUESTS = 50
DEFAULT_RATE_DURATION_S = 10.0
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class BenchPlan:
    """How much load to offer, and how; `checked()` fills defaults and rejects impossible plans."""

    mode: str = "sequential"
    requests: int | None = None
    duration_s: float | None = None
    concurrency: tuple[int, ...] = (1,)
    rate: float | None = None
    max_concurrency: int = 256
    warmup: int = 0
    seed: int = 0
    timeout_s: float = 300.0

    def checked(self) -> BenchPlan:
        if self.mode not in MODES:
            raise BenchError(f"unknown mode {self.mode!r} (choose from {', '.join(MODES)})")
        if self.requests is not None and self.requests < 1:
            raise BenchError(f"--requests must be at least 1, got {self.requests}")
        if self.duration_s is not None and not (self.duration_s > 0 and math.isfinite(self.duration_s)):
            raise BenchError(f"--duration must be a positive number of seconds, got {self.duration_s}")
        if any(c < 1 for c in self.concurrency) or not self.concurrency:
            raise BenchError("--concurrency levels must be integers of at least 1")
        if self.max_concurrency < 1 or self.warmup < 0 or self.timeout_s <= 0:
            raise BenchError("--max-concurrency and --timeout must be positive, --warmup not negative")
        plan = self
        if self.mode == "rate":
            if self.rate is None or not (self.rate > 0 and math.isfinite(self.rate)):
                raise BenchError("rate mode needs --rate R (requests per second, > 0)")
            if self.duration_s is None:
                plan = _replace(plan, duration_s=DEFAULT_RATE_DURATION_S)
        elif self.requests is None and self.duration_s is None:
            plan = _replace(plan, requests=DEFAULT_REQUESTS)
        if self.mode == "sequential":
            plan = _replace(plan, concurrency=(1,))
        return plan

    @property
    def connections(self) -> int:
        return self.max_concurrency if self.mode == "rate" else max(self.concurrency)


def _replace(plan: BenchPlan, **changes: Any) -> BenchPlan:
    return BenchPlan(**{**asdict(plan), **changes})


def poisson_arrivals(rate: float, duration_s: float, limit: int | None = None, seed: int = 0) -> list[float]:
    """Arrival offsets (seconds from the start) of a Poisson process at `rate`/s within `duration_s`."""
    rng = np.random.default_rng(seed)
    expected = rate * duration_s
    arrivals: list[float] = []
    last = 0.0
    while last <= duration_s and (limit is None or len(arrivals) < limit):
        batch = np.cumsum(rng.exponential(1.0 / rate, size=max(16, int(expected + 4 * math.sqrt(expected)))))
        offsets = last + batch
        arrivals.extend(float(t) for t in offsets if t <= duration_s)
        last = float(offsets[-1])
    return arrivals if limit is None else arrivals[:limit]


def run_bench(url: str, workload: Workload, plan: BenchPlan, *, slos: tuple[SLO, ...] = (),
              api_key: str | None = None, progress: Progress | None = None) -> BenchRun:
    """Run the plan against `url` on a fresh event loop (uvloop when installed)."""
    return _run_loop(run_bench_async(url, workload, plan, slos=slos, api_key=api_key, progress=progress))


async def run_bench_async(url: str, workload: Workload, plan: BenchPlan, *, slos: tuple[SLO, ...] = (),
                          api_key: str | None = None, progress: Progress | None = None) -> BenchRun:
    """Run every level of the plan with one client session; returns the run with summaries."""
    plan = plan.checked()
    shown = progress or SilentProgress()
    meta: dict[str, Any] = {
        "url": url, "mode": plan.mode, "plan": asdict(plan), "workload": workload.describe(),
        "slos": {slo.name: slo.limit_ms for slo in slos}, "created_at": utc_now(),
        "provenance": collect_provenance(),
    }
    client = BenchClient(url, api_key=api_key, timeout_s=plan.timeout_s, connections=plan.connections)
    try:
        for index in range(plan.warmup):
            await client.measure(workload.body(index), due=time.perf_counter(), index=index, level="warmup",
                                 start=0.0)
        levels = [await _run_level(client, workload, plan, level, shown, slos) for level in _levels(plan)]
    finally:
        await client.aclose()
    return BenchRun(meta=meta, levels=levels)


def _levels(plan: BenchPlan) -> list[tuple[str, int | None]]:
    if plan.mode == "rate":
        return [(f"rate={plan.rate:g}", None)]
    if plan.mode == "sequential":
        return [("sequential", 1)]
    return [(f"c={c}", c) for c in plan.concurrency]


async def _run_level(client: BenchClient, workload: Workload, plan: BenchPlan, level: tuple[str, int | None],
                     progress: Progress, slos: tuple[SLO, ...]) -> LevelResult:
    label, concurrency = level
    records: list[RequestRecord] = []
    start = time.perf_counter()

    def done(record: RequestRecord) -> None:
        records.append(record)
        progress.advance(record)

    if concurrency is None:
        assert plan.rate is not None and plan.duration_s is not None  # checked() guarantees both
        arrivals = poisson_arrivals(plan.rate, plan.duration_s, plan.requests, plan.seed)
        progress.start(label, len(arrivals))
        await _open_loop(client, workload, label, arrivals, plan.max_concurrency, start, done)
    else:
        progress.start(label, plan.requests)
        await _closed_loop(client, workload, label, concurrency, plan, start, done)
    wall = time.perf_counter() - start
    progress.finish()
    records.sort(key=lambda r: r.index)
    return LevelResult(label=label, mode=plan.mode, concurrency=concurrency, rate=plan.rate if concurrency is None
                       else None, duration_s=wall, summary=summarize(records, wall, slos), records=records)


async def _closed_loop(client: BenchClient, workload: Workload, label: str, concurrency: int, plan: BenchPlan,
                       start: float, done: Callable[[RequestRecord], None]) -> None:
    deadline = start + plan.duration_s if plan.duration_s is not None else math.inf
    counter = itertools.count()

    async def worker() -> None:
        while True:
            now = time.perf_counter()
            if now >= deadline:
                return
            index = next(counter)
            if plan.requests is not None and index >= plan.requests:
                return
            done(await client.measure(workload.body(index), due=now, index=index, level=label, start=start))

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def _open_loop(client: BenchClient, workload: Workload, label: str, arrivals: list[float],
                     max_concurrency: int, start: float, done: Callable[[RequestRecord], None]) -> None:
    slots = asyncio.Semaphore(max_concurrency)

    async def send(index: int, due: float) -> None:
        async with slots:
            done(await client.measure(workload.body(index), due=due, index=index, level=label, start=start))

    tasks: list[asyncio.Task[None]] = []
    for index, offset in enumerate(arrivals):
        due = start + offset
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        # Late or not, the request keeps its due time: a late dispatcher is client-side delay too.
        tasks.append(asyncio.create_task(send(index, due)))
    await asyncio.gather(*tasks)


def _run_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency
        factory = None
    else:
        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coroutine)
