"""The response cache over loopback: exact and semantic hits, misses, scoping, TTL, bypass and shared tiers."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.sidecar.conftest import EVERY_SSE_STYLE
from tests.sidecar.test_proxy import sse_events, wait_record
from tests.waiting import wait_until

MODEL = "fake-model"


def models(fake) -> dict:
    return {MODEL: {"deployments": [{"base_url": fake.url}]}}


def chat(text: str, **params) -> dict:
    return {"model": MODEL, "messages": [{"role": "system", "content": "Answer briefly."},
                                         {"role": "user", "content": text}], **params}


def ask(proxy, body: dict, **headers: str) -> httpx.Response:
    response = httpx.post(proxy.url + "/chat/completions", json=body, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return response


def upstream_calls(fake) -> int:
    return fake.stats()["requests_total"]


def test_exact_cache_miss_then_hit_without_calling_the_upstream(make_sidecar, fake):
    proxy, collector = make_sidecar(models(fake), cache={"enabled": True})
    body = chat("what is the capital of France", temperature=0.7)
    first = ask(proxy, body)
    assert first.headers["x-tollgate-cache"] == "miss"
    assert wait_record(collector, first.headers["x-request-id"]).cache_status == "miss"
    before = upstream_calls(fake)
    second = ask(proxy, body)
    assert second.headers["x-tollgate-cache"] == "hit"
    assert second.json() == first.json()
    assert upstream_calls(fake) == before
    record = wait_record(collector, second.headers["x-request-id"])
    assert record.cache_status == "hit" and record.status == 200
    # any change to what is asked is another entry
    assert ask(proxy, chat("what is the capital of France", temperature=0.5)).headers["x-tollgate-cache"] == "miss"
    assert ask(proxy, chat("what is the capital of Spain", temperature=0.7)).headers["x-tollgate-cache"] == "miss"


@EVERY_SSE_STYLE
def test_stream_and_plain_requests_share_entries_and_hits_replay_as_sse(make_sidecar, fake):
    proxy, _ = make_sidecar(models(fake), cache={"enabled": True})
    plain = ask(proxy, chat("tell me about trains"))
    streamed = httpx.post(proxy.url + "/chat/completions", json={
        **chat("tell me about trains"), "stream": True, "stream_options": {"include_usage": True}})
    assert streamed.headers["x-tollgate-cache"] == "hit"
    assert streamed.headers["content-type"].startswith("text/event-stream")
    events = sse_events(streamed.text.splitlines())
    assert events[-1] == "[DONE]"
    import orjson

    chunks = [orjson.loads(event) for event in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == plain.json()["choices"][0]["message"]["content"]
    assert chunks[-1]["usage"] == plain.json()["usage"]
    # a streamed miss is stored whole, and answers a later plain request
    miss = httpx.post(proxy.url + "/chat/completions", json={**chat("tell me about boats"), "stream": True})
    assert miss.headers["x-tollgate-cache"] == "miss"
    streamed_text = "".join(
        orjson.loads(e)["choices"][0]["delta"].get("content") or ""
        for e in sse_events(miss.text.splitlines())[:-1] if orjson.loads(e)["choices"])
    hit = _eventually_hit(proxy, chat("tell me about boats"))
    assert hit.json()["choices"][0]["message"]["content"] == streamed_text


def _eventually_hit(proxy, body: dict, **headers: str) -> httpx.Response:
    """on_done stores after the response went out: the next request may race it by a few microseconds."""
    return _eventually(proxy, body, "hit", **headers)


def test_a_new_prompt_version_never_gets_the_old_versions_answers(make_sidecar, fake):
    proxy, collector = make_sidecar(models(fake), cache={"enabled": True, "semantic": {"enabled": True}})
    body = chat("summarise my booking", temperature=0)
    assert ask(proxy, body, **{"x-tollgate-prompt": "booking@v1"}).headers["x-tollgate-cache"] == "miss"
    hit = _eventually_hit(proxy, body, **{"x-tollgate-prompt": "booking@v1"})
    assert hit.headers["x-tollgate-cache"] == "hit"
    assert ask(proxy, body).headers["x-tollgate-cache"] == "miss"  # no prompt tag: its own scope
    v2 = ask(proxy, body, **{"x-tollgate-prompt": "booking@v2"})
    assert v2.headers["x-tollgate-cache"] == "miss"
    assert wait_record(collector, v2.headers["x-request-id"]).prompt_version == "v2"
    paraphrase = chat("summarize my booking", temperature=0)
    assert ask(proxy, paraphrase, **{"x-tollgate-prompt": "booking@v3"}).headers["x-tollgate-cache"] == "miss"


def test_entries_expire_after_their_ttl(make_sidecar, fake):
    proxy, _ = make_sidecar(models(fake), cache={"enabled": True, "ttl_s": 0.4})
    body = chat("short lived")
    assert ask(proxy, body).headers["x-tollgate-cache"] == "miss"
    assert ask(proxy, body).headers["x-tollgate-cache"] == "hit"
    time.sleep(0.5)  # the scenario: the 0.4 s TTL passes (a sleep never ends early, so this cannot flake)
    before = upstream_calls(fake)
    assert ask(proxy, body).headers["x-tollgate-cache"] == "miss"
    assert upstream_calls(fake) == before + 1


def test_clients_can_bypass_or_refresh_the_cache(make_sidecar, fake):
    proxy, collector = make_sidecar(models(fake), cache={"enabled": True})
    body = chat("bypass me")
    bypassed = ask(proxy, body, **{"x-tollgate-cache": "bypass"})
    assert bypassed.headers["x-tollgate-cache"] == "bypass"
    assert wait_record(collector, bypassed.headers["x-request-id"]).cache_status == "bypass"
    assert ask(proxy, body).headers["x-tollgate-cache"] == "miss"  # a bypassed answer is not stored
    assert ask(proxy, body).headers["x-tollgate-cache"] == "hit"
    before = upstream_calls(fake)
    refreshed = ask(proxy, body, **{"cache-control": "no-cache"})
    assert refreshed.headers["x-tollgate-cache"] == "bypass"
    assert upstream_calls(fake) == before + 1
    assert ask(proxy, body, **{"cache-control": "no-store"}).headers["x-tollgate-cache"] == "bypass"
    assert ask(proxy, body).headers["x-tollgate-cache"] == "hit"


def test_failed_answers_are_not_cached(make_sidecar, fake):
    proxy, _ = make_sidecar(models(fake), cache={"enabled": True}, sidecar={"retries": 0})
    body = chat("this will fail")
    fake.script({"fault": "status", "status": 400})
    failed = httpx.post(proxy.url + "/chat/completions", json=body)
    assert failed.status_code == 400 and failed.headers["x-tollgate-cache"] == "miss"
    assert ask(proxy, body).headers["x-tollgate-cache"] == "miss"


def test_semantic_cache_answers_paraphrases_of_deterministic_requests(make_sidecar, fake):
    proxy, collector = make_sidecar(models(fake), cache={"enabled": True, "semantic": {"enabled": True}})
    original = ask(proxy, chat("What is the capital of France?", temperature=0))
    assert original.headers["x-tollgate-cache"] == "miss"
    paraphrase = _eventually(proxy, chat("What is the capital city of France?", temperature=0), "semantic")
    assert paraphrase.headers["x-tollgate-cache"] == "semantic"
    assert float(paraphrase.headers["x-tollgate-cache-similarity"]) >= 0.93
    assert paraphrase.json() == original.json()
    assert wait_record(collector, paraphrase.headers["x-request-id"]).cache_status == "semantic"
    # the same wording again is an exact hit now
    assert ask(proxy, chat("What is the capital city of France?", temperature=0)).headers["x-tollgate-cache"] == "hit"
    # a different question, or a different system message, or sampling: never a neighbour
    assert ask(proxy, chat("What is the capital of Germany?", temperature=0)).headers["x-tollgate-cache"] == "miss"
    other_system = {"model": MODEL, "temperature": 0, "messages": [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "What is the capital city of France?"}]}
    assert ask(proxy, other_system).headers["x-tollgate-cache"] == "miss"
    sampled = chat("What's the capital city of France?", temperature=0.8)
    assert ask(proxy, sampled).headers["x-tollgate-cache"] == "miss"


def _eventually(proxy, body: dict, wanted: str, **headers: str) -> httpx.Response:
    """Ask until the answer's cache status is `wanted` (the store that makes it so runs in the background)."""

    def answer() -> httpx.Response | None:
        response = ask(proxy, body, **headers)
        return response if response.headers["x-tollgate-cache"] == wanted else None

    return wait_until(answer, what=f"a cache {wanted}")


