"""The access counters: sliding minute, spend rebased on database reloads, Redis failing open."""

from __future__ import annotations

import asyncio

import pytest

from sidecar.access import counters as counters_module
from sidecar.access.counters import MemoryCounters, RedisCounters, sliding
from tests.conftest import free_port


def test_the_sliding_minute_weights_the_previous_minute_by_what_is_left_of_it():
    assert sliding(2, 10, now=600.0) == 12  # at the start of a minute the previous one counts in full
    assert sliding(2, 10, now=630.0) == 7  # half-way: half of it
    assert sliding(2, 10, now=659.9) == pytest.approx(2.0166, abs=1e-3)


def test_memory_counters_roll_minutes_and_rebase_spend(monkeypatch):
    clock = [6000.0]
    monkeypatch.setattr(counters_module.time, "time", lambda: clock[0])
    counters = MemoryCounters()

    def admit(spend_ids=()):
        return asyncio.run(counters.admit("key_a", list(spend_ids)))

    assert [admit().requests for _ in range(3)] == [1, 2, 3]
    counters.add("key_a", 40, ["key:key_a:daily:d"], 0.5)
    clock[0] += 90  # half-way through the next minute: last minute's 3 requests and 40 tokens count half
    usage = admit(["key:key_a:daily:d"])
    assert (usage.requests, usage.tokens, usage.spend) == (1 + 1.5, 20.0, [0.5])
    clock[0] += 120  # two minutes later nothing of it is left
    assert admit().requests == 1
    started = counters.snapshot()  # a reload begins: the database will hold what was counted so far
    counters.add(None, 0, ["key:key_a:daily:d"], 0.25)  # counted while the database was being read
    counters.rebase({"key:key_a:daily:d": 2.0}, started)
    assert admit(["key:key_a:daily:d"]).spend == [2.25]


def test_redis_counters_fail_open_when_redis_is_away():
    async def scenario():
        counters = RedisCounters(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.2)
        counters.rebase({"user:ana:daily:d": 3.0}, None)
        usage = await counters.admit("key_a", ["user:ana:daily:d"])
        counters.add("key_a", 10, ["user:ana:daily:d"], 0.1)
        await counters.aclose()
        return usage

    usage = asyncio.run(scenario())
    assert (usage.requests, usage.tokens, usage.spend) == (0.0, 0.0, [3.0])


def test_memory_counters_reserve_until_settled_and_refuse_a_spent_window():
    async def scenario():
        counters = MemoryCounters()
        window = ["key:key_a:daily:d"]
        first = await counters.admit(None, window, [1.0], reserve=0.6)
        second = await counters.admit(None, window, [1.0], reserve=0.6)  # 0.6 reserved < 1.0: admitted
        third = await counters.admit(None, window, [1.0], reserve=0.6)  # 1.2 reserved: refused, nothing added
        counters.add(None, 10, window, 0.1, reserved=0.6)  # the first settles at its real cost
        after = await counters.admit(None, window, [1.0], reserve=0.0)
        counters.add(None, 0, window, 0.0, reserved=0.6)  # the second failed: released
        return first, second, third, after, await counters.admit(None, window)

    first, second, third, after, last = asyncio.run(scenario())
    assert (first.exhausted, second.exhausted, third.exhausted) == (None, None, 0)
    assert third.spend == [pytest.approx(1.2)]
    assert (after.exhausted, after.spend) == (None, [pytest.approx(0.7)])
    assert last.spend == [pytest.approx(0.1)]


@pytest.mark.redis
def test_redis_counters_reserve_atomically_and_settle():
    import uuid

    from tests.conftest import REDIS_URL

    window = [f"key:{uuid.uuid4().hex}:daily:d"]

    async def scenario():
        counters = RedisCounters(REDIS_URL)
        counters.rebase({window[0]: 0.3}, None)  # the database's figure seeds the window
        admitted = await asyncio.gather(*[counters.admit(None, window, [1.0], reserve=0.25) for _ in range(6)])
        counters.add(None, 10, window, 0.05, reserved=0.25)
        await counters.aclose()
        again = RedisCounters(REDIS_URL)
        usage = await again.admit(None, window)
        await again.aclose()
        return admitted, usage

    try:
        admitted, usage = asyncio.run(scenario())
    except OSError as exc:
        pytest.skip(f"Redis at {REDIS_URL} is not reachable: {exc}")
    # 0.3 seeded: three are admitted (at 0.3, 0.55 and 0.8), whichever runs first; then 1.05 is spent.
    assert sorted(u.exhausted is None for u in admitted) == [False] * 3 + [True] * 3
    assert usage.spend == [pytest.approx(0.3 + 0.25 * 3 - 0.25 + 0.05)]
