"""Bench results on disk: JSON and CSV round trips, the run history and named baselines."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from harness.bench import (
    BenchError,
    BenchRun,
    LevelResult,
    RequestRecord,
    load_reference,
    read_csv,
    read_json,
    save_baseline,
    store_run,
    summarize,
    write_csv,
    write_json,
)


def sample_run(ttft: float = 51.25) -> BenchRun:
    records = [
        RequestRecord(index=0, level="c=2", scheduled_s=0.0, queue_ms=0.01, ttft_ms=ttft, e2e_ms=144.5,
                      itl_ms=[10.25, 10.5, 0.003], tokens_in=5, tokens_out=4, status=200),
        RequestRecord(index=1, level="c=2", scheduled_s=0.125, queue_ms=3.5, ttft_ms=None, e2e_ms=2.0,
                      status=503, error="HTTP 503: busy, try later"),
        RequestRecord(index=2, level="c=2", scheduled_s=0.25, queue_ms=0.0, ttft_ms=60.0, e2e_ms=61.0,
                      itl_ms=[], tokens_in=5, tokens_out=1, status=200),
    ]
    created = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)
    level = LevelResult(label="c=2", mode="sweep", concurrency=2, rate=None, duration_s=0.5,
                        summary=summarize(records, 0.5), records=records)
    return BenchRun(meta={"url": "http://x/v1", "mode": "sweep", "created_at": created}, levels=[level])


def test_json_round_trip_keeps_records_summaries_and_nans(tmp_path):
    run = sample_run()
    path = write_json(run, tmp_path / "deep" / "run.json")
    back = read_json(path)
    assert back.records == run.records
    assert back.levels[0].label == "c=2" and back.levels[0].concurrency == 2 and back.levels[0].duration_s == 0.5
    before, after = run.levels[0].summary, back.levels[0].summary
    assert before.keys() == after.keys()
    for key in before:
        assert (math.isnan(before[key]) and math.isnan(after[key])) or before[key] == after[key], key
    assert back.meta["created_at"] == "2025-05-01T12:00:00+00:00"


def test_csv_round_trip_of_request_rows(tmp_path):
    run = sample_run()
    path = write_csv(run, tmp_path / "rows.csv")
    assert read_csv(path) == run.records
    header, first = path.read_text().splitlines()[:2]
    assert header.endswith(",tpot_ms") and first.endswith(f",{(144.5 - 51.25) / 3!r}")


def test_reading_something_else_is_a_one_line_error(tmp_path):
    other = tmp_path / "other.json"
    other.write_text('{"runs": []}')
    with pytest.raises(BenchError, match="not a tollgate bench result"):
        read_json(other)
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(BenchError, match="not valid JSON"):
        read_json(broken)
    csv_file = tmp_path / "x.csv"
    csv_file.write_text("a,b\n1,2\n")
    with pytest.raises(BenchError, match="not a bench CSV"):
        read_csv(csv_file)


def test_history_baselines_and_references(tmp_path):
    now = datetime(2025, 5, 1, 12, 0, 0, tzinfo=UTC)
    first = store_run(sample_run(ttft=1.0), tmp_path, now)
    second = store_run(sample_run(ttft=2.0), tmp_path, now)  # same second: kept beside the first
    assert first.name == "20250501T120000Z.json" and second.name == "20250501T120000Z-2.json"
    assert load_reference("latest", tmp_path).records[0].ttft_ms == 2.0
    named = save_baseline(sample_run(ttft=3.0), tmp_path, "main")
    assert named == tmp_path / "bench" / "baselines" / "main.json"
    assert load_reference("main", tmp_path).records[0].ttft_ms == 3.0
    assert load_reference(str(first), tmp_path).records[0].ttft_ms == 1.0
    with pytest.raises(BenchError, match=r"no bench baseline named 'nope' \(known: main\)"):
        load_reference("nope", tmp_path)
    with pytest.raises(BenchError, match="no such bench results file"):
        load_reference(str(tmp_path / "missing.json"), tmp_path)
    with pytest.raises(BenchError, match="bad baseline name"):
        save_baseline(sample_run(), tmp_path, "../escape")
    with pytest.raises(BenchError, match="no stored bench runs"):
        load_reference("latest", tmp_path / "empty")
