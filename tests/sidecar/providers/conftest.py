"""Provider fakes on loopback and a sidecar that reaches them through litellm."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sidecar.fake_upstream import FakeBehaviour, FakeUpstreamThread, start_fake_upstream_thread
from sidecar.fake_upstream.providers import build_anthropic_app, build_gemini_app

KEY_ENV = "TOLLGATE_TEST_PROVIDER_KEY"


@pytest.fixture
def anthropic() -> Iterator[FakeUpstreamThread]:
    with start_fake_upstream_thread(FakeBehaviour(output_tokens=5), app_factory=build_anthropic_app) as handle:
        yield handle


@pytest.fixture
def gemini() -> Iterator[FakeUpstreamThread]:
    with start_fake_upstream_thread(FakeBehaviour(output_tokens=5), app_factory=build_gemini_app) as handle:
        yield handle


@pytest.fixture
def openai_fake() -> Iterator[FakeUpstreamThread]:
    with start_fake_upstream_thread(FakeBehaviour(output_tokens=5)) as handle:
        yield handle


@pytest.fixture
def providers(make_sidecar, anthropic, gemini, openai_fake, monkeypatch):
    """A sidecar serving `claude`, `gemini` and `gpt` through litellm, each from its fake."""
    monkeypatch.setenv(KEY_ENV, "test-key")

    def deployment(model: str, base_url: str) -> dict:
        return {"deployments": [{"provider": "litellm", "model": model, "base_url": base_url, "api_key_env": KEY_ENV}]}

    models = {
        "claude": deployment("anthropic/claude-3-5-haiku-latest", anthropic.base_url),
        "gemini": deployment("gemini/gemini-2.0-flash", gemini.base_url + "/v1beta"),
        "gpt": deployment("openai/gpt-4o-mini", openai_fake.url),
    }
    return make_sidecar(models, sidecar={"retries": 1, "first_byte_timeout_s": 60})
