"""PII in tag headers never reaches traffic rows, cost rollups, review items, /metrics or spans."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import sqlalchemy as sa
import yaml
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from core.database import open_database
from core.settings import Settings
from sidecar.testing import ThreadedSidecar

EMAIL, PHONE, CARD = "someone@example.com", "+44 20 7946 0958", "4111 1111 1111 1111"
RAW = ["someone", "example.com", "7946 0958", "7946%200958", "4111111111111111", "1111 1111", "555-123-4567",
       "other.person", "4111-1111"]
HOSTILE_HEADERS = [
    {"X-Tollgate-User": EMAIL, "X-Tollgate-Feature": f"support {PHONE}", "x-request-id": f"req {CARD}",
     "X-Tollgate-Segment": "someone%40example.com", "X-Tollgate-Prompt": "faq-555-123-4567@v2"},
    {"X-Tollgate-User": "ｓｏｍｅｏｎｅ＠ｅｘａｍｐｌｅ．ｃｏｍ", "X-Tollgate-Feature": "feature-+442079460958",
     "x-request-id": "order-4111111111111111", "X-Tollgate-Segment": "tier/" + "x" * 190 + " someone@example.com"},
    {"X-Tollgate-User": "uid:someone@example.com", "X-Tollgate-Feature": "billing 4111-1111-1111-1111"},
]
CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": "hello"}]}


def _settings(tmp_path, db_url: str, **extra) -> Settings:
    return Settings(
        data_dir=tmp_path / ".tollgate", database_url=db_url, embedded={"enabled": "never"}, sidecar={"port": 0},
        traffic={"writer": "thread"}, **extra,
    )


def _tables(url: str) -> dict[str, list[dict]]:
    engine = open_database(url)
    try:
        with engine.connect() as conn:
            return {name: [dict(row._mapping) for row in conn.execute(sa.text(f"SELECT * FROM {name}"))]
                    for name in ("traffic", "cost_rollup", "review_item")}
    finally:
        engine.dispose()


def _send_all(proxy: ThreadedSidecar) -> str:
    for headers in HOSTILE_HEADERS:
        encoded = {name: value.encode() for name, value in headers.items()}  # UTF-8 header values
        for stream in (False, True):
            response = httpx.post(proxy.url + "/chat/completions", json={**CHAT, "stream": stream}, headers=encoded)
            assert response.status_code == 200, response.text
    body_user = httpx.post(proxy.url + "/chat/completions", json={**CHAT, "user": "other.person@example.com"})
    assert body_user.status_code == 200
    return httpx.get(proxy.url.removesuffix("/v1") + "/metrics").text


def _leaks(text: str) -> list[str]:
    return [raw for raw in RAW if raw in text]


def test_pii_in_tags_is_stored_nowhere(tmp_path, fake, sqlite_url):
    price = {"input_per_mtok": 1.0, "output_per_mtok": 2.0}
    flag_all = {"defaults": False, "policies": [{"guards": [{"type": "max_size", "max_chars": 3, "action": "flag"}]}]}
    settings = _settings(tmp_path, sqlite_url, models={"fake-model": {"deployments": [{"base_url": fake.url}],
                                                                      "price": price}},
                         guards=flag_all)  # every request flagged: review items carry the tags too
    exporter = InMemorySpanExporter()
    with ThreadedSidecar(settings, span_exporter=exporter) as proxy:
        metrics = _send_all(proxy)
    tables = _tables(settings.resolved_database_url)
    assert len(tables["traffic"]) == 7
    assert len(tables["review_item"]) == 7
    assert "faq-[PHONE]" in {row["prompt_name"] for row in tables["review_item"]}
    assert "req [CARD]" in {row["request_id"] for row in tables["review_item"]}
    users = {row["user"] for row in tables["traffic"]}
    assert users == {"[EMAIL]", "uid:[EMAIL]"}
    assert {row["value"] for row in tables["cost_rollup"] if row["dimension"] == "user"} == users
    assert "req [CARD]" in {row["request_id"] for row in tables["traffic"]}
    for name, rows in tables.items():
        for row in rows:
            assert not _leaks(" ".join(map(str, row.values()))), f"{name}: {row}"
    assert not _leaks(metrics)
    spans = " ".join(str(dict(span.attributes or {})) for span in exporter.get_finished_spans())
    assert "[EMAIL]" in spans and not _leaks(spans)


def test_hashed_users_are_stable_so_rollups_still_add_up(tmp_path, fake, sqlite_url, monkeypatch):
    monkeypatch.setenv("TEAM_USER_KEY", "a long random secret for the test")
    settings = _settings(
        tmp_path, sqlite_url, models={"fake-model": {"deployments": [{"base_url": fake.url}]}},
        access={"hash_users": True, "user_hash_key_env": "TEAM_USER_KEY"},
    )
    with ThreadedSidecar(settings) as proxy:
        for user in (EMAIL, EMAIL, "ｓｏｍｅｏｎｅ＠ｅｘａｍｐｌｅ．ｃｏｍ", "ana"):
            httpx.post(proxy.url + "/chat/completions", json=CHAT, headers={"X-Tollgate-User": user.encode()})
    tables = _tables(settings.resolved_database_url)
    users = [row["user"] for row in tables["traffic"]]
    assert all(user.startswith("u_") and len(user) == 34 for user in users)
    assert len(set(users)) == 2  # the same person is one id, whichever way the id was spelled
    per_user = {row["value"]: row["requests"] for row in tables["cost_rollup"]
                if row["dimension"] == "user" and row["span"] == "day"}
    assert sorted(per_user.values()) == [1, 3]
    assert not any("someone" in str(row) or "ana" in (row["user"] or "") for row in tables["traffic"])


def test_hash_users_without_its_key_refuses_to_start(tmp_path):
    config = tmp_path / "tollgate.yaml"
    config.write_text(yaml.safe_dump({
        "data_dir": str(tmp_path / ".tollgate"), "embedded": {"enabled": "never"},
        "models": {"m": {"deployments": [{"base_url": "http://127.0.0.1:9/v1"}]}},
        "access": {"hash_users": True, "user_hash_key_env": "TEAM_USER_KEY_UNSET"},
    }))
    env = {k: v for k, v in os.environ.items() if k != "TEAM_USER_KEY_UNSET"}
    done = subprocess.run([sys.executable, "-m", "core.cli", "serve", "--config", str(config), "--port", "0"],
                          check=False, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "TEAM_USER_KEY_UNSET" in lines[0] and "hash_users" in lines[0]
