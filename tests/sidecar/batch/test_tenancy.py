"""With keys required, every `/v1` route needs a key; files and batches belong to the key that created them and
batches run as that key (its models, limits and budget)."""

from __future__ import annotations

import httpx
import pytest

from core.budgets import add_budget
from core.keys import create_key
from tests.sidecar.access.test_access_stage import eventually
from tests.sidecar.batch.test_batches import MODEL, jsonl, models

ADMIN_KEY = "tenancy-admin-key"
PRICE = {"input_per_mtok": 1000.0, "output_per_mtok": 1000.0}  # $0.001 a token


@pytest.fixture
def keyed(make_sidecar, fake, tmp_path, monkeypatch):
    """A sidecar that requires keys, with batches and feedback (releases) on."""
    monkeypatch.setenv("TOLLGATE_ADMIN_KEY", ADMIN_KEY)
    (tmp_path / "prompts").mkdir()

    def start(price: dict | None = None, refresh_s: float = 0.2, **batch):
        routes = models(fake)
        if price:
            routes[MODEL]["price"] = price
        proxy, collector = make_sidecar(
            routes, access={"require_keys": True, "refresh_s": refresh_s},
            batch={"enabled": True, "poll_interval_s": 0.1, **batch},
            releases={"enabled": True, "prompts_dir": str(tmp_path / "prompts")})
        return proxy, collector

    return start


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def upload(proxy, token: str, content: bytes) -> dict:
    response = httpx.post(proxy.url + "/files", files={"file": ("in.jsonl", content, "application/jsonl")},
                          data={"purpose": "batch"}, headers=auth(token))
    assert response.status_code == 200, response.text
    return response.json()


def create(proxy, token: str, file_id: str) -> httpx.Response:
    return httpx.post(proxy.url + "/batches", json={"input_file_id": file_id, "endpoint": "/v1/chat/completions"},
                      headers=auth(token))


def finished(proxy, token: str, batch_id: str) -> dict:
    def done() -> bool:
        return httpx.get(f"{proxy.url}/batches/{batch_id}", headers=auth(token)).json()["status"] in (
            "completed", "failed")

    assert eventually(done, timeout_s=30)
    return httpx.get(f"{proxy.url}/batches/{batch_id}", headers=auth(token)).json()


def test_every_v1_route_needs_a_key_when_keys_are_required(keyed, db):
    proxy, _ = keyed()
    base = proxy.url.removesuffix("/v1")
    calls = [("GET", "/v1/models"), ("GET", "/models"), ("POST", "/v1/chat/completions"),
             ("POST", "/v1/completions"), ("POST", "/v1/embeddings"), ("GET", "/v1/files"), ("POST", "/v1/files"),
             ("GET", "/v1/files/file-x"), ("GET", "/v1/files/file-x/content"), ("GET", "/v1/batches"),
             ("POST", "/v1/batches"), ("GET", "/v1/batches/batch_x"), ("POST", "/v1/batches/batch_x/cancel"),
             ("POST", "/v1/feedback")]
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "prompt": "hi", "input": "hi",
            "request_id": "r", "outcome": "converted", "value": 1000000}
    for method, path in calls:
        for headers in ({}, auth("tg-not-a-key")):
            response = httpx.request(method, base + path, json=body if method == "POST" else None, headers=headers)
            assert response.status_code == 401, (method, path, headers, response.text)
            assert response.json()["error"]["code"] in ("missing_api_key", "invalid_api_key")
    token = create_key(db, "reader").token
    assert eventually(lambda: httpx.get(proxy.url + "/models", headers=auth(token)).status_code == 200)


