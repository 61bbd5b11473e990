"""Budgets reserve a request's worst case at admission: a burst cannot overspend them."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from core.budgets import add_budget
from core.keys import create_key
from sidecar.fake_upstream import FakeBehaviour, start_fake_upstream_thread

PRICE = {"input_per_mtok": 1000.0, "output_per_mtok": 1000.0}  # $0.001 a token
CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": "hello there friend"}], "max_tokens": 16}
BUDGET = 0.2  # about ten calls of $0.019


@pytest.fixture
def slow_fake():
    """Answers after 0.3 s, so every request of the burst is in flight before the first one is paid for."""
    with start_fake_upstream_thread(FakeBehaviour(ttft_s=0.3)) as handle:
        yield handle


async def burst(urls: list[str], token: str, count: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=count)) as client:
        calls = [client.post(urls[i % len(urls)] + "/chat/completions", json=CHAT,
                             headers={"authorization": f"Bearer {token}"}) for i in range(count)]
        return await asyncio.gather(*calls)


def cost(response: httpx.Response) -> float:
    usage = response.json()["usage"]
    return (usage["prompt_tokens"] + usage["completion_tokens"]) * 0.001


@pytest.mark.redis
def test_a_burst_over_two_sidecars_spends_at_most_the_budget_and_one_worst_case_each(
        make_sidecar, slow_fake, db, redis_url):
    created = create_key(db, "bursty")
    add_budget(db, "key", created.key.id, "daily", BUDGET)
    models = {"fake-model": {"deployments": [{"base_url": slow_fake.url}], "price": PRICE}}
    settings = {"access": {"require_keys": True, "refresh_s": 3600}, "redis_url": redis_url}
    sidecars = [make_sidecar(models, **settings)[0] for _ in range(2)]
    responses = asyncio.run(burst([s.url for s in sidecars], created.token, 50))
    served = [r for r in responses if r.status_code == 200]
    # Worst case of one request: its body / 4 as prompt tokens plus max_tokens, at the model's price.
    worst = (len(httpx.Request("POST", "http://x", json=CHAT).content) / 4 + CHAT["max_tokens"]) * 0.001
    spent = sum(cost(r) for r in served)
    assert spent <= BUDGET + 2 * worst, f"spent ${spent:.3f} in {len(served)} calls"
    refused = [r for r in responses if r.status_code != 200]
    assert served and refused
    for response in refused:
        error = response.json()["error"]
        assert (response.status_code, error["code"], error["type"]) == (429, "budget_exceeded", "rate_limit_error")


def test_a_reservation_is_released_when_the_upstream_fails(make_sidecar, fake, db):
    created = create_key(db, "unlucky")
    add_budget(db, "key", created.key.id, "daily", 0.05)  # a worst case is about $0.04
    models = {"fake-model": {"deployments": [{"base_url": fake.url}], "price": PRICE}}
    proxy, _ = make_sidecar(models, access={"require_keys": True, "refresh_s": 3600}, sidecar={"retries": 0})
    headers = {"authorization": f"Bearer {created.token}"}
    fake.script({"fault": "status", "status": 500}, {"fault": "status", "status": 500})
    for _ in range(2):
        assert httpx.post(proxy.url + "/chat/completions", json=CHAT, headers=headers).status_code >= 500
    # Nothing was spent: the reservations went back (leaked, they would hold $0.08 of the $0.05 already).
    statuses = [httpx.post(proxy.url + "/chat/completions", json=CHAT, headers=headers) for _ in range(4)]
    assert [r.status_code for r in statuses] == [200, 200, 200, 429]  # $0.019 each: 0, 0.019, 0.038 < 0.05
    assert statuses[-1].json()["error"]["code"] == "budget_exceeded"
