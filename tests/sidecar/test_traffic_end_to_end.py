"""The traffic log behind a running sidecar: rows in the real databases, SIGTERM under load, a database outage."""

from __future__ import annotations

import concurrent.futures
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
import yaml

from core.database import open_database
from core.settings import Settings
from sidecar.testing import ThreadedSidecar
from tests.conftest import free_port
from tests.sidecar.conftest import EVERY_SSE_STYLE

CHAT = {"model": "fake-model", "messages": [{"role": "user", "content": "mail me at jane.doe@example.com please"}]}
PRICE = {"input_per_mtok": 1.0, "output_per_mtok": 2.0}


def traffic_rows(url: str) -> list[dict]:
    engine = open_database(url)
    try:
        with engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(sa.text("SELECT * FROM traffic"))]
    finally:
        engine.dispose()


def settings_for(tmp_path: Path, fake_url: str, database_url: str | None, **extra) -> Settings:
    return Settings(
        data_dir=tmp_path / ".tollgate",
        database_url=database_url,
        models={"fake-model": {"deployments": [{"base_url": fake_url}], "price": PRICE}},
        embedded={"enabled": "never"},
        sidecar={"port": 0},
        **extra,
    )


@EVERY_SSE_STYLE
def test_requests_are_logged_with_usage_cost_and_redaction(tmp_path, fake, db_url):
    settings = settings_for(tmp_path, fake.url, db_url)
    with ThreadedSidecar(settings) as proxy:
        plain = httpx.post(proxy.url + "/chat/completions", json=CHAT, headers={"X-Tollgate-Feature": "support"})
        with httpx.stream("POST", proxy.url + "/chat/completions", json={**CHAT, "stream": True}) as stream:
            stream.read()
        bad = httpx.post(proxy.url + "/chat/completions", json={"model": "fake-model"})
    assert (plain.status_code, stream.status_code, bad.status_code) == (200, 200, 400)
    rows = {row["request_id"]: row for row in traffic_rows(settings.resolved_database_url)}
    assert len(rows) == 3
    logged = rows[plain.headers["x-request-id"]]
    usage = plain.json()["usage"]
    assert (logged["tokens_in"], logged["tokens_out"]) == (usage["prompt_tokens"], usage["completion_tokens"])
    expected_cost = (usage["prompt_tokens"] * 1.0 + usage["completion_tokens"] * 2.0) / 1e6
    assert logged["cost_usd"] == pytest.approx(expected_cost)
    assert logged["feature"] == "support" and logged["status"] == 200
    assert "jane.doe@example.com" not in logged["request_body"] and "[EMAIL]" in logged["request_body"]
    streamed = rows[stream.headers["x-request-id"]]
    assert streamed["stream"] and streamed["tokens_out"] == usage["completion_tokens"]
    assert not streamed["usage_estimated"] and streamed["ttft_ms"] is not None
    assert rows[bad.headers["x-request-id"]]["error_class"] == "client_error"


def _start_serving(tmp_path: Path, config: dict) -> tuple[subprocess.Popen, str]:
    config_path = tmp_path / "tollgate.yaml"
    config_path.write_text(yaml.safe_dump(config))
    process = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "serve", "--config", str(config_path), "--port", "0", "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("tollgate sidecar listening on "):
            return process, line.split()[-1]
    raise AssertionError(f"sidecar did not start: {process.wait()}")


def test_sigterm_under_load_loses_no_records(tmp_path, fake, db_url):
    fake.set_behaviour(ttft_s=0.02)
    config = {
        "data_dir": str(tmp_path / ".tollgate"),
        "database_url": db_url,
        "models": {"fake-model": {"deployments": [{"base_url": fake.url}], "price": PRICE}},
        "embedded": {"enabled": "never"},
    }
    process, url = _start_serving(tmp_path, config)
    answered: list[str] = []

    def call(_: int) -> str | None:
        try:
            response = httpx.post(url + "/chat/completions", json=CHAT, timeout=30)
        except httpx.HTTPError:
            return None  # refused after shutdown began: never answered, so nothing is owed
        return response.headers.get("x-request-id") if response.status_code == 200 else None

    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        futures = [pool.submit(call, i) for i in range(400)]
        while sum(f.done() for f in futures) < 100:
            time.sleep(0.01)
        process.send_signal(signal.SIGTERM)
        answered = [f.result() for f in futures if f.result() is not None]
    # uvicorn re-raises the signal after its graceful shutdown, so the status says "terminated by SIGTERM".
    status = process.wait(timeout=60)
    assert process.stdout is not None
    process.stdout.close()
    assert status in (0, -signal.SIGTERM)
    assert len(answered) >= 100
    logged = {row["request_id"] for row in traffic_rows(Settings(database_url=db_url).resolved_database_url)}
    missing = set(answered) - logged
    assert not missing, f"{len(missing)} answered requests have no traffic record"


def test_database_outage_spools_then_replays_on_next_start(tmp_path, fake, db_url):
    dead = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nowhere"
    settings_down = settings_for(tmp_path, fake.url, dead)
    with ThreadedSidecar(settings_down) as proxy:
        ids = [httpx.post(proxy.url + "/chat/completions", json=CHAT).headers["x-request-id"] for _ in range(20)]
        stats = httpx.get(proxy.url.removesuffix("/v1") + "/readyz").json()["traffic"]
    assert stats["submitted"] == 20
    spool_files = list(settings_down.spool_dir.glob("*.jsonl"))
    assert spool_files, "records must be spooled while the database is down"
    assert "jane.doe@example.com" not in "".join(p.read_text() for p in spool_files)
    settings_up = settings_for(tmp_path, fake.url, db_url)
    with ThreadedSidecar(settings_up):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            logged = {row["request_id"] for row in traffic_rows(settings_up.resolved_database_url)}
            if set(ids) <= logged:
                break
            time.sleep(0.2)
    rows = traffic_rows(settings_up.resolved_database_url)
    assert sorted(row["request_id"] for row in rows) == sorted(ids)  # all replayed, none twice
    assert not list(settings_up.spool_dir.glob("traffic-*.jsonl"))
