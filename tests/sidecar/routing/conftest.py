"""Helpers for routing tests: a third fake upstream, waiting for background checks, counting where requests went."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from sidecar.fake_upstream import FakeBehaviour, FakeUpstreamThread, start_fake_upstream_thread


@pytest.fixture
def fake3() -> Iterator[FakeUpstreamThread]:
    with start_fake_upstream_thread(FakeBehaviour()) as handle:
        yield handle


def served(fakes: list[FakeUpstreamThread]) -> list[int]:
    """Chat requests each fake has received so far."""
    return [fake.stats()["by_path"].get("/v1/chat/completions", 0) for fake in fakes]


def chat(proxy, content: str = "hi", system: str | None = None, model: str = "m") -> httpx.Response:
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": content}]
    response = httpx.post(proxy.url + "/chat/completions", json={"model": model, "messages": messages}, timeout=10)
    assert response.status_code == 200, response.text
    return response
