"""Errors on the non-proxy routes are OpenAI-shaped JSON, never plain text (issue #13, item 14)."""

from __future__ import annotations

import httpx

from tests.sidecar.access.test_access_stage import ADMIN_KEY, models

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


class _Exploding:
    """A prefix route that fails in an unexpected way (a bug stands in for every one not found yet)."""

    def matches(self, path: str) -> bool:
        return path == "/explode"

    async def __call__(self, scope, receive, send) -> None:
        raise RuntimeError("a bug")


def test_an_unexpected_exception_in_a_route_is_a_json_500(make_sidecar, fake, caplog):
    proxy, _ = make_sidecar(models(fake))
    proxy.app.runtime.extra_routes.insert(0, _Exploding())
    response = httpx.post(proxy.url.removesuffix("/v1") + "/explode")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["type"] == "server_error"
    assert "a bug" not in response.text  # the cause goes to the log, not to the client
    assert any("internal error while handling POST /explode" in r.getMessage() for r in caplog.records)


def test_admin_ids_and_limits_beyond_64_bits_are_4xx(make_sidecar, fake, monkeypatch):
    monkeypatch.setenv("TOLLGATE_TEST_ADMIN_KEY", ADMIN_KEY)
    proxy, _ = make_sidecar(models(fake), access={"admin_key_env": "TOLLGATE_TEST_ADMIN_KEY"})
    base = proxy.url.removesuffix("/v1")
    budget = httpx.delete(base + "/admin/budgets/99999999999999999999", headers=ADMIN)
    assert budget.status_code == 404 and budget.json()["error"]["code"] == "not_found"
    key = httpx.post(base + "/admin/keys", headers=ADMIN, json={"name": "k", "tokens_per_minute": 2**64 - 1})
    assert key.status_code == 400 and key.json()["error"]["param"] == "tokens_per_minute"
