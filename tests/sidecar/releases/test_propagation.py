"""A label change reaches every sidecar sharing the database without a restart (timings: the benchmark)."""

from __future__ import annotations

import time

import httpx

from core.releases import rollback


def serving(proxy) -> str:
    body = {"model": "fake-model", "prompt": {"name": "greet", "variables": {"name": "Ada"}}}
    return httpx.post(proxy.url + "/chat/completions", json=body).headers["x-tollgate-prompt-version"]


def wait_serving(proxy, version: str, timeout_s: float = 30.0) -> str:
    deadline = time.monotonic() + timeout_s
    seen = serving(proxy)
    while seen != version and time.monotonic() < deadline:
        time.sleep(0.02)
        seen = serving(proxy)
    return seen


def test_promotion_and_rollback_reach_two_sidecars(releases, release_sidecar):
    first = releases.release("one")
    first_proxy, _ = release_sidecar()
    second_proxy, _ = release_sidecar()
    assert serving(first_proxy) == serving(second_proxy) == first
    second = releases.release("two")
    assert wait_serving(first_proxy, second) == second
    assert wait_serving(second_proxy, second) == second
    rollback(releases.engine, "greet", reason="test")
    assert wait_serving(first_proxy, first) == first
    assert wait_serving(second_proxy, first) == first
