"""The test-running side of a session: the sidecar, the call pool and look-ahead submission of model calls."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import pytest

from core.prompts import PromptRegistry
from core.settings import Settings
from harness.calls import CallPool
from harness.client import SidecarClient, failed_result
from harness.errors import HarnessError
from harness.keys import CASE_STATE
from harness.options import Options
from harness.recording import RecordingStore, RecordMode
from harness.results import LLMResult
from harness.sidecar_process import shared_sidecar
from harness.tracing import HarnessTracer

LOOKAHEAD_PER_SLOT = 4  # calls submitted ahead of the running test, per slot of concurrency


class TestSession:
    """Model calls for the tests this process runs; everything is started on first use."""

    def __init__(self, config: pytest.Config, options: Options, settings: Settings, session_id: str) -> None:
        self.config = config
        self.options = options
        self.settings = settings
        self.session_id = session_id
        self.items: list[pytest.Item] = []
        self._index: dict[str, int] = {}
        self._cursor = 0  # index of the first item whose call has not been submitted by the look-ahead
        self._pool: CallPool | None = None
        self._registry: PromptRegistry | None = None
        self.url: str | None = None

    @property
    def registry(self) -> PromptRegistry:
        if self._registry is None:
            self._registry = PromptRegistry(self._rooted(self.options.prompts))
        return self._registry

    def _rooted(self, path: Path) -> Path:
        return path if path.is_absolute() else self.config.rootpath / path

    def set_items(self, items: list[pytest.Item]) -> None:
        self.items = [item for item in items if CASE_STATE in item.stash]
        self._index = {item.nodeid: index for index, item in enumerate(self.items)}

    def sidecar_url(self) -> str:
        if self.url is None:
            url = self.options.url
            if not url:
                run_dir = self.settings.data_dir / "run"
                run_dir = run_dir if run_dir.is_absolute() else self.config.rootpath / run_dir
                # Under xdist the controller stops the shared sidecar, so it lives as long as the controller.
                owner = (getattr(self.config, "workerinput", None) or {}).get("tollgate_owner_pid")
                url = shared_sidecar(
                    run_dir, self.session_id, config_file=self.options.config_file, owner_pid=owner
                )
            self.url = url.rstrip("/")
        return self.url

    def pool(self) -> CallPool:
        if self._pool is None:
            url = self.sidecar_url()
            from core.pricing import PriceBook

            recordings = None
            if self.options.record is not RecordMode.OFF:
                recordings = RecordingStore(self._rooted(self.options.recordings))
            stream = self.options.stream
            concurrency = self.options.concurrency
            allow_cache = self.options.allow_cache
            self._pool = CallPool(
                lambda: SidecarClient(url, stream=stream, max_connections=concurrency, allow_cache=allow_cache),
                prices=PriceBook(self.settings),
                concurrency=concurrency,
                recordings=recordings,
                mode=self.options.record,
            )
        return self._pool

    def result_for(self, item: pytest.Item) -> LLMResult:
        """The model's answer for `item`, submitting it (and the calls of the tests after it) first."""
        pool = self.pool()
        start = self._index.get(item.nodeid)
        if start is None:
            raise HarnessError(f"{item.nodeid} has no prompt marker, so there is no model call to wait for")
        self._submit_ahead(pool, start)
        if not pool.submitted(item.nodeid):  # run out of collection order, or run again (a rerun plugin)
            self._submit(pool, item)
        state = item.stash[CASE_STATE]
        if state.error is not None and not pool.submitted(item.nodeid):
            return failed_result(state.error, requested_model=None)
        return pool.take(item.nodeid)

    def _submit_ahead(self, pool: CallPool, start: int) -> None:
        """Keep the calls of the next `window` tests submitted, refilling when half the window is used up.

        Bounded so that memory and the first test's wait do not grow with the suite (rendering 10,000 prompts
        and holding their pending calls up front cost 3 s and 60 MiB); a cursor makes it O(1) per test.
        """
        window = self.options.concurrency * LOOKAHEAD_PER_SLOT
        # Items jumped over (another worker's share, deselected) are never called; after a jump back (a rerun)
        # more than half a window lies ahead, so only the item itself is submitted, by `result_for`.
        self._cursor = max(self._cursor, start)
        if self._cursor - start > window // 2:
            return
        end = min(len(self.items), start + window)
        for upcoming in self.items[self._cursor:end]:
            self._submit(pool, upcoming)
        self._cursor = end

    def _submit(self, pool: CallPool, item: pytest.Item) -> None:
        if pool.submitted(item.nodeid):
            return
        state = item.stash[CASE_STATE]
        assert state.prompt is not None
        try:
            rendered = state.prompt.render(self.registry, state.case)
        except HarnessError:
            raise
        except Exception as exc:  # noqa: BLE001 - a prompt problem belongs to its own test, not the others
            state.error = str(exc)
            return
        state.prompt_version = rendered.version
        state.request = state.prompt.request(rendered)
        tags = {
            "X-Tollgate-Feature": f"suite:{state.suite.name}",
            "X-Tollgate-Prompt": f"{rendered.name}@{rendered.version}",
            "X-Request-Id": f"tg-{self.session_id[:8]}-{abs(hash(item.nodeid)) % 10**12:012d}-r{state.repeat}",
        }
        if self.tracer is not None:
            state.span, traceparent = self.tracer.start_case(
                state.suite.name, state.case_id, state.repeat, rendered.name, rendered.version
            )
            if traceparent:
                tags["traceparent"] = traceparent
        pool.submit(item.nodeid, state.request, tags=tags, prompt=rendered.name, case=state.case_id)

    @cached_property
    def tracer(self) -> HarnessTracer | None:
        """Case and run spans, only when an OTLP endpoint is configured."""
        from harness.tracing import create_harness_tracer

        return create_harness_tracer(self.settings.telemetry, self.session_id)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        if "tracer" in self.__dict__ and self.tracer is not None:
            self.tracer.close()
