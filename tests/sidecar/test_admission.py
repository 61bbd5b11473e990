"""Queue-based admission: per-deployment in-flight limits, a bounded queue with a deadline, 503 + Retry-After."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx
import pytest

from sidecar.admission import ADMISSION_PRIORITY, BATCH, Gate, Limits
from sidecar.errors import Overloaded
from sidecar.fake_upstream import FakeBehaviour, start_fake_upstream_thread

CHAT = {"model": "slow-model", "messages": [{"role": "user", "content": "take your time"}]}


@pytest.fixture
def slow_fake():
    with start_fake_upstream_thread(FakeBehaviour(ttft_s=0.6, models=("slow-model",))) as handle:
        yield handle


def limited(fake, **limits) -> dict:
    return {"slow-model": {"deployments": [{"name": "slow", "base_url": fake.url, **limits}]}}


async def _post_all(url: str, count: int, stagger_s: float = 0.05) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=30) as client:
        async def one(delay: float) -> httpx.Response:
            await asyncio.sleep(delay)
            return await client.post(url + "/chat/completions", json=CHAT)

        return list(await asyncio.gather(*(one(i * stagger_s) for i in range(count))))


def test_a_full_queue_answers_503_with_retry_after(make_sidecar, slow_fake):
    proxy, collector = make_sidecar(limited(slow_fake, max_in_flight=1, queue_size=1, queue_timeout_s=10))
    responses = asyncio.run(_post_all(proxy.url, 3))
    assert [r.status_code for r in responses] == [200, 200, 503]
    refused = responses[2]
    assert refused.json()["error"]["code"] == "queue_full"
    assert refused.json()["error"]["type"] == "server_error"
    assert int(refused.headers["retry-after"]) >= 1
    assert slow_fake.stats()["requests_total"] == 2
    statuses = sorted(record.status for record in collector.records)
    assert statuses == [200, 200, 503]


def test_a_request_waiting_past_the_deadline_gets_503(make_sidecar, slow_fake):
    proxy, _ = make_sidecar(limited(slow_fake, max_in_flight=1, queue_size=8, queue_timeout_s=0.2))
    started = time.monotonic()
    first, second = asyncio.run(_post_all(proxy.url, 2))
    assert first.status_code == 200
    assert second.status_code == 503
    assert second.json()["error"]["code"] == "queue_timeout"
    assert "retry-after" in second.headers
    assert time.monotonic() - started >= 0.2


def test_queued_requests_are_served_in_turn_and_the_depth_is_exported(make_sidecar, slow_fake):
    proxy, _ = make_sidecar(limited(slow_fake, max_in_flight=1, queue_size=4, queue_timeout_s=10))
    metrics_url = proxy.url.removesuffix("/v1") + "/metrics"

    async def scenario() -> tuple[list[httpx.Response], str]:
        requests = asyncio.ensure_future(_post_all(proxy.url, 3, stagger_s=0.02))
        await asyncio.sleep(0.3)
        async with httpx.AsyncClient() as client:
            scraped = (await client.get(metrics_url)).text
        return await requests, scraped

    responses, scraped = asyncio.run(scenario())
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert 'tollgate_admission_queue_depth{deployment="slow"} 2.0' in scraped
    after = httpx.get(metrics_url).text
    assert 'tollgate_admission_queue_depth{deployment="slow"} 0.0' in after
    assert 'tollgate_admission_refused{deployment="slow",reason="queue_full"} 0.0' in after


def test_deployments_without_a_limit_have_no_gate(make_sidecar, fake):
    proxy, _ = make_sidecar({"fake-model": {"deployments": [{"base_url": fake.url}]}})
    assert proxy.app.runtime.forwarder.admission is None
    assert "tollgate_admission_queue_depth" not in httpx.get(proxy.url.removesuffix("/v1") + "/metrics").text


@dataclass
class _Deployment:
    label: str = "d"
    outstanding: int = 0


async def _hold(gate: Gate, deployment: _Deployment, log: list[str], name: str, hold_s: float,
                priority: int | None = None) -> None:
    if priority is not None:
        ADMISSION_PRIORITY.set(priority)
    await gate.enter(deployment)
    deployment.outstanding += 1
    log.append(name)
    assert deployment.outstanding <= gate.limits.max_in_flight
    await asyncio.sleep(hold_s)
    deployment.outstanding -= 1


def test_the_gate_never_exceeds_its_limit_and_serves_first_come_first_served():
    async def scenario() -> list[str]:
        gate, deployment, log = Gate(Limits(2, 10, 5.0)), _Deployment(), []
        tasks = []
        for index in range(6):
            tasks.append(asyncio.ensure_future(_hold(gate, deployment, log, f"r{index}", 0.03)))
            await asyncio.sleep(0.001)
        await asyncio.gather(*tasks)
        return log

    assert asyncio.run(scenario()) == ["r0", "r1", "r2", "r3", "r4", "r5"]


def test_live_requests_overtake_waiting_batch_requests():
    async def scenario() -> list[str]:
        gate, deployment, log = Gate(Limits(1, 10, 5.0)), _Deployment(), []
        holder = asyncio.ensure_future(_hold(gate, deployment, log, "first", 0.05))
        await asyncio.sleep(0.001)
        batch = asyncio.ensure_future(_hold(gate, deployment, log, "batch", 0.0, priority=BATCH))
        await asyncio.sleep(0.001)
        live = asyncio.ensure_future(_hold(gate, deployment, log, "live", 0.0))
        await asyncio.gather(holder, batch, live)
        return log

    assert asyncio.run(scenario()) == ["first", "live", "batch"]


def test_a_cancelled_waiter_gives_its_place_back():
    async def scenario() -> tuple[int, list[str]]:
        gate, deployment, log = Gate(Limits(1, 1, 5.0)), _Deployment(), []
        holder = asyncio.ensure_future(_hold(gate, deployment, log, "first", 0.05))
        await asyncio.sleep(0.001)
        waiter = asyncio.ensure_future(_hold(gate, deployment, log, "gone", 0.0))
        await asyncio.sleep(0.005)
        assert gate.depth == 1
        with pytest.raises(Overloaded):
            await gate.enter(deployment)  # the queue (size 1) is full
        waiter.cancel()
        await asyncio.sleep(0.005)
        assert waiter.cancelled() and gate.depth == 0
        await _hold(gate, deployment, log, "next", 0.0)
        await holder
        return gate.depth, log

    depth, log = asyncio.run(scenario())
    assert depth == 0 and log == ["first", "next"]


def test_waiters_that_gave_up_do_not_pile_up_while_a_deployment_is_stuck():
    async def scenario() -> tuple[int, int]:
        gate, deployment = Gate(Limits(1, 2, 0.001)), _Deployment(outstanding=1)
        for _ in range(60):
            with pytest.raises(Overloaded):
                await gate.enter(deployment)
        return len(gate._heap), gate.timed_out

    heap, timed_out = asyncio.run(scenario())
    assert timed_out == 60 and heap <= 2 * 2 + 16 + 1
