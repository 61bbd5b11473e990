"""Cost rollups: incremental sums per hour and day by model, user, feature and key, and their queries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.costs import CostQueryError, cost_by, cost_over_time, record_costs, spent_usd
from core.database import open_database

T0 = datetime(2026, 11, 20, 22, 30, tzinfo=UTC)


def row(at: datetime, cost: float | None, **tags) -> dict:
    return {"created_at": at, "served_model": tags.pop("model", "m1"), "requested_model": None,
            "tokens_in": 10, "tokens_out": 5, "cost_usd": cost, "usage_estimated": tags.pop("estimated", False),
            "user": tags.get("user"), "feature": tags.get("feature"), "key_id": tags.get("key")}


@pytest.fixture
def engine(db_url):
    engine = open_database(db_url)
    yield engine
    engine.dispose()


def test_costs_are_summed_by_every_dimension_across_days(engine):
    rows = [
        row(T0, 0.5, user="ana", feature="chat", key="key_a"),
        row(T0 + timedelta(hours=2), 1.0, user="ana", feature="search", key="key_a", estimated=True),
        row(T0 + timedelta(hours=3), None, model="m2", user="bo"),
        row(T0 + timedelta(days=3), 4.0, user="ana"),
        {**row(T0 + timedelta(days=3), 9.0, user="ana"), "cache_status": "hit"},  # answered from the cache: free
    ]
    with engine.begin() as connection:
        record_costs(connection, rows[:2])
        record_costs(connection, rows[2:])
    since, until = T0 - timedelta(hours=1), T0 + timedelta(days=1)
    by_user = cost_by(engine, "user", since, until)
    assert by_user[0] == {"user": "ana", "requests": 2, "tokens_in": 20, "tokens_out": 10, "cost_usd": 1.5,
                          "estimated": 1, "unpriced": 0}
    assert by_user[1]["user"] == "bo" and by_user[1]["unpriced"] == 1 and by_user[1]["cost_usd"] == 0.0
    by_model = {r["model"]: r["cost_usd"] for r in cost_by(engine, "model", since, until)}
    assert by_model == {"m1": 1.5, "m2": 0.0}
    assert {r["feature"]: r["requests"] for r in cost_by(engine, "feature", since, until)} == {
        "chat": 1, "search": 1, "": 1}
    # A range of whole days plus ragged hours counts each request exactly once.
    assert spent_usd(engine, "user", "ana", T0 - timedelta(days=2), T0 + timedelta(days=5)) == pytest.approx(5.5)
    assert spent_usd(engine, "key", "key_a", T0 + timedelta(hours=1), until) == pytest.approx(1.0)
    days = cost_over_time(engine, "user", T0 - timedelta(days=1), T0 + timedelta(days=4), step="day", value="ana")
    assert [(d["start"].day, d["cost_usd"]) for d in days] == [(20, 0.5), (21, 1.0), (23, 4.0)]
    with pytest.raises(CostQueryError):
        cost_by(engine, "colour", since, until)
