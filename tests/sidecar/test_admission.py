"""Queue-based admission: per-deployment in-flight limits, a bounded queue with a deadline, 503 + Retry-After."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx
import pytest

from sidecar.admission import ADMISSION_PRIORITY, BATCH, Gate, Limits
from sidecar.errors import Overloaded
from sidecar.fake_upstream import FakeBehaviour, start_fake_upstream_thread
from tests.waiting import wait_until_async

CHAT = {"model": "slow-model", "messages": [{"role": "user", "content": "take your time"}]}


@pytest.fixture
def slow_fake():
    with start_fake_upstream_thread(FakeBehaviour(ttft_s=1.0, models=("slow-model",))) as handle:
        yield handle


def limited(fake, **limits) -> dict:
    return {"slow-model": {"deployments": [{"name": "slow", "base_url": fake.url, **limits}]}}


async def _post_in_order(proxy, fake, count: int) -> list[httpx.Response]:
    """Send `count` requests one after another, each once the one before has been placed: sent upstream,
    queued at the gate or refused. Arrival order is then certain however slow the machine is."""
    gate = proxy.app.runtime.forwarder.admission.gate("slow")
    async with httpx.AsyncClient(timeout=30) as client:
        tasks: list[asyncio.Task[httpx.Response]] = []
        def placed() -> int:
            return fake.stats()["requests_total"] + gate.depth + gate.rejected + gate.timed_out

        for index in range(count):
            tasks.append(asyncio.create_task(client.post(proxy.url + "/chat/completions", json=CHAT)))
            await wait_until_async(lambda n=index: placed() > n, what=f"request {index} to reach the upstream or gate")
        return list(await asyncio.gather(*tasks))


def test_a_full_queue_answers_503_with_retry_after(make_sidecar, slow_fake):
    proxy, collector = make_sidecar(limited(slow_fake, max_in_flight=1, queue_size=1, queue_timeout_s=10))
    responses = asyncio.run(_post_in_order(proxy, slow_fake, 3))
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
    first, second = asyncio.run(_post_in_order(proxy, slow_fake, 2))
    assert first.status_code == 200
    assert second.status_code == 503
    assert second.json()["error"]["code"] == "queue_timeout"
    assert "retry-after" in second.headers
    assert slow_fake.stats()["requests_total"] == 1


def test_queued_requests_are_served_in_turn_and_the_depth_is_exported(make_sidecar, slow_fake):
    proxy, _ = make_sidecar(limited(slow_fake, max_in_flight=1, queue_size=4, queue_timeout_s=10))
    metrics_url = proxy.url.removesuffix("/v1") + "/metrics"

    gate = proxy.app.runtime.forwarder.admission.gate("slow")

    async def scenario() -> tuple[list[httpx.Response], str]:
        requests = asyncio.ensure_future(_post_in_order(proxy, slow_fake, 3))
        await wait_until_async(lambda: gate.depth == 2, what="two queued requests")
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


async def _hold(gate: Gate, deployment: _Deployment, log: list[str], name: str,
                release: asyncio.Event | None = None, priority: int | None = None) -> None:
    """Enter the gate, hold the slot until `release` is set (not at all without one), leave."""
    if priority is not None:
        ADMISSION_PRIORITY.set(priority)
    await gate.enter(deployment)
    deployment.outstanding += 1
    log.append(name)
    assert deployment.outstanding <= gate.limits.max_in_flight
    if release is not None:
        await release.wait()
    deployment.outstanding -= 1


async def _arrive() -> None:
    """One turn of the event loop: a task created just before runs up to its wait at the gate (or past it)."""
    await asyncio.sleep(0)


def test_the_gate_never_exceeds_its_limit_and_serves_first_come_first_served():
    async def scenario() -> list[str]:
        gate, deployment, log, release = Gate(Limits(2, 10, 5.0)), _Deployment(), [], asyncio.Event()
        tasks = []
        for index in range(6):
            tasks.append(asyncio.ensure_future(_hold(gate, deployment, log, f"r{index}", release)))
            await _arrive()
        assert log == ["r0", "r1"] and gate.depth == 4
        release.set()
        await asyncio.gather(*tasks)
        return log

    assert asyncio.run(scenario()) == ["r0", "r1", "r2", "r3", "r4", "r5"]


def test_live_requests_overtake_waiting_batch_requests():
    async def scenario() -> list[str]:
        gate, deployment, log, release = Gate(Limits(1, 10, 5.0)), _Deployment(), [], asyncio.Event()
        holder = asyncio.ensure_future(_hold(gate, deployment, log, "first", release))
        await _arrive()
        batch = asyncio.ensure_future(_hold(gate, deployment, log, "batch", priority=BATCH))
        await _arrive()
        live = asyncio.ensure_future(_hold(gate, deployment, log, "live"))
        await _arrive()
        assert gate.depth == 2
        release.set()
        await asyncio.gather(holder, batch, live)
        return log

    assert asyncio.run(scenario()) == ["first", "live", "batch"]


def test_a_cancelled_waiter_gives_its_place_back():
    async def scenario() -> tuple[int, list[str]]:
        gate, deployment, log, release = Gate(Limits(1, 1, 5.0)), _Deployment(), [], asyncio.Event()
        holder = asyncio.ensure_future(_hold(gate, deployment, log, "first", release))
        await _arrive()
        waiter = asyncio.ensure_future(_hold(gate, deployment, log, "gone"))
        await _arrive()
        assert gate.depth == 1
        with pytest.raises(Overloaded):
            await gate.enter(deployment)  # the queue (size 1) is full
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert gate.depth == 0
        release.set()
        await _hold(gate, deployment, log, "next")
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
