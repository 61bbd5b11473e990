"""The sidecar with no upstream configured serves the real embedded SmolLM2 model, and logs its traffic."""

from __future__ import annotations

import httpx
import jsonschema
import orjson
import pytest
import sqlalchemy as sa

from core.database import open_database
from core.settings import Settings
from sidecar.testing import ThreadedSidecar

BOOKING_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "nights": {"type": "integer"}},
    "required": ["city", "nights"],
    "additionalProperties": False,
}


@pytest.mark.embedded
def test_json_extraction_through_the_sidecar(tmp_path):
    settings = Settings(
        data_dir=tmp_path / ".tollgate",
        sidecar={"port": 0},
        embedded={"threads": 1, "parallel": 2, "context": 4096},
    )
    request = {
        "model": "local/smollm2-135m",
        "messages": [{"role": "user", "content": "Book me a hotel in Paris for 3 nights."}],
        "temperature": 0,
        "max_tokens": 60,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "booking", "strict": True, "schema": BOOKING_SCHEMA},
        },
    }
    with ThreadedSidecar(settings) as proxy:
        assert [m["id"] for m in httpx.get(proxy.url + "/models").json()["data"]] == ["local/smollm2-135m"]
        response = httpx.post(proxy.url + "/chat/completions", json=request, timeout=120)
        with httpx.stream("POST", proxy.url + "/chat/completions", json={**request, "stream": True},
                          timeout=120) as stream:
            streamed = [line for line in stream.iter_lines() if line.startswith("data: ")]
    assert response.status_code == 200, response.text
    booking = orjson.loads(response.json()["choices"][0]["message"]["content"])
    jsonschema.validate(booking, BOOKING_SCHEMA)
    assert booking == {"city": "Paris", "nights": 3}
    assert streamed[-1] == "data: [DONE]"
    engine = open_database(settings.resolved_database_url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT stream, tokens_out, cost_usd, served_model FROM traffic ORDER BY created_at")).all()
    engine.dispose()
    assert [row.stream for row in rows] == [False, True]
    assert all(row.tokens_out and row.tokens_out > 0 for row in rows)
    assert all(row.cost_usd == 0.0 for row in rows)  # the local model is priced at zero, not unknown
    assert {row.served_model for row in rows} == {"local/smollm2-135m"}
