"""Suites never pass a gate on cached answers unless told to: the harness client bypasses the cache."""

from __future__ import annotations

import asyncio

from harness.client import SidecarClient
from tests.waiting import wait_until

BODY = {"model": "fake-model", "messages": [{"role": "user", "content": "is this answer fresh"}]}


def _calls(url: str, count: int, **options) -> list[str]:
    async def run() -> list[str]:
        client = SidecarClient(url, **options)
        try:
            return [(await client.acomplete(BODY))["text"] for _ in range(count)]
        finally:
            await client.aclose()

    return asyncio.run(run())


def _statuses(collector, count: int) -> list[str]:
    """The records' cache statuses once `count` are in (a record is handed over after the answer went out)."""
    wait_until(lambda: len(collector.records) >= count, what=f"{count} traffic records")
    return sorted(str(record.cache_status) for record in collector.records)


def test_the_harness_client_bypasses_the_cache_unless_allowed(make_sidecar, fake):
    proxy, collector = make_sidecar({"fake-model": {"deployments": [{"base_url": fake.url}]}}, cache={"enabled": True})
    _calls(proxy.url, 3)
    assert fake.stats()["requests_total"] == 3
    assert _statuses(collector, 3) == ["bypass"] * 3
    texts = _calls(proxy.url, 2, allow_cache=True, stream=False)
    assert fake.stats()["requests_total"] == 4
    assert texts[0] == texts[1]
    assert _statuses(collector, 5) == ["bypass"] * 3 + ["hit", "miss"]
