"""The access stage over loopback: virtual keys, per-key models, rate limits, budgets and the admin API."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx

from core.budgets import add_budget
from core.costs import record_costs
from core.keys import create_key
from tests.sidecar.test_proxy import CHAT, wait_record

ADMIN_KEY = "admin-secret-for-tests"
PRICE = {"input_per_mtok": 1000.0, "output_per_mtok": 1000.0}  # $0.001 a token: budgets run out fast


def models(fake, price=None) -> dict:
    route: dict = {"deployments": [{"base_url": fake.url}]}
    if price:
        route["price"] = price
    return {"fake-model": route}


def post(proxy, token: str | None = None, payload: dict | None = None, **headers) -> httpx.Response:
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return httpx.post(proxy.url + "/chat/completions", json=payload or CHAT, headers=headers, timeout=10)


def test_keys_are_required_checked_and_recorded(make_sidecar, fake, db):
    created = create_key(db, "checkout", user="team-checkout")
    proxy, collector = make_sidecar(models(fake), access={"require_keys": True})
    missing = post(proxy)
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "missing_api_key"
    wrong = post(proxy, "tg-not-a-key")
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
    ok = post(proxy, created.token)
    assert ok.status_code == 200
    record = wait_record(collector, ok.headers["x-request-id"])
    assert (record.key_id, record.user) == (created.key.id, "team-checkout")


def test_keys_are_optional_unless_required(make_sidecar, fake, db):
    proxy, collector = make_sidecar(models(fake), access={"enabled": True})
    anonymous = post(proxy, "sk-anything-an-sdk-sends")
    assert anonymous.status_code == 200
    assert wait_record(collector, anonymous.headers["x-request-id"]).key_id is None
    assert post(proxy, "tg-revoked-or-unknown").status_code == 401


def test_a_key_only_calls_its_models(make_sidecar, fake, db):
    narrow = create_key(db, "narrow", allowed_models=["other-*", "gpt-4o"])
    globbed = create_key(db, "globbed", allowed_models=["fake-*"])
    proxy, _ = make_sidecar(models(fake), access={"require_keys": True})
    refused = post(proxy, narrow.token)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "model_not_allowed" and "fake-model" in refused.json()["error"]["message"]
    assert post(proxy, globbed.token).status_code == 200


def test_requests_per_minute_are_limited_per_key(make_sidecar, fake, db):
    limited = create_key(db, "limited", requests_per_minute=3)
    other = create_key(db, "other", requests_per_minute=3)
    proxy, _ = make_sidecar(models(fake), access={"require_keys": True})
    statuses = [post(proxy, limited.token).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    refused = post(proxy, limited.token)
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert post(proxy, other.token).status_code == 200  # limits are per key


def test_tokens_per_minute_are_limited_per_key(make_sidecar, fake, db):
    created = create_key(db, "tokens", tokens_per_minute=15)  # one answer uses 16 tokens out plus the prompt
    proxy, collector = make_sidecar(models(fake), access={"require_keys": True})
    first = post(proxy, created.token)
    assert first.status_code == 200 and first.json()["usage"]["total_tokens"] >= 15
    wait_record(collector, first.headers["x-request-id"])  # on_done counted the tokens before the record left
    second = post(proxy, created.token)
    assert second.status_code == 429 and second.json()["error"]["code"] == "tokens_per_minute_exceeded"


def test_a_spent_budget_is_refused_with_a_clear_429(make_sidecar, fake, db):
    created = create_key(db, "budgeted")
    add_budget(db, "key", created.key.id, "daily", 0.03)
    proxy, collector = make_sidecar(models(fake, PRICE), access={"require_keys": True})
    statuses = []
    for _ in range(4):
        response = post(proxy, created.token)
        statuses.append(response.status_code)
        if response.status_code == 200:
            wait_record(collector, response.headers["x-request-id"])
    # Each answer costs $0.019 (19 tokens at $0.001): after two the $0.03 are spent, the third is refused.
    assert statuses == [200, 200, 429, 429]
    refused = post(proxy, created.token).json()["error"]
    assert refused["code"] == "budget_exceeded" and refused["type"] == "rate_limit_error"
    assert f"key '{created.key.id}' has spent its daily budget of $0.03" in refused["message"]
    assert "resets at" in refused["message"]


def test_budgets_apply_per_user_and_feature_without_keys(make_sidecar, fake, db):
    proxy, collector = make_sidecar(models(fake, PRICE), access={
        "enabled": True, "budgets": [{"scope": "feature", "subject": "*", "period": "monthly", "limit_usd": 0.015}]})
    first = post(proxy, **{"x-tollgate-feature": "summaries"})
    assert first.status_code == 200
    wait_record(collector, first.headers["x-request-id"])
    assert post(proxy, **{"x-tollgate-feature": "summaries"}).status_code == 429
    assert post(proxy, **{"x-tollgate-feature": "search"}).status_code == 200  # '*': each feature its own
    assert post(proxy).status_code == 200  # no feature, no feature budget


def test_spend_already_in_the_database_counts_at_start_up(make_sidecar, fake, db):
    add_budget(db, "user", "ana", "daily", 1.0)
    with db.begin() as connection:
        record_costs(connection, [{"created_at": datetime.now(UTC), "served_model": "fake-model", "user": "ana",
                                   "tokens_in": 1, "tokens_out": 1, "cost_usd": 1.25}])
    proxy, _ = make_sidecar(models(fake, PRICE), access={"enabled": True})
    refused = post(proxy, **{"x-tollgate-user": "ana"})
    assert refused.status_code == 429 and "user 'ana' has spent its daily budget of $1" in refused.json()["error"]["message"]
    assert post(proxy, **{"x-tollgate-user": "bo"}).status_code == 200


def test_admin_api_creates_lists_and_revokes_keys(make_sidecar, fake, db, monkeypatch):
    monkeypatch.setenv("TOLLGATE_ADMIN_KEY", ADMIN_KEY)
    proxy, _ = make_sidecar(models(fake), access={"require_keys": True, "refresh_s": 30})
    admin = proxy.url.removesuffix("/v1") + "/admin"
    auth = {"authorization": f"Bearer {ADMIN_KEY}"}
    assert httpx.get(admin + "/keys").status_code == 401
    assert httpx.get(admin + "/keys", headers={"authorization": "Bearer wrong"}).status_code == 401
    created = httpx.post(admin + "/keys", headers=auth, json={
        "name": "from-admin", "allowed_models": ["fake-model"], "requests_per_minute": 100, "budget_usd": 5})
    assert created.status_code == 201
    body = created.json()
    token, key_id = body["key"], body["id"]
    assert body["budget"]["limit_usd"] == 5 and body["budget"]["subject"] == key_id
    # This sidecar reloads at once after its own admin change (refresh_s is 30 s here).
    assert eventually(lambda: post(proxy, token).status_code == 200)
    listing = httpx.get(admin + "/keys", headers=auth).json()["data"]
    assert [k["id"] for k in listing] == [key_id] and token not in str(listing)
    assert httpx.post(admin + "/keys", headers=auth, json={"name": ""}).status_code == 400
    assert httpx.delete(admin + "/keys/key_nope", headers=auth).status_code == 404
    assert httpx.delete(admin + "/keys/" + key_id, headers=auth).json()["revoked_at"] is not None
    assert eventually(lambda: post(proxy, token).status_code == 401)
    assert httpx.get(admin + "/keys", headers=auth).json()["data"] == []
    budgets = httpx.get(admin + "/budgets", headers=auth).json()["data"]
    assert [(b["scope"], b["subject"], b["limit_usd"]) for b in budgets] == [("key", key_id, 5.0)]
    assert httpx.get(admin + "/alerts", headers=auth).json()["data"] == []
    costs = httpx.get(admin + "/costs", headers=auth, params={"by": "key"})
    assert costs.status_code == 200 and costs.json()["by"] == "key"
    assert httpx.get(admin + "/costs", headers=auth, params={"by": "colour"}).status_code == 400


def test_the_admin_api_is_off_without_an_admin_key(make_sidecar, fake, monkeypatch):
    monkeypatch.delenv("TOLLGATE_ADMIN_KEY", raising=False)
    proxy, _ = make_sidecar(models(fake))
    response = httpx.get(proxy.url.removesuffix("/v1") + "/admin/keys", headers={"authorization": "Bearer x"})
    assert response.status_code == 403 and "admin API is disabled" in response.json()["error"]["message"]


def eventually(check, timeout_s: float = 30.0) -> bool:
    """Poll `check` until it holds (background work: key reloads, the writer's rollups)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def test_the_sidecar_records_soft_alerts_in_the_background(make_sidecar, fake, db):
    from core.alerts import list_alerts

    proxy, _ = make_sidecar(models(fake, PRICE), real_traffic=True, access={
        "enabled": True, "refresh_s": 0.2, "alert_interval_s": 0.2, "alert_thresholds": [0.5, 1.0],
        "budgets": [{"scope": "user", "subject": "ana", "period": "daily", "limit_usd": 0.03}]})
    assert post(proxy, **{"x-tollgate-user": "ana"}).status_code == 200  # $0.019: past half of $0.03
    # The writer child process stores the row and its rollups; the next evaluation sees the spend.
    assert eventually(lambda: len(list_alerts(db, kind="budget")) == 1, timeout_s=60)
    [alert] = list_alerts(db, kind="budget")
    assert (alert.scope, alert.subject, alert.threshold) == ("user", "ana", 0.015)
    assert "reached 50% of its daily budget of $0.03" in alert.message
