"""Streamed calls are never recorded at zero cost: usage from the final chunk, else estimated and marked;
the cost rollups receive exactly what the traffic rows say, from the writer's transaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa

from core.costs import cost_by
from core.database import open_database
from core.keys import create_key
from core.settings import Settings
from sidecar.testing import ThreadedSidecar
from tests.sidecar.conftest import EVERY_SSE_STYLE
from tests.sidecar.test_proxy import CHAT

PRICE = {"input_per_mtok": 3.0, "output_per_mtok": 15.0}


def settings_for(tmp_path, fake) -> Settings:
    return Settings(
        data_dir=tmp_path / ".tollgate",
        models={"fake-model": {"deployments": [{"base_url": fake.url}], "price": PRICE}},
        embedded={"enabled": "never"},
        sidecar={"port": 0, "retries": 0},
        access={"enabled": True},
    )


def stream(proxy: ThreadedSidecar, token: str) -> httpx.Response:
    with httpx.stream("POST", proxy.url + "/chat/completions", json={**CHAT, "stream": True},
                      headers={"authorization": f"Bearer {token}"}, timeout=10) as response:
        response.read()
    return response


@EVERY_SSE_STYLE
def test_streamed_calls_are_costed_from_the_final_chunk_or_an_estimate(tmp_path, fake):
    settings = settings_for(tmp_path, fake)
    engine = open_database(settings.resolved_database_url)
    try:
        created = create_key(engine, "streamer")
        with ThreadedSidecar(settings) as proxy:
            reported = stream(proxy, created.token)
            fake.set_behaviour(fault="cut", cut_after=4)  # the stream ends before its usage event
            cut = stream(proxy, created.token)
        assert (reported.status_code, cut.status_code) == (200, 200)
        with engine.connect() as connection:
            rows = {row.request_id: row for row in connection.execute(sa.text("SELECT * FROM traffic"))}
        full, estimated = rows[reported.headers["x-request-id"]], rows[cut.headers["x-request-id"]]
        assert not full.usage_estimated and full.tokens_out == 16
        assert full.cost_usd == pytest.approx((full.tokens_in * 3.0 + full.tokens_out * 15.0) / 1e6)
        assert estimated.usage_estimated and estimated.tokens_in > 0 and estimated.tokens_out > 0
        assert estimated.cost_usd > 0 and estimated.key_id == created.key.id
        now = datetime.now(UTC)
        [by_key] = cost_by(engine, "key", now - timedelta(hours=1), now + timedelta(hours=1))
        assert by_key["key"] == created.key.id and by_key["requests"] == 2 and by_key["estimated"] == 1
        assert by_key["cost_usd"] == pytest.approx(full.cost_usd + estimated.cost_usd)
        assert by_key["tokens_out"] == full.tokens_out + estimated.tokens_out
    finally:
        engine.dispose()
