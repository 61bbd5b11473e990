"""Budgets (database and config, '*' subjects), soft alerts at thresholds, cost spikes and runaway keys."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import orjson
import pytest

from core.alerts import evaluate_alerts, list_alerts, spike_alerts
from core.budgets import BudgetBook, BudgetError, add_budget, all_limits, list_budgets, window_of
from core.config.access import AccessSettings, BudgetRule
from core.costs import record_costs
from core.database import open_database

NOW = datetime(2026, 11, 27, 15, 20, tzinfo=UTC)


def spend(at: datetime, cost: float, *, user: str | None = None, key: str | None = None, requests: int = 1):
    return [{"created_at": at, "served_model": "m", "tokens_in": 1, "tokens_out": 1, "cost_usd": cost / requests,
             "user": user, "key_id": key} for _ in range(requests)]


@pytest.fixture
def engine(db_url):
    engine = open_database(db_url)
    yield engine
    engine.dispose()


def test_windows_are_utc_days_and_calendar_months():
    day = window_of("daily", NOW)
    assert (day.start, day.end, day.label) == (datetime(2026, 11, 27, tzinfo=UTC), datetime(2026, 11, 28, tzinfo=UTC),
                                               "2026-11-27")
    month = window_of("monthly", datetime(2026, 12, 31, 23, tzinfo=UTC))
    assert (month.start.month, month.end.year, month.end.month, month.label) == (12, 2027, 1, "2026-12")


def test_named_budgets_override_every_subject_budgets(engine):
    add_budget(engine, "user", "ana", "daily", 2.0)
    add_budget(engine, "user", "ana", "daily", 3.0)  # same scope, subject, period: the limit changes
    assert [(b.subject, b.limit_usd) for b in list_budgets(engine)] == [("ana", 3.0)]
    rules = [BudgetRule(scope="user", subject="*", period="daily", limit_usd=1.0),
             BudgetRule(scope="feature", subject="chat", period="monthly", limit_usd=50.0)]
    book = BudgetBook(all_limits(engine, rules))
    applying = {(limit.scope, subject, limit.limit_usd) for limit, subject in
                book.applying({"key": None, "user": "ana", "feature": "chat"})}
    assert applying == {("user", "ana", 3.0), ("feature", "chat", 50.0)}
    assert {(s, limit.limit_usd) for limit, s in book.applying({"user": "bo"})} == {("bo", 1.0)}
    with pytest.raises(BudgetError):
        add_budget(engine, "team", "x", "daily", 1.0)
    with pytest.raises(BudgetError):
        add_budget(engine, "user", "x", "weekly", 1.0)


def test_soft_alerts_fire_once_per_threshold_and_window(engine):
    add_budget(engine, "user", "ana", "daily", 10.0)
    settings = AccessSettings(alert_thresholds=[0.5, 0.8, 1.0],
                              budgets=[BudgetRule(scope="key", subject="*", period="monthly", limit_usd=4.0)])
    with engine.begin() as connection:
        record_costs(connection, spend(NOW - timedelta(hours=1), 6.0, user="ana", key="key_a"))
    fresh = evaluate_alerts(engine, settings, NOW)
    assert sorted((a["scope"], a["subject"], a["threshold"]) for a in fresh) == [
        ("key", "key_a", 2.0), ("key", "key_a", 3.2), ("key", "key_a", 4.0), ("user", "ana", 5.0)]
    assert any("spent its monthly budget of $4" in a["message"] for a in fresh)
    assert evaluate_alerts(engine, settings, NOW) == []  # recorded once
    with engine.begin() as connection:
        record_costs(connection, spend(NOW, 3.0, user="ana"))
    fresh = [a for a in evaluate_alerts(engine, settings, NOW) if a["kind"] == "budget"]
    assert [(a["subject"], a["threshold"]) for a in fresh] == [("ana", 8.0)]
    # Yesterday's spend does not count towards today's budget.
    tomorrow = NOW + timedelta(days=1)
    assert [a for a in evaluate_alerts(engine, settings, tomorrow) if a["scope"] == "user"] == []
    assert len(list_alerts(engine, kind="budget")) == 5


def test_an_hour_far_above_its_trailing_median_is_a_spike(engine):
    settings = AccessSettings(spike_factor=3.0, spike_min_usd=1.0, spike_window_hours=24)
    with engine.begin() as connection:
        for hours_ago in range(1, 25):
            record_costs(connection, spend(NOW - timedelta(hours=hours_ago), 1.0))
        record_costs(connection, spend(NOW, 2.5))
    assert [a for a in spike_alerts(engine, settings, NOW) if a["kind"] == "spike"] == []  # 2.5 < 3 x 1.0
    with engine.begin() as connection:
        record_costs(connection, spend(NOW, 1.0))
    spikes = [a for a in spike_alerts(engine, settings, NOW) if a["kind"] == "spike"]
    assert len(spikes) == 1 and spikes[0]["value"] == pytest.approx(3.5) and spikes[0]["threshold"] == 3.0
    assert "3.5x the trailing 24-hour median" in spikes[0]["message"]


def test_no_history_means_no_spike_but_a_runaway_key_is_caught(engine):
    settings = AccessSettings(runaway_factor=10, runaway_min_requests=50)
    with engine.begin() as connection:
        record_costs(connection, spend(NOW, 100.0))  # first hour ever: nothing to compare with
    assert spike_alerts(engine, settings, NOW) == []
    with engine.begin() as connection:
        for hours_ago in range(1, 25):
            record_costs(connection, spend(NOW - timedelta(hours=hours_ago), 0.01, key="key_loop", requests=4))
            record_costs(connection, spend(NOW - timedelta(hours=hours_ago), 0.01, key="key_busy", requests=40))
        record_costs(connection, spend(NOW, 0.5, key="key_loop", requests=60))  # 15x its usual hour
        record_costs(connection, spend(NOW, 0.5, key="key_busy", requests=60))  # 1.5x: busy, not runaway
    alerts = spike_alerts(engine, settings, NOW)
    assert [(a["subject"], a["value"]) for a in alerts if a["kind"] == "runaway_key"] == [("key_loop", 60.0)]
    assert [a["value"] for a in alerts if a["kind"] == "spike"] == [pytest.approx(101.0)]


def test_new_alerts_are_posted_to_the_webhook(engine, monkeypatch):
    received: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(orjson.loads(self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            return None

    server = HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("TEST_ALERT_HOOK", f"http://127.0.0.1:{server.server_port}/hook")
        settings = AccessSettings(webhook_url_env="TEST_ALERT_HOOK", alert_thresholds=[1.0],
                                  budgets=[BudgetRule(scope="user", subject="ana", limit_usd=1.0)])
        with engine.begin() as connection:
            record_costs(connection, spend(NOW, 1.5, user="ana"))
        fresh = evaluate_alerts(engine, settings, NOW)
        assert [a["delivered"] for a in fresh] == ["HTTP 204"]
        assert received[0]["kind"] == "budget" and received[0]["subject"] == "ana" and received[0]["value"] == 1.5
        assert list_alerts(engine)[0].delivered == "HTTP 204"
        assert evaluate_alerts(engine, settings, NOW) == [] and len(received) == 1
    finally:
        server.shutdown()
        server.server_close()
