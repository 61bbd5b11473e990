"""A non-stream answer whose body breaks off is an upstream failure, retried while the client has nothing yet.

The fake upstream's `cut` fault promises the whole body (Content-Length), sends half and closes (issue #13,
item 10: this used to be a 500 `internal_error` with a traceback in the log).
"""

from __future__ import annotations

import httpx

from tests.sidecar.test_proxy import CHAT, wait_record


def test_a_cut_body_is_retried_on_the_same_deployment(sidecar, fake):
    proxy, collector = sidecar
    fake.script({"fault": "cut"})
    response = httpx.post(proxy.url + "/chat/completions", json=CHAT)
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"]
    assert response.headers["x-tollgate-attempts"] == "2"
    assert fake.stats()["faults"] == {"cut": 1}
    record = wait_record(collector, response.headers["x-request-id"])
    assert record.status == 200 and record.error_class is None and record.attempts == 2


def test_a_cutting_deployment_is_retried_on_the_other_one(make_sidecar, fake, fake2):
    proxy, _ = make_sidecar({"fake-model": {"deployments": [{"base_url": fake.url}, {"base_url": fake2.url}]}})
    fake.set_behaviour(fault="cut")
    with httpx.Client() as client:
        responses = [client.post(proxy.url + "/chat/completions", json=CHAT) for _ in range(4)]
    assert [r.status_code for r in responses] == [200] * 4
    assert all(r.json()["object"] == "chat.completion" for r in responses)
    assert fake.stats()["faults"].get("cut", 0) >= 1  # the cutting deployment was tried and stepped over
    assert fake2.stats()["requests_total"] == 4


def test_every_attempt_cut_is_a_502_upstream_error(make_sidecar, fake):
    proxy, collector = make_sidecar({"fake-model": {"deployments": [{"base_url": fake.url}]}},
                                    sidecar={"retries": 2})
    fake.set_behaviour(fault="cut")
    response = httpx.post(proxy.url + "/chat/completions", json=CHAT)
    assert response.status_code == 502
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["type"] == "upstream_error" and error["code"] == "upstream_unavailable"
    assert "broke off" in error["message"] and "after 3 attempts" in error["message"]
    assert fake.stats()["faults"] == {"cut": 3}
    record = wait_record(collector, response.headers["x-request-id"])
    assert record.status == 502 and record.error_class == "upstream_error"


def test_a_cut_embeddings_body_is_retried_too(sidecar, fake):
    proxy, _ = sidecar
    fake.script({"fault": "cut"})
    response = httpx.post(proxy.url + "/embeddings", json={"model": "fake-model", "input": "hello"})
    assert response.status_code == 200 and response.json()["data"]
