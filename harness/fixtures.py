"""The fixtures a suite uses: `case`, `result`, `score`, `prompt` and `llm`.

This module is registered in every pytest run, so it imports only pytest; the harness loads on first use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from harness.keys import CASE_STATE, PLUGIN

if TYPE_CHECKING:
    from core.prompts import RenderedPrompt
    from harness.cases import CaseState
    from harness.results import LLMResult, Score
    from harness.scorers import Scorer
    from harness.session import TestSession


def _session(request: pytest.FixtureRequest) -> TestSession:
    plugin = request.config.stash.get(PLUGIN, None)
    if plugin is None:
        from harness.errors import HarnessError

        raise HarnessError("the tollgate plugin is not active in this session")
    return plugin.tests


def _state(request: pytest.FixtureRequest) -> CaseState:
    state = request.node.stash.get(CASE_STATE, None)
    if state is None:
        from harness.errors import HarnessError

        raise HarnessError(f"{request.node.nodeid} has no dataset or prompt marker")
    return state


@pytest.fixture
def tollgate_repeat() -> int:
    """The repeat index of this case (parametrised when `--tollgate-repeat` > 1)."""
    return 0


@pytest.fixture
def result(request: pytest.FixtureRequest, tollgate_repeat: int) -> LLMResult:
    """The model's answer for this case, rendered from the test's `prompt` marker (called ahead, concurrently)."""
    state = _state(request)
    if state.error is not None:
        pytest.fail(f"{state.suite.name}/{state.case_id}: {state.error}", pytrace=False)
    answer = _session(request).result_for(request.node)
    state.result = answer
    if state.error is not None:
        pytest.fail(f"{state.suite.name}/{state.case_id}: {state.error}", pytrace=False)
    if answer.error is not None:
        pytest.fail(f"{state.suite.name}/{state.case_id}: model call failed: {answer.error}", pytrace=False)
    return answer


class ScoreRecorder:
    """`score(*scorers)` runs scorers on this case's result and records them with the case."""

    def __init__(self, state: CaseState) -> None:
        self._state = state

    def __call__(self, *scorers: Scorer, result: LLMResult | None = None) -> list[Score]:
        from harness.cases import score_summary
        from harness.errors import HarnessError

        target = result or self._state.result
        if target is None:
            raise HarnessError("score() needs the `result` fixture (or result=...) to have an answer to score")
        scores = [scorer(target) for scorer in scorers]
        self._state.scores.extend(scores)
        if self._state.suite.strict:
            failed = [score for score in scores if score.passed is False or score.error]
            if failed:
                pytest.fail(f"{self._state.suite.name}/{self._state.case_id}: {score_summary(failed)}", pytrace=False)
        return scores

    @property
    def scores(self) -> list[Score]:
        return list(self._state.scores)


@pytest.fixture
def score(request: pytest.FixtureRequest) -> ScoreRecorder:
    return ScoreRecorder(_state(request))


@pytest.fixture
def prompt(request: pytest.FixtureRequest) -> Callable[..., RenderedPrompt]:
    """`prompt(name, variant=None, **variables)` renders a prompt file from the registry."""
    session = _session(request)

    def render(name: str, variant: str | None = None, **variables: Any) -> RenderedPrompt:
        return session.registry.render(name, variables, variant=variant)

    return render


class LLM:
    """A plain client for ad-hoc calls in a test: `llm(rendered_or_request) -> LLMResult` (one call, waited for)."""

    def __init__(self, session: TestSession) -> None:
        self._session = session

    def __call__(self, request: RenderedPrompt | dict[str, Any], **overrides: Any) -> LLMResult:
        body = dict(request) if isinstance(request, dict) else request.request_body()
        body.update(overrides)
        return _call_now(self._session, body)


def _call_now(session: TestSession, body: dict[str, Any]) -> LLMResult:
    import asyncio

    from core.pricing import PriceBook
    from harness.client import ModelCallError, SidecarClient, failed_result, to_result

    async def call() -> LLMResult:
        client = SidecarClient(session.sidecar_url(), stream=session.options.stream,
                               allow_cache=session.options.allow_cache)
        try:
            response = await client.acomplete(body)
        except ModelCallError as exc:
            return failed_result(str(exc), requested_model=body.get("model"))
        finally:
            await client.aclose()
        return to_result(response, prices=PriceBook(session.settings), requested_model=body.get("model"))

    return asyncio.run(call())


@pytest.fixture
def llm(request: pytest.FixtureRequest) -> LLM:
    return LLM(_session(request))


@pytest.fixture
def bench(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """`bench(model, prompt=None, requests=20, mode="sequential", concurrency=(1,), rate=None, duration_s=None,
    max_tokens=64, slos="")` load-tests the session's sidecar (or `--tollgate-url`) with `tollgate bench` and
    returns its `BenchRun`; the figures are attached to the test's report as `tollgate.bench.*` properties."""
    session = _session(request)

    def run(model: str, *, prompt: str | None = None, requests: int | None = 20, mode: str = "sequential",
            concurrency: tuple[int, ...] = (1,), rate: float | None = None, duration_s: float | None = None,
            max_tokens: int | None = 64, slos: str = "") -> Any:
        from harness.bench import BenchPlan, build_workload, parse_slos, run_bench

        workload = build_workload(model, prompt=prompt, max_tokens=max_tokens)
        plan = BenchPlan(mode=mode, requests=requests, duration_s=duration_s, concurrency=concurrency, rate=rate)
        outcome = run_bench(session.sidecar_url(), workload, plan, slos=parse_slos(slos))
        for level in outcome.levels:
            for key in ("ttft_p50", "ttft_p99", "e2e_p50", "e2e_p99", "requests_per_s", "goodput", "error_rate"):
                if key in level.summary:
                    request.node.user_properties.append((f"tollgate.bench.{level.label}.{key}", level.summary[key]))
        return outcome

    return run
