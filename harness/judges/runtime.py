"""Where judge scorers find their judges: the runtime of the current process.

Inside a pytest session the plugin binds a factory that builds the runtime on first use, with the session's
sidecar as the judge endpoint and the configured database for the cache, so a run without judge scorers
never imports deepeval. Commands and notebooks build one with `JudgeRuntime(...)` and `use_runtime(runtime)`.
A scorer runs synchronously inside a test; the runtime runs the panel on its own background event loop,
so it works the same whether or not the caller already has a running loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa

from harness.errors import HarnessError
from harness.judges.metrics import JudgeItem, MetricSpec
from harness.judges.model import JudgeSpec, Transport

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from core.config.judges import JudgeSettings
    from harness.judges.panel import Judgement, JudgePanel

T = TypeVar("T")


class JudgeRuntime:
    """Judge settings, endpoint and database; builds panels and counts their calls."""

    def __init__(self, settings: JudgeSettings, base_url: str, *, default_model: str,
                 engine: Engine | None = None, engine_factory: Callable[[], Engine] | None = None,
                 transport: Transport | None = None) -> None:
        self.settings = settings
        self.transport = transport
        self.base_url = base_url
        self.default_model = default_model
        self._engine = engine
        self._engine_factory = engine_factory
        self._panels: dict[tuple[tuple[str, ...], int, str], JudgePanel] = {}
        self._agreements: dict[tuple[str, str, str], float | None] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            if self._engine_factory is None:
                raise HarnessError("the judge runtime has no database")
            self._engine = self._engine_factory()
        return self._engine

    def judge_specs(self, models: list[str] | None = None) -> list[JudgeSpec]:
        names = models or self.settings.models or [self.settings.model or self.default_model]
        return [JudgeSpec(name, self.settings.temperature, self.settings.max_tokens) for name in names]

    def panel(self, models: list[str] | None = None, samples: int | None = None,
              aggregate: str | None = None) -> JudgePanel:
        """The panel for these judges (default: the configured ones), shared so its counts add up."""
        from harness.judges.cache import JudgeCache
        from harness.judges.panel import JudgePanel

        specs = self.judge_specs(models)
        key = (tuple(s.id for s in specs), samples or self.settings.samples, aggregate or self.settings.aggregate)
        with self._lock:
            panel = self._panels.get(key)
            if panel is None:
                cache = JudgeCache(self.engine) if self.settings.cache else None
                panel = JudgePanel(specs, self.base_url, cache=cache, samples=key[1], aggregate=key[2],
                                   timeout_s=self.settings.timeout_s, feature=self.settings.feature,
                                   transport=self.transport)
                self._panels[key] = panel
        return panel

    def judge(self, spec: MetricSpec, item: JudgeItem, *, threshold: float, models: list[str] | None = None,
              samples: int | None = None, aggregate: str | None = None) -> Judgement:
        """Judge one item now (blocking), on the runtime's own event loop."""
        panel = self.panel(models, samples, aggregate)
        return self.run(panel.ajudge(spec, item, threshold=threshold))

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=self._loop.run_forever, name="tollgate-judges", daemon=True)
                self._thread.start()
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def agreement(self, metric: str, rubric_hash: str, judges: str) -> float | None:
        """Cohen's kappa of the latest calibration of these judges on this metric and rubric (None: none)."""
        key = (metric, rubric_hash, judges)
        if key not in self._agreements:
            from core.tables import JudgeCalibration

            table = JudgeCalibration.__table__  # type: ignore[attr-defined]
            query = (sa.select(table.c.kappa)
                     .where(table.c.metric == metric, table.c.rubric_hash == rubric_hash, table.c.judges == judges)
                     .order_by(table.c.created_at.desc(), table.c.id.desc()).limit(1))
            with self.engine.connect() as connection:
                row = connection.execute(query).first()
            self._agreements[key] = None if row is None or row[0] is None else float(row[0])
        return self._agreements[key]

    def counts(self) -> dict[str, int]:
        """Judge calls made, verdicts read from the cache and verdicts that failed, over every panel."""
        panels = list(self._panels.values())
        return {"calls": sum(p.calls for p in panels), "cached": sum(p.cache_hits for p in panels),
                "failed": sum(p.failures for p in panels)}

    def close(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread is not None:
                self._thread.join(timeout=10)
            self._loop.close()
            self._loop = None
        if self._engine is not None and self._engine_factory is not None:
            self._engine.dispose()


_active: JudgeRuntime | None = None
_factory: Callable[[], JudgeRuntime] | None = None
_state_lock = threading.Lock()


def use_runtime(runtime: JudgeRuntime | None) -> None:
    """Make `runtime` the one judge scorers use in this process (None: back to the bound factory)."""
    global _active
    with _state_lock:
        _active = runtime


def bind_runtime_factory(factory: Callable[[], JudgeRuntime] | None) -> None:
    """Build the runtime with `factory` the first time a judge scorer runs (what the plugin does)."""
    global _factory
    with _state_lock:
        _factory = factory


def active_runtime() -> JudgeRuntime:
    """The runtime judge scorers use; HarnessError when neither a runtime nor a factory was given."""
    global _active
    with _state_lock:
        if _active is None and _factory is not None:
            _active = _factory()
        if _active is None:
            raise HarnessError("judge scorers need a judge runtime: run them under the tollgate pytest plugin "
                               "or call harness.judges.use_runtime(JudgeRuntime(...))")
        return _active


def current_runtime() -> JudgeRuntime | None:
    """The runtime if one was built, without building it."""
    return _active


def close_runtime() -> dict[str, int] | None:
    """Close the built runtime (if any) and forget it and the factory; returns its final counts."""
    global _active, _factory
    with _state_lock:
        runtime, _active, _factory = _active, None, None
    if runtime is None:
        return None
    counts = runtime.counts()
    runtime.close()
    return counts
