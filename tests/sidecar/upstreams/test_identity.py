"""A deployment's URL secrets never leave its upstream client: not in answers, metrics, rows, spool or logs."""

from __future__ import annotations

import logging
import types

import httpx
import pytest
import sqlalchemy as sa

from core.database import open_database
from core.settings import Deployment, Settings
from sidecar.testing import ThreadedSidecar
from sidecar.upstreams.base import UpstreamConnectError
from sidecar.upstreams.deployments import deployment_label, server_root
from sidecar.upstreams.identity import public_address, split_query, url_secrets
from sidecar.upstreams.litellm_provider import _map_exception
from tests.conftest import free_port

PASSWORD = "p@ss/w0rd-9731"  # configured percent-encoded: p%40ss%2Fw0rd-9731
USER = "svc-acct-5521"
QUERY_TOKEN = "tok-qwerty-8812"
PATH_KEY = "key-abc123"
SECRETS = (PASSWORD, "p%40ss%2Fw0rd-9731", USER, QUERY_TOKEN, PATH_KEY, "s3cr3t-pw-4417")


def hostile_urls(dead_port: int, fake_port: int) -> dict[str, str]:
    return {
        # connect errors: nothing listens; userinfo, percent-encoded password, key in the path, query token
        "dead-model": f"http://{USER}:p%40ss%2Fw0rd-9731@127.0.0.1:{dead_port}/v1/{PATH_KEY}/?key={QUERY_TOKEN}",
        # a live upstream answering 5xx (and 200 before the fault): userinfo and a query token
        "flaky-model": f"http://{USER}:s3cr3t-pw-4417@127.0.0.1:{fake_port}/v1?key={QUERY_TOKEN}",
    }


def test_public_address_keeps_only_scheme_host_and_port():
    assert public_address(f"http://{USER}:x@Example.COM/v1/{PATH_KEY}?key=1") == "http://example.com:80"
    assert public_address("https://api.openai.com/v1") == "https://api.openai.com:443"
    assert public_address("http://u:p@[::1]:8000/v1") == "http://[::1]:8000"
    assert split_query("http://h:1/v1?api-version=2024") == ("http://h:1/v1", "?api-version=2024")
    assert server_root(f"http://h:1/v1?key={QUERY_TOKEN}") == "http://h:1"


def test_labels_name_the_deployment_without_secrets():
    url = f"http://{USER}:p%40ss@10.0.0.5:8000/v1/{PATH_KEY}?key={QUERY_TOKEN}"
    assert deployment_label("m", Deployment(base_url=url), 0) == "m#0@http://10.0.0.5:8000"
    assert deployment_label("m", Deployment(name="eu-replica", base_url=url), 1) == "eu-replica"
    litellm = Deployment(provider="litellm", model="anthropic/claude", base_url=url)
    assert deployment_label("m", litellm, 2) == "m#2@anthropic/claude@http://10.0.0.5:8000"


def test_scrub_removes_every_spelling_of_the_secrets():
    url = f"http://{USER}:p%40ss%2Fw0rd-9731@127.0.0.1:9/v1/{PATH_KEY}?key={QUERY_TOKEN}&x=%7Eabc"
    scrub = url_secrets(url).scrub
    texts = [
        f"cannot reach {url}/chat/completions",
        f"POST http://{USER}:p%40ss%2Fw0rd-9731@127.0.0.1:9/v1/{PATH_KEY}/chat/completions?key={QUERY_TOKEN}",
        f"auth failed for {USER} with password {PASSWORD}",
        f"url='http://127.0.0.1:9/v1/{PATH_KEY}/chat' params key={QUERY_TOKEN} x=~abc",
    ]
    for text in texts:
        cleaned = scrub(text)
        assert not any(secret in cleaned for secret in SECRETS), cleaned
        assert "~abc" not in cleaned and "%7Eabc" not in cleaned
    assert scrub(f"cannot reach {url}") == "cannot reach http://127.0.0.1:9"
    assert url_secrets("http://10.0.0.5:8000/v1").scrub("nothing to hide at /v1") == "nothing to hide at /v1"


def test_litellm_errors_are_scrubbed_before_they_become_text():
    url = f"https://{USER}:s3cr3t-pw-4417@proxy.internal/v1?key={QUERY_TOKEN}"
    scrub = url_secrets(url).scrub

    class APIConnectionError(Exception):
        pass

    class Timeout(Exception):
        pass

    class BadRequest(Exception):
        status_code = 400

    litellm = types.SimpleNamespace(exceptions=types.SimpleNamespace(APIConnectionError=APIConnectionError,
                                                                     Timeout=Timeout))
    with pytest.raises(UpstreamConnectError) as raised:
        _map_exception(litellm, APIConnectionError(f"Connection error to {url}/messages"), scrub)
    assert not any(secret in str(raised.value) for secret in SECRETS)
    answer = _map_exception(litellm, BadRequest(f"bad request for api_base={url} (key {QUERY_TOKEN})"), scrub)
    assert answer.status == 400 and not any(secret.encode() in answer._body for secret in SECRETS)


def _all_text(rows: list[dict]) -> str:
    return "\n".join(repr(value) for row in rows for value in row.values())


