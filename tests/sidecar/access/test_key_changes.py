"""Key changes take effect at once, even while prices are still loading (litellm's map takes 20-30 s)."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
import yaml

from core.keys import create_key, revoke_key
from tests.sidecar.access.test_access_stage import ADMIN_KEY, eventually, models, post

TOLLGATE = str(Path(sys.executable).parent / "tollgate")


@pytest.fixture
def slow_prices(make_sidecar, monkeypatch):
    """Price loading that never finishes while the test runs (set up after, torn down before, the sidecars)."""
    release = threading.Event()

    class StuckPriceBook:
        def __init__(self, settings) -> None:
            self.settings = settings

        def price(self, model):
            release.wait()

    monkeypatch.setattr("sidecar.access.stage.PriceBook", StuckPriceBook)
    yield release
    release.set()


def test_a_key_revoked_in_the_database_right_after_start_is_refused_at_the_next_poll(
    make_sidecar, fake, db, slow_prices
):
    created = create_key(db, "short-lived")
    proxy, _ = make_sidecar(models(fake), access={"require_keys": True, "refresh_s": 0.2})
    assert post(proxy, created.token).status_code == 200
    revoke_key(db, created.key.id)  # what `tollgate keys revoke` does, without Redis to announce it
    assert eventually(lambda: post(proxy, created.token).status_code == 401, timeout_s=15)


def test_a_key_revoked_through_the_admin_api_is_refused_by_the_next_request(
    make_sidecar, fake, db, slow_prices, monkeypatch
):
    monkeypatch.setenv("TOLLGATE_ADMIN_KEY", ADMIN_KEY)
    created = create_key(db, "short-lived")
    proxy, _ = make_sidecar(models(fake), access={"require_keys": True, "refresh_s": 3600})
    assert post(proxy, created.token).status_code == 200
    revoked = httpx.delete(
        proxy.url.removesuffix("/v1") + "/admin/keys/" + created.key.id,
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
        timeout=10,
    )
    assert revoked.status_code == 200
    refused = post(proxy, created.token)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"


@pytest.mark.redis
def test_a_key_revoked_with_the_cli_reaches_every_sidecar_through_redis(
    make_sidecar, fake, db, slow_prices, redis_url, tmp_path
):
    created = create_key(db, "short-lived")
    # No poll within the test: only the announcement through Redis can make the revoke known.
    settings = {"access": {"require_keys": True, "refresh_s": 3600}, "redis_url": redis_url}
    first, _ = make_sidecar(models(fake), **settings)
    second, _ = make_sidecar(models(fake), **settings)
    assert post(first, created.token).status_code == 200
    assert post(second, created.token).status_code == 200
    config = tmp_path / "cli.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(tmp_path / ".tollgate"), "redis_url": redis_url}))
    subprocess.run(
        [TOLLGATE, "keys", "--config", str(config), "revoke", created.key.id],
        check=True,
        capture_output=True,
        timeout=60,
    )
    assert eventually(lambda: post(first, created.token).status_code == 401, timeout_s=15)
    assert eventually(lambda: post(second, created.token).status_code == 401, timeout_s=15)