def test_hit_rates_are_exported_to_prometheus(make_sidecar, fake):
    proxy, _ = make_sidecar(models(fake), cache={"enabled": True})
    body = chat("count me")
    ask(proxy, body)
    ask(proxy, body)
    ask(proxy, body)
    metrics = httpx.get(proxy.url.removesuffix("/v1") + "/metrics").text
    assert 'tollgate_cache_lookups_total{endpoint="chat.completions",result="hit"} 2.0' in metrics
    assert 'tollgate_cache_lookups_total{endpoint="chat.completions",result="miss"} 1.0' in metrics
    assert 'tollgate_cache_hit_ratio{kind="exact"} 0.666' in metrics
    assert 'tollgate_cache_entries{tier="memory"} 1.0' in metrics


@pytest.mark.redis
def test_two_sidecars_share_entries_through_redis(make_sidecar, fake, redis_url, nonce):
    settings = {"cache": {"enabled": True, "store": "redis"}, "redis_url": redis_url}
    first, _ = make_sidecar(models(fake), **settings)
    second, collector = make_sidecar(models(fake), **settings)
    body = chat(f"shared question {nonce}")
    answer = ask(first, body)
    assert answer.headers["x-tollgate-cache"] == "miss"
    before = upstream_calls(fake)
    shared = _eventually_hit(second, body)
    assert shared.json() == answer.json()
    # the misses while the background store raced were real upstream calls; the hit was not
    assert upstream_calls(fake) == before + sum(
        1 for r in collector.records if r.cache_status == "miss")


