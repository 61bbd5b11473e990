"""Prefix affinity over loopback: a shared long prefix sticks to one replica, bounded by load."""

from __future__ import annotations

from core.config.routing import AffinitySettings
from sidecar.upstreams.affinity import PrefixAffinity
from tests.sidecar.routing.conftest import chat, served
from tests.waiting import wait_until

SYSTEM_A = "You are the booking assistant of Hotel Alpha. " * 20
SYSTEM_B = "You answer billing questions for Acme Telecom. " * 20
SYSTEM_C = "You summarise support tickets for the platform team. " * 20


def route(*fakes, kind: str = "generic") -> dict:
    return {"m": {"deployments": [{"base_url": f.url, "name": f"r{i}", "kind": kind} for i, f in enumerate(fakes)]}}


AFFINITY = {"affinity": {"enabled": True, "prefix_chars": 512, "min_prefix_chars": 200, "max_load_gap": 4}}


def test_requests_sharing_a_system_prompt_go_to_one_replica(make_sidecar, fake, fake2, fake3):
    fakes = [fake, fake2, fake3]
    proxy, _ = make_sidecar(route(*fakes), routing=AFFINITY)
    for system in (SYSTEM_A, SYSTEM_B, SYSTEM_C):
        before = served(fakes)
        for question in range(6):
            chat(proxy, f"question {question}", system=system)
        after = served(fakes)
        delta = [a - b for a, b in zip(after, before)]
        assert sorted(delta) == [0, 0, 6], delta  # all six on one replica
    outcomes = proxy.app.runtime.routes["m"].affinity.outcomes
    assert outcomes["home"] == 18 and outcomes["overflow"] == 0


def test_without_affinity_the_same_prompts_are_spread(make_sidecar, fake, fake2, fake3):
    fakes = [fake, fake2, fake3]
    proxy, _ = make_sidecar(route(*fakes))
    for question in range(6):
        chat(proxy, f"question {question}", system=SYSTEM_A)
    assert served(fakes) == [2, 2, 2]


def test_short_prompts_are_balanced_by_load_only(make_sidecar, fake, fake2):
    proxy, _ = make_sidecar(route(fake, fake2), routing=AFFINITY)
    for question in range(4):
        chat(proxy, f"q{question}", system="Be brief.")
    assert served([fake, fake2]) == [2, 2]
    assert proxy.app.runtime.routes["m"].affinity.outcomes["none"] == 4


def test_an_overloaded_home_replica_overflows_to_the_least_loaded(make_sidecar, fake, fake2):
    routing = {**AFFINITY, "load": {"metrics_interval_s": 0.05}}
    proxy, _ = make_sidecar(route(fake, fake2, kind="vllm"), routing=routing)
    chat(proxy, "first", system=SYSTEM_A)
    home_index = served([fake, fake2]).index(1)
    home, other = (fake, fake2) if home_index == 0 else (fake2, fake)
    home.set_engine(extra_waiting=10)  # 10 queued + 10 weighted: far beyond max_load_gap
    deployment = proxy.app.runtime.routes["m"].deployments[home_index]
    wait_until(lambda: deployment.engine is not None and deployment.engine.waiting == 10, what="the scrape")
    for question in range(3):
        chat(proxy, f"question {question}", system=SYSTEM_A)
    assert other.stats()["by_path"]["/v1/chat/completions"] == 3
    assert proxy.app.runtime.routes["m"].affinity.outcomes["overflow"] == 3
    home.set_engine(extra_waiting=0)
    wait_until(lambda: deployment.engine is not None and deployment.engine.waiting == 0, what="the scrape")
    chat(proxy, "back home", system=SYSTEM_A)
    assert home.stats()["by_path"]["/v1/chat/completions"] == 2


def key_of(affinity: PrefixAffinity, *messages: tuple[str, str]) -> bytes | None:
    return affinity.key({"model": "m", "messages": [{"role": r, "content": c} for r, c in messages]})


def test_the_key_is_the_shortest_long_enough_run_of_leading_messages():
    affinity = PrefixAffinity(AffinitySettings(enabled=True, prefix_chars=512, min_prefix_chars=200))
    long_system = "s" * 300
    # A long system prompt alone is the key, whatever follows.
    assert key_of(affinity, ("system", long_system), ("user", "a")) == key_of(
        affinity, ("system", long_system), ("user", "b"), ("assistant", "c"), ("user", "d"))
    # A short system prompt: the conversation's opening turns form the key, stable across later turns.
    opening = [("system", "short"), ("user", "u" * 250)]
    turn2 = key_of(affinity, *opening, ("assistant", "x"), ("user", "next"))
    turn3 = key_of(affinity, *opening, ("assistant", "x"), ("user", "next"), ("assistant", "y"), ("user", "more"))
    assert turn2 is not None and turn2 == turn3
    assert turn2 != key_of(affinity, ("system", "short"), ("user", "v" * 250), ("assistant", "x"), ("user", "n"))
    # Too short to matter: no key.
    assert key_of(affinity, ("system", "short"), ("user", "hi")) is None
    # One long message: its own first prefix_chars.
    assert key_of(affinity, ("user", "p" * 600 + "tail1")) == key_of(affinity, ("user", "p" * 600 + "tail2"))
    assert affinity.key({"model": "m", "prompt": "q" * 600}) is not None


def test_removing_a_replica_moves_only_its_own_keys():
    affinity = PrefixAffinity(AffinitySettings(enabled=True))

    class Replica:
        def __init__(self, label: str) -> None:
            self.label = label

    replicas = [Replica(f"r{i}") for i in range(4)]
    keys = [bytes([i]) * 16 for i in range(200)]
    before = {key: affinity.home(key, replicas).label for key in keys}
    after = {key: affinity.home(key, replicas[1:]).label for key in keys}
    moved = [key for key in keys if before[key] != after[key]]
    assert moved and all(before[key] == "r0" for key in moved)
    assert len(moved) == sum(1 for key in keys if before[key] == "r0")


def test_keys_leave_a_replica_that_is_down_and_come_back_with_it(make_sidecar, fake, fake2, fake3):
    fakes = [fake, fake2, fake3]
    health = {"enabled": True, "interval_s": 0.05, "unhealthy_after": 1, "healthy_after": 1}
    proxy, _ = make_sidecar(route(*fakes), routing={**AFFINITY, "health": health})
    chat(proxy, "first", system=SYSTEM_B)
    home = served(fakes).index(1)
    deployment = proxy.app.runtime.routes["m"].deployments[home]
    fakes[home].set_engine(healthy=False)
    wait_until(lambda: not deployment.healthy, what="the home replica to be taken out")
    before = served(fakes)
    for question in range(4):
        chat(proxy, f"while down {question}", system=SYSTEM_B)
    moved = [a - b for a, b in zip(served(fakes), before)]
    assert moved[home] == 0 and sorted(moved) == [0, 0, 4]  # all to one other replica: a new home, not spread
    fakes[home].set_engine(healthy=True)
    wait_until(lambda: deployment.healthy, what="the home replica to return")
    before = served(fakes)
    for question in range(3):
        chat(proxy, f"back {question}", system=SYSTEM_B)
    assert [a - b for a, b in zip(served(fakes), before)][home] == 3
