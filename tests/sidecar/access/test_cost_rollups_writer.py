"""Cost rollups kept by the traffic writer: from the rows actually inserted, so a re-sent batch counts once."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from core.costs import cost_by
from core.database import open_database
from sidecar.traffic import TrafficLog
from tests.sidecar.test_traffic_finaliser import chat_raw, make_settings


def test_a_resent_batch_adds_nothing_to_the_cost_rollups(tmp_path, db_url):
    raws = [replace(chat_raw(index), user="ana" if index % 2 else "bo", row_id=f"cost-{index}") for index in range(40)]
    log = TrafficLog(make_settings(tmp_path, db_url))
    try:
        log.write(raws)
        log.write(raws[:15])  # re-sent after a lost acknowledgement: same row ids
    finally:
        log.close()
    engine = open_database(db_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.text('SELECT "user", cost_usd, tokens_in FROM traffic')).all()
        now = datetime.now(UTC)
        by_user = {row["user"]: row for row in cost_by(engine, "user", now - timedelta(days=2), now + timedelta(hours=1))}
    finally:
        engine.dispose()
    assert len(rows) == 40
    for user in ("ana", "bo"):
        mine = [row for row in rows if row.user == user]
        assert by_user[user]["requests"] == len(mine) == 20
        assert by_user[user]["cost_usd"] == pytest.approx(sum(row.cost_usd for row in mine))
        assert by_user[user]["tokens_in"] == sum(row.tokens_in for row in mine)
