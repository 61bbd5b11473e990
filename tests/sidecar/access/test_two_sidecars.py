"""Two `tollgate serve` processes on one PostgreSQL and one Redis share keys, rate limits and budgets."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from core.budgets import add_budget
from core.database import open_database
from core.keys import create_key
from tests.sidecar.access.test_access_stage import eventually
from tests.sidecar.test_proxy import CHAT

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

ADMIN_KEY = "two-sidecars-admin-key"
TOLLGATE = str(Path(sys.executable).parent / "tollgate")


@pytest.fixture
def pg(postgres_url):
    engine = open_database(postgres_url)
    yield engine
    engine.dispose()


@pytest.fixture
def two_sidecars(tmp_path, fake, postgres_url, redis_url, pg) -> Iterator[list[str]]:
    """Two sidecar processes; traffic logging is off, so spend can only travel between them through Redis."""
    config = {
        "database_url": postgres_url,
        "redis_url": redis_url,
        "data_dir": str(tmp_path / ".tollgate"),
        "embedded": {"enabled": "never"},
        "traffic": {"enabled": False},
        "models": {"fake-model": {"deployments": [{"base_url": fake.url}],
                                  "price": {"input_per_mtok": 1000.0, "output_per_mtok": 1000.0}}},
        "access": {"require_keys": True, "refresh_s": 0.5},
    }
    path = tmp_path / "tollgate.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "TOLLGATE_ADMIN_KEY": ADMIN_KEY}
    processes = [
        subprocess.Popen([TOLLGATE, "serve", "--config", str(path), "--port", "0", "--log-level", "warning"],
                         stdout=subprocess.PIPE, text=True, env=env)
        for _ in range(2)
    ]
    try:
        urls = [_listening_url(process) for process in processes]
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            assert process.stdout is not None
            process.stdout.close()


def _listening_url(process: subprocess.Popen) -> str:
    assert process.stdout is not None
    line = process.stdout.readline()  # `tollgate sidecar listening on http://127.0.0.1:PORT/v1`
    if "listening on" not in line:
        raise AssertionError(f"sidecar did not start (exit {process.poll()}): {line!r}")
    return line.strip().rsplit(" ", 1)[1]


def post(url: str, token: str) -> httpx.Response:
    return httpx.post(url + "/chat/completions", json=CHAT, headers={"authorization": f"Bearer {token}"}, timeout=10)


def test_rate_limits_are_shared_by_two_sidecar_processes(pg, two_sidecars):
    created = create_key(pg, "shared-limit", requests_per_minute=6)
    first, second = two_sidecars
    assert eventually(lambda: post(first, created.token).status_code == 200)  # both have loaded the new key
    assert eventually(lambda: post(second, created.token).status_code == 200)
    # Alone, each process would allow 6 a minute (12 in all); together they allow 6.
    statuses = [post(url, created.token).status_code for url in (first, second) * 4]
    assert statuses == [200, 200, 200, 200, 429, 429, 429, 429]


def test_budgets_are_shared_by_two_sidecar_processes(pg, two_sidecars):
    created = create_key(pg, "shared-budget")
    add_budget(pg, "key", created.key.id, "daily", 0.03)  # each call costs $0.019
    first, second = two_sidecars
    assert eventually(lambda: post(first, created.token).status_code == 200)
    # The second process has spent nothing itself; the first one's spend reached it through Redis. (It learns of
    # the new key on its next reload: until then it answers 401 without spending.)
    assert eventually(lambda: post(second, created.token).status_code == 200)
    assert eventually(lambda: post(first, created.token).status_code == 429, timeout_s=10.0)
    refused = post(second, created.token)
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "budget_exceeded"


def test_a_key_revoked_on_one_sidecar_is_refused_by_the_other(pg, two_sidecars):
    first, second = two_sidecars
    created = httpx.post(first.removesuffix("/v1") + "/admin/keys", json={"name": "short-lived"},
                         headers={"authorization": f"Bearer {ADMIN_KEY}"}).json()
    assert eventually(lambda: post(second, created["key"]).status_code == 200)
    revoked = httpx.delete(first.removesuffix("/v1") + "/admin/keys/" + created["id"],
                           headers={"authorization": f"Bearer {ADMIN_KEY}"})
    assert revoked.status_code == 200
    assert eventually(lambda: post(second, created["key"]).status_code == 401)
    assert post(first, created["key"]).status_code == 401