def test_files_and_batches_are_seen_only_by_their_key_and_the_admin(keyed, db):
    owner, other = create_key(db, "owner").token, create_key(db, "other").token
    proxy, _ = keyed()
    file = upload(proxy, owner, jsonl(2))
    created = create(proxy, owner, file["id"])
    assert created.status_code == 200, created.text
    batch = finished(proxy, owner, created.json()["id"])
    assert batch["status"] == "completed" and batch["request_counts"]["completed"] == 2, batch
    output = batch["output_file_id"]
    # Another key: nothing of the owner's exists (404, not 403, so ids do not reveal that they exist).
    assert httpx.get(proxy.url + "/files", headers=auth(other)).json()["data"] == []
    assert httpx.get(proxy.url + "/batches", headers=auth(other)).json()["data"] == []
    for path in (f"/files/{file['id']}", f"/files/{file['id']}/content", f"/files/{output}/content",
                 f"/batches/{batch['id']}"):
        hidden = httpx.get(proxy.url + path, headers=auth(other))
        assert hidden.status_code == 404 and hidden.json()["error"]["type"] == "invalid_request_error", path
    cancel = httpx.post(f"{proxy.url}/batches/{batch['id']}/cancel", headers=auth(other))
    assert cancel.status_code == 404
    reuse = create(proxy, other, file["id"])
    assert reuse.status_code == 400 and reuse.json()["error"]["param"] == "input_file_id"
    # The owner sees its own, including the output file the batch wrote.
    own_files = {f["id"] for f in httpx.get(proxy.url + "/files", headers=auth(owner)).json()["data"]}
    assert own_files == {file["id"], output}
    assert httpx.get(f"{proxy.url}/files/{output}/content", headers=auth(owner)).status_code == 200
    # The admin key sees everything.
    admin_files = {f["id"] for f in httpx.get(proxy.url + "/files", headers=auth(ADMIN_KEY)).json()["data"]}
    assert admin_files == own_files
    assert [b["id"] for b in httpx.get(proxy.url + "/batches", headers=auth(ADMIN_KEY)).json()["data"]] == [batch["id"]]


def test_a_batch_runs_as_the_key_that_created_it(keyed, db):
    key = create_key(db, "batcher", allowed_models=[MODEL])
    proxy, collector = keyed()
    lines = jsonl(2) + jsonl(1, prefix="other").replace(MODEL.encode(), b"other-model")
    batch = finished(proxy, key.token, create(proxy, key.token, upload(proxy, key.token, lines)["id"]).json()["id"])
    assert batch["request_counts"] == {"total": 3, "completed": 2, "failed": 1}, batch
    [refused] = _lines(proxy, key.token, batch["error_file_id"])
    assert refused["custom_id"] == "other-0" and refused["response"]["status_code"] == 403
    assert refused["error"]["code"] == "model_not_allowed"
    records = [r for r in collector.records if r.segment == "batch"]
    assert len(records) == 3 and {r.key_id for r in records} == {key.key.id}


def test_a_batch_spends_its_keys_budget(keyed, db):
    key = create_key(db, "thrifty")
    add_budget(db, "key", key.key.id, "daily", 0.03)  # a call costs about $0.019
    # No reload during the test: spend lives in this process only (the traffic log is a collector here).
    proxy, _ = keyed(price=PRICE, refresh_s=3600, concurrency=1)
    batch = finished(proxy, key.token, create(proxy, key.token, upload(proxy, key.token, jsonl(4))["id"]).json()["id"])
    assert batch["request_counts"]["failed"] >= 2, batch
    codes = {line["error"]["code"] for line in _lines(proxy, key.token, batch["error_file_id"])}
    assert codes == {"budget_exceeded"}
    live = httpx.post(proxy.url + "/chat/completions", headers=auth(key.token),
                      json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})
    assert live.status_code == 429 and live.json()["error"]["code"] == "budget_exceeded"


def test_an_outside_client_cannot_claim_a_key_with_the_internal_header(keyed, db):
    key = create_key(db, "victim")
    proxy, _ = keyed()
    forged = httpx.post(proxy.url + "/chat/completions", json={"model": MODEL, "messages": [
        {"role": "user", "content": "hi"}]}, headers={"x-tollgate-internal-key": f"guess:{key.key.id}"})
    assert forged.status_code == 401 and forged.json()["error"]["code"] == "invalid_api_key"
    listed = httpx.get(proxy.url + "/files", headers={"x-tollgate-internal-key": f":{key.key.id}"})
    assert listed.status_code == 401


def _lines(proxy, token: str, file_id: str) -> list[dict]:
    import orjson

    response = httpx.get(f"{proxy.url}/files/{file_id}/content", headers=auth(token))
    assert response.status_code == 200, response.text
    return [orjson.loads(line) for line in response.content.splitlines()]