def test_redis_outage_is_a_miss_not_an_error(make_sidecar, fake):
    from tests.conftest import free_port

    settings = {"cache": {"enabled": True, "store": "redis"}, "redis_url": f"redis://127.0.0.1:{free_port()}/0"}
    proxy, _ = make_sidecar(models(fake), **settings)
    body = chat("no redis here")
    assert ask(proxy, body).headers["x-tollgate-cache"] == "miss"
    assert _eventually_hit(proxy, body).headers["x-tollgate-cache"] == "hit"  # memory tier still works


def test_database_store_survives_a_restart(make_sidecar, fake, db_url, tmp_path):
    settings = {"cache": {"enabled": True, "store": "database", "semantic": {"enabled": True}},
                "database_url": db_url}
    first, _ = make_sidecar(models(fake), **settings)
    exact = ask(first, chat("remember this answer"))
    semantic = ask(first, chat("How do I reset my password?", temperature=0))
    # The semantic entry is embedded in the background, then indexed and handed to the database writer.
    first_stage = first.app.runtime.stages[0]
    wait_until(lambda: len(first_stage.index) >= 1, what="the semantic entry to be embedded")
    first.stop()
    second, _ = make_sidecar(models(fake), **settings)
    stage = second.app.runtime.stages[0]
    wait_until(lambda: stage.loaded.is_set() and len(stage.memory) >= 2, what="the entries to load")
    before = upstream_calls(fake)
    again = ask(second, chat("remember this answer"))
    assert again.headers["x-tollgate-cache"] == "hit" and again.json() == exact.json()
    paraphrase = ask(second, chat("How can I reset my password?", temperature=0))
    assert paraphrase.headers["x-tollgate-cache"] == "semantic" and paraphrase.json() == semantic.json()
    assert upstream_calls(fake) == before


@pytest.mark.redis
def test_a_sidecar_finds_semantic_neighbours_its_peer_stored_in_redis(make_sidecar, fake, redis_url, nonce):
    settings = {"cache": {"enabled": True, "store": "redis", "semantic": {"enabled": True}}, "redis_url": redis_url}
    first, _ = make_sidecar(models(fake), **settings)
    second, _ = make_sidecar(models(fake), **settings)
    system = f"You answer questions about the booking {nonce}."

    def body(text: str) -> dict:
        return {"model": MODEL, "temperature": 0, "messages": [
            {"role": "system", "content": system}, {"role": "user", "content": text}]}

    original = ask(first, body("How do I reset my password?"))
    assert original.headers["x-tollgate-cache"] == "miss"
    _wait_for_scope_in_redis(redis_url, body("How do I reset my password?"))
    before = upstream_calls(fake)
    peer = ask(second, body("How can I reset my password?"))
    assert peer.headers["x-tollgate-cache"] == "semantic"
    assert peer.json() == original.json()
    assert upstream_calls(fake) == before
    unrelated = ask(second, body("How do I change my email address?"))
    assert unrelated.headers["x-tollgate-cache"] == "miss"


def _wait_for_scope_in_redis(redis_url: str, body: dict) -> None:
    """The first sidecar stores in Redis after its answer went out: wait until its scope listing is there."""
    import redis

    from sidecar.cache.keys import describe_request
    from sidecar.cache.shared import SCOPE_PREFIX
    from sidecar.traffic.record import RawTraffic

    raw = RawTraffic(request_id="r", started_at=0.0, endpoint="chat.completions", status=0, latency_ms=0.0)
    described = describe_request("chat.completions", body, raw)
    assert described is not None and described.scope is not None
    client = redis.Redis.from_url(redis_url)
    try:
        wait_until(lambda: client.exists(SCOPE_PREFIX + described.scope), what="the entry to reach Redis")
    finally:
        client.close()