def _traffic_rows(url: str) -> list[dict]:
    engine = open_database(url)
    try:
        with engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(sa.text("SELECT * FROM traffic"))]
    finally:
        engine.dispose()


def _exercise(proxy: ThreadedSidecar, fake) -> list[str]:
    """Connect errors, 5xx and a success, plain and streamed; returns every answer's text."""
    texts = []
    chat = {"messages": [{"role": "user", "content": "hi"}]}
    fake.set_behaviour(fault="none")
    texts.append(httpx.post(proxy.url + "/chat/completions", json={**chat, "model": "flaky-model"}).text)
    fake.set_behaviour(fault="status", status=503)
    for model in ("dead-model", "flaky-model"):
        for stream in (False, True):
            response = httpx.post(proxy.url + "/chat/completions", json={**chat, "model": model, "stream": stream})
            assert response.status_code == 502, response.text
            texts.append(response.text)
    texts.append(httpx.get(proxy.url.removesuffix("/v1") + "/metrics").text)
    return texts


def test_hostile_base_urls_leak_nowhere_over_real_http(tmp_path, fake, sqlite_url, caplog):
    caplog.set_level(logging.DEBUG)
    urls = hostile_urls(free_port(), fake.port)
    models = {name: {"deployments": [{"base_url": url}]} for name, url in urls.items()}
    common = {"data_dir": tmp_path / ".tollgate", "models": models, "embedded": {"enabled": "never"},
              "sidecar": {"port": 0, "retry_backoff_s": 0.0}, "traffic": {"writer": "thread"},
              "routing": {"health": {"enabled": True, "interval_s": 0.05}}}
    dead_db = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nowhere"
    down = Settings(database_url=dead_db, **common)
    with ThreadedSidecar(down) as proxy:  # the database is down: rows go to the spool
        answers = _exercise(proxy, fake)
    spooled = "".join(path.read_text() for path in down.spool_dir.glob("*.jsonl"))
    assert '"deployment": "flaky-model#0@http://127.0.0.1:' in spooled.replace('":"', '": "')
    up = Settings(database_url=sqlite_url, **common)
    with ThreadedSidecar(up) as proxy:  # the spool is replayed into the database
        answers += _exercise(proxy, fake)
    rows = _traffic_rows(up.resolved_database_url)
    assert len(rows) == 10 and {row["status"] for row in rows} == {200, 502}
    assert {row["deployment"] for row in rows if row["status"] == 200} == {f"flaky-model#0@http://127.0.0.1:{fake.port}"}
    assert any("cannot reach http://[IP]:" in (row["error_message"] or "") for row in rows)  # IPs count as PII
    metrics = answers[-1]
    assert f'deployment="flaky-model#0@http://127.0.0.1:{fake.port}"' in metrics
    places = {"answers and /metrics": "\n".join(answers), "traffic rows": _all_text(rows), "spool": spooled,
              "logs": caplog.text}
    for place, text in places.items():
        leaked = [secret for secret in SECRETS if secret in text]
        assert not leaked, f"{leaked} found in {place}"


def test_credentials_in_the_url_and_an_api_key_are_refused_together():
    # aiohttp refuses an Authorization header beside URL credentials: every call would be a 500.
    with pytest.raises(ValueError, match="use one"):
        Deployment(base_url=f"http://{USER}:pw@h/v1", api_key_env="SOME_KEY")
    assert Deployment(base_url="http://h/v1?x=a@b", api_key_env="SOME_KEY").base_url == "http://h/v1?x=a@b"


def test_a_url_aiohttp_cannot_use_fails_without_quoting_it():
    # aiohttp's InvalidURL text is the whole URL, password included: it must not become the error text.
    import asyncio

    from sidecar.upstreams.base import Timeouts
    from sidecar.upstreams.openai_compat import OpenAICompatClient, create_session

    async def call() -> UpstreamConnectError:
        session = create_session(4)
        try:
            client = OpenAICompatClient(session, f"http://{USER}:s3cr3t-pw-4417@127.0.0.1:99999/v1", None)
            with pytest.raises(UpstreamConnectError) as raised:
                await client.send("/chat/completions", b"{}", None, Timeouts(1.0, 1.0, 1.0))
            return raised.value
        finally:
            await session.close()

    error = asyncio.run(call())
    assert not any(secret in str(error) for secret in SECRETS)
    assert error.__cause__ is None and error.__suppress_context__  # no traceback can quote it either


@pytest.mark.parametrize("url", ["http://{u}:s3cr3t-pw-4417@127.0.0.1:99999/v1", "http://{u}:s3cr3t-pw-4417@/v1"])
def test_an_unusable_base_url_is_a_config_error_that_does_not_quote_it(tmp_path, url):
    from core.errors import ConfigError
    from core.settings import load_settings

    config = tmp_path / "tollgate.yaml"
    config.write_text(f"models:\n  m:\n    deployments:\n      - base_url: '{url.format(u=USER)}'\n")
    with pytest.raises(ConfigError) as raised:
        load_settings(str(config))
    assert "base_url" in str(raised.value)
    assert not any(secret in str(raised.value) for secret in SECRETS)
