"""The dashboard's reads on their own: dataset export, filters, options and time windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dashboards import queries
from dashboards.queries import TrafficFilter, Window
from harness.datasets import load_dataset
from tests.dashboards.seed import Seeded


def test_exported_selection_loads_as_a_dataset(seeded: Seeded, engine, tmp_path):
    window = Window.last(timedelta(days=1))
    text, skipped = queries.export_dataset(engine, TrafficFilter(window=window, model="model-a", outcome="ok"))
    path = tmp_path / "traffic.jsonl"
    path.write_text(text, encoding="utf-8")
    dataset = load_dataset(path)
    expected = sorted(
        (row for row in seeded.traffic if row["requested_model"] == "model-a" and row["status"] < 400),
        key=lambda row: (row["created_at"], row["id"]), reverse=True,
    )
    assert skipped == 0
    assert [case.id for case in dataset] == [f"traffic-{row['id']}" for row in expected]
    first = dataset.cases[0]
    number = int(expected[0]["id"][1:])
    assert first.inputs == {"messages": [{"role": "user", "content": f"question {number} about [EMAIL]"}]}
    assert first.expected == f"answer {number}"
    assert {"traffic", "model:model-a", "feature:" + expected[0]["feature"]} <= set(first.tags)


def test_failed_or_unparseable_requests_export_without_an_answer_or_not_at_all():
    failed = queries.dataset_case({"id": "x", "request_body": '{"messages": []}', "response_body": None,
                                   "status": 502, "requested_model": "m", "prompt_name": None, "feature": None})
    assert failed == {"id": "traffic-x", "inputs": {"messages": []}, "tags": ["traffic", "model:m"]}
    truncated = {"id": "y", "request_body": '{"messages": [{"role"', "response_body": None, "status": 200}
    assert queries.dataset_case(truncated) is None
    assert queries.answer_text("streamed text") == "streamed text"


def test_arm_filter_selects_each_label_and_unlabelled_traffic(seeded: Seeded, engine):
    window = Window.last(timedelta(days=1))
    for arm in queries.ARMS:
        count, capped = queries.count_traffic(engine, TrafficFilter(window=window, variant=arm))
        assert not capped
        assert count == sum(1 for row in seeded.traffic if (row["variant"] or queries.NO_LABEL) == arm) > 0


def test_filter_options_come_from_the_rollups(seeded: Seeded, engine):
    window = Window.last(timedelta(days=1))
    assert queries.filter_options(engine, "requested_model", window) == ["model-a", "model-b"]
    assert queries.filter_options(engine, "user", window) == ["alice", "bob", "carol"]
    assert queries.filter_options(engine, "prompt_name", window) == ["greet", "triage"]
    assert queries.filter_options(engine, "error_class", window) == ["upstream_error"]


def test_count_stops_at_the_cap(seeded: Seeded, engine):
    window = Window.last(timedelta(days=1))
    assert queries.count_traffic(engine, TrafficFilter(window=window), cap=50) == (50, True)
    assert queries.count_traffic(engine, TrafficFilter(window=window), cap=500) == (len(seeded.traffic), False)


def test_windows_cover_the_span_in_whole_hours():
    now = datetime(2026, 11, 27, 14, 37, 12, tzinfo=UTC)
    window = Window.last(timedelta(days=1), now)
    assert window == Window(datetime(2026, 11, 26, 14, tzinfo=UTC), datetime(2026, 11, 27, 15, tzinfo=UTC))
