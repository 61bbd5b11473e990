"""`GET /metrics`: the Prometheus exposition of requests, latency, tokens, cost and state."""

from __future__ import annotations

import random
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.sidecar.conftest import EVERY_SSE_STYLE
from tests.sidecar.test_proxy import CHAT, wait_record

PRICE = {"input_per_mtok": 1.0, "output_per_mtok": 2.0}


def scrape(url: str) -> dict[str, list]:
    response = httpx.get(url.removesuffix("/v1") + "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {family.name: family.samples for family in text_string_to_metric_families(response.text)}


def value(samples: list, name: str, **labels: str) -> float:
    return sum(s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


@EVERY_SSE_STYLE
def test_metrics_count_requests_latency_tokens_and_cost(make_sidecar, fake):
    proxy, collector = make_sidecar({"fake-model": {"deployments": [{"base_url": fake.url}], "price": PRICE}})
    headers = {"X-Tollgate-Segment": "business", "X-Tollgate-Prompt": "booking_extract@v1"}
    plain = httpx.post(proxy.url + "/chat/completions", json=CHAT, headers=headers)
    with httpx.stream("POST", proxy.url + "/chat/completions", json={**CHAT, "stream": True}) as stream:
        stream.read()
    bad = httpx.post(proxy.url + "/chat/completions", json={"model": "fake-model"})
    for response in (plain, stream, bad):
        wait_record(collector, response.headers["x-request-id"])
    usage = plain.json()["usage"]
    families = scrape(proxy.url)

    requests = families["tollgate_requests"]
    assert value(requests, "tollgate_requests_total", status="200", model="fake-model") == 2
    assert value(requests, "tollgate_requests_total", status="400", error_class="client_error") == 1
    latency = families["tollgate_request_duration_seconds"]
    assert value(latency, "tollgate_request_duration_seconds_count") == 3
    assert value(latency, "tollgate_request_duration_seconds_count", segment="business",
                 prompt="booking_extract") == 1
    assert value(families["tollgate_time_to_first_token_seconds"], "tollgate_time_to_first_token_seconds_count") == 1
    assert value(families["tollgate_time_per_output_token_seconds"],
                 "tollgate_time_per_output_token_seconds_count") == 1
    tokens = families["tollgate_tokens"]
    # the same request streamed and not: the upstream reports the same usage for both
    assert value(tokens, "tollgate_tokens_total", direction="output") == 2 * usage["completion_tokens"]
    assert value(tokens, "tollgate_tokens_total", direction="input") == 2 * usage["prompt_tokens"]
    expected_cost = 2 * (usage["prompt_tokens"] * 1.0 + usage["completion_tokens"] * 2.0) / 1e6
    assert abs(value(families["tollgate_cost_usd"], "tollgate_cost_usd_total") - expected_cost) < 1e-12
    assert value(families["tollgate_upstream_up"], "tollgate_upstream_up", model="fake-model") == 1.0
    assert value(families["tollgate_traffic_log"], "tollgate_traffic_log", counter="submitted") == 3


def test_retries_and_unpriced_models_are_counted(make_sidecar, fake):
    proxy, collector = make_sidecar({"fake-model": {"deployments": [{"base_url": fake.url}]}})
    fake.script({"fault": "status", "status": 503})
    response = httpx.post(proxy.url + "/chat/completions", json=CHAT)
    wait_record(collector, response.headers["x-request-id"])
    families = scrape(proxy.url)
    assert value(families["tollgate_upstream_retries"], "tollgate_upstream_retries_total") == 1
    assert value(families["tollgate_unpriced_requests"], "tollgate_unpriced_requests_total") == 1


def test_client_supplied_labels_are_capped(make_sidecar, fake):
    proxy, collector = make_sidecar({"fake-model": {"deployments": [{"base_url": fake.url}]}})
    with httpx.Client() as client:
        for index in range(105):
            response = client.post(proxy.url + "/chat/completions", json=CHAT,
                                   headers={"X-Tollgate-Segment": f"segment-{index}"})
    wait_record(collector, response.headers["x-request-id"])
    latency = scrape(proxy.url)["tollgate_request_duration_seconds"]
    segments = {s.labels["segment"] for s in latency if s.name.endswith("_count")}
    assert len(segments) == 101 and "other" in segments
    assert value(latency, "tollgate_request_duration_seconds_count", segment="other") == 5


def test_answers_from_the_cache_bill_no_tokens_or_cost(make_sidecar, fake):
    proxy, collector = make_sidecar(
        {"fake-model": {"deployments": [{"base_url": fake.url}], "price": PRICE}},
        cache={"enabled": True, "only_deterministic": False},
    )
    first = httpx.post(proxy.url + "/chat/completions", json=CHAT)
    second = httpx.post(proxy.url + "/chat/completions", json=CHAT)
    assert (first.headers["x-tollgate-cache"], second.headers["x-tollgate-cache"]) == ("miss", "hit")
    for response in (first, second):
        wait_record(collector, response.headers["x-request-id"])
    usage = first.json()["usage"]
    families = scrape(proxy.url)
    assert value(families["tollgate_requests"], "tollgate_requests_total", status="200") == 2
    assert value(families["tollgate_tokens"], "tollgate_tokens_total", direction="output") == usage["completion_tokens"]
    expected_cost = (usage["prompt_tokens"] * 1.0 + usage["completion_tokens"] * 2.0) / 1e6
    assert abs(value(families["tollgate_cost_usd"], "tollgate_cost_usd_total") - expected_cost) < 1e-12


def wait_observed(url: str, requests: int, timeout_s: float = 30.0) -> None:
    """Wait until the metrics have counted `requests` requests (they are observed just after the answer)."""
    deadline = time.monotonic() + timeout_s
    while value(scrape(url)["tollgate_requests"], "tollgate_requests_total") < requests:
        assert time.monotonic() < deadline, f"metrics never counted {requests} requests"
        time.sleep(0.01)


def series_count(url: str) -> int:
    return sum(len(samples) for samples in scrape(url).values())


def test_client_input_cannot_grow_the_series_count(make_sidecar, fake):
    """1,000 made-up model names and tag headers: the series count stops growing once the caps are reached."""
    proxy, _ = make_sidecar({"fake-model": {"deployments": [{"base_url": fake.url}]}})
    rng = random.Random(13)

    def word() -> str:
        return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789-_/.:") for _ in range(rng.randint(1, 30)))

    counts = []
    with httpx.Client() as client:
        for index in range(1000):
            model = "fake-model" if index % 2 else word()
            headers = {"X-Tollgate-Segment": word(), "X-Tollgate-Prompt": f"{word()}@{word()}",
                       "X-Tollgate-User": word(), "X-Tollgate-Feature": word(), "X-Request-Id": word() + str(index)}
            response = client.post(proxy.url + "/chat/completions", json={**CHAT, "model": model}, headers=headers)
            assert response.status_code == (200 if model == "fake-model" else 404)
            if index in (149, 999):
                wait_observed(proxy.url, index + 1)
                counts.append(series_count(proxy.url))
    assert counts[0] == counts[1]
    requests = scrape(proxy.url)["tollgate_requests"]
    assert {s.labels["model"] for s in requests} == {"fake-model", "unknown"}
    assert value(requests, "tollgate_requests_total", model="unknown") == 500
