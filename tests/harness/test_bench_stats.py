"""Bench aggregates, SLOs, goodput, regression rules and workloads: pure functions on known inputs."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest

from harness.bench import (
    METRICS,
    SLO,
    BenchError,
    BenchPlan,
    BenchRun,
    LevelResult,
    RequestRecord,
    build_workload,
    compare_runs,
    describe,
    parse_rule,
    parse_rules,
    parse_slos,
    report_only_rules,
    summarize,
)
from harness.datasets import DatasetError


def rec(index: int, ttft: float | None = 100.0, e2e: float | None = 1000.0, tokens: int | None = 10,
        itl: list[float] | None = None, queue: float = 0.0, error: str | None = None) -> RequestRecord:
    return RequestRecord(index=index, level="L", scheduled_s=index * 0.1, queue_ms=queue, ttft_ms=ttft, e2e_ms=e2e,
                         itl_ms=itl or [], tokens_in=5, tokens_out=tokens, status=500 if error else 200, error=error)


def test_describe_matches_numpy_linear_percentiles():
    values = [float(v) for v in range(1, 101)]
    out = describe(values)
    assert out["mean"] == 50.5
    assert out["p50"] == 50.5 and out["p90"] == pytest.approx(90.1) and out["p99"] == pytest.approx(99.01)
    assert out["p95"] == pytest.approx(float(np.percentile(values, 95)))
    assert all(math.isnan(v) for v in describe([]).values())


def test_tpot_and_longest_gap():
    record = rec(0, ttft=100.0, e2e=1000.0, tokens=10, itl=[50.0, 250.0])
    assert record.tpot_ms == 100.0 and record.itl_max_ms == 250.0
    assert rec(0, tokens=1).tpot_ms is None and rec(0, ttft=None).tpot_ms is None


def test_summarize_counts_throughput_errors_and_goodput():
    records = [
        rec(0, ttft=100.0, e2e=1000.0, itl=[10.0, 20.0]),
        rec(1, ttft=300.0, e2e=2000.0, itl=[30.0]),
        rec(2, ttft=900.0, e2e=1500.0, queue=700.0),
        rec(3, ttft=None, e2e=5.0, tokens=None, error="HTTP 500: x"),
    ]
    s = summarize(records, duration_s=2.0, slos=parse_slos("ttft_ms=500,e2e_ms=1800"))
    assert set(s) == METRICS
    assert (s["requests"], s["completed"], s["errors"], s["error_rate"]) == (4, 3, 1, 0.25)
    assert s["requests_per_s"] == 1.5 and s["output_tokens_per_s"] == 15.0 and s["tokens_in"] == 15
    assert s["ttft_p50"] == 300.0 and s["e2e_mean"] == 1500.0  # successes only: the error's 5 ms is left out
    assert s["itl_mean"] == 20.0  # the gaps of all requests pooled
    assert s["queue_p50"] == 0.0 and s["queue_mean"] == 175.0  # queueing counts every request
    # Only request 0 meets both SLOs (1 has e2e 2000 > 1800, 2 has TTFT 900 > 500, 3 failed).
    assert s["goodput"] == 0.25 and s["goodput_per_s"] == 0.5


def test_summarize_without_slos_counts_every_success_as_good():
    s = summarize([rec(0), rec(1, error="boom")], duration_s=1.0)
    assert s["goodput"] == 0.5
    assert math.isnan(summarize([], duration_s=0.0)["goodput"])


def test_slo_parsing():
    assert parse_slos("ttft_ms=500, e2e_ms=5s,tpot_ms=20ms") == (
        SLO("ttft_ms", 500.0), SLO("e2e_ms", 5000.0), SLO("tpot_ms", 20.0))
    assert parse_slos(None) == () and parse_slos(" ") == ()
    assert SLO("itl_ms", 100.0).met(rec(0, itl=[50.0, 99.0])) and not SLO("itl_ms", 100.0).met(rec(0, itl=[101.0]))
    assert SLO("tpot_ms", 1.0).met(rec(0, tokens=1))  # no TPOT: not held to it
    for bad, why in [("ttft=5", "NAME=MILLISECONDS"), ("ttft_ms", "NAME=MILLISECONDS"),
                     ("ttft_ms=fast", "not a number"), ("e2e_ms=-1", "positive")]:
        with pytest.raises(BenchError, match=why):
            parse_slos(bad)


def test_rules_parse_percent_absolute_and_direction():
    rule = parse_rule("ttft_p99:+10%")
    assert (rule.metric, rule.rise, rule.amount, rule.relative) == ("ttft_p99", True, pytest.approx(0.1), True)
    assert parse_rule("ttft_p99:+20ms").amount == 20.0 and not parse_rule("ttft_p99:+20ms").relative
    assert parse_rule("e2e_p50:+0.5s").amount == 500.0
    assert parse_rule("goodput:-5%").rise is False
    # Without a sign the bad direction of the metric is watched.
    assert parse_rule("e2e_p50:5%").rise is True and parse_rule("requests_per_s:5%").rise is False
    assert [r.metric for r in parse_rules("ttft_p99:+10%, e2e_p50:+5%,goodput:-5%")] == [
        "ttft_p99", "e2e_p50", "goodput"]
    assert parse_rules("") == ()


@pytest.mark.parametrize("text, message", [
    ("ttft_p99", "use METRIC"), ("ttft_p99:+ten%", "use METRIC"), ("ttft_p42:+10%", "unknown metric"),
    ("goodput:-5ms", "not a latency"), ("nonsense:+1", "unknown metric"),
])
def test_bad_rules_raise_one_line(text, message):
    with pytest.raises(BenchError, match=message) as info:
        parse_rule(text)
    assert "\n" not in str(info.value)


def test_rule_fails_only_past_the_tolerance():
    rise = parse_rule("ttft_p99:+10%")
    assert not rise.fails({"ttft_p99": 110.0}, {"ttft_p99": 100.0})
    assert rise.fails({"ttft_p99": 110.5}, {"ttft_p99": 100.0})
    assert not rise.fails({"ttft_p99": 10.0}, {"ttft_p99": 100.0})  # getting faster never fails
    absolute = parse_rule("ttft_p99:+20ms")
    assert not absolute.fails({"ttft_p99": 120.0}, {"ttft_p99": 100.0})
    assert absolute.fails({"ttft_p99": 120.1}, {"ttft_p99": 100.0})
    fall = parse_rule("goodput:-5%")
    assert not fall.fails({"goodput": 0.95}, {"goodput": 1.0}) and fall.fails({"goodput": 0.94}, {"goodput": 1.0})
    assert not fall.fails({"goodput": 1.0}, {"goodput": 0.5})
    absolute_fall = parse_rule("goodput:-0.05")
    assert absolute_fall.fails({"goodput": 0.5}, {"goodput": 0.6})
    # No data on either side never fails.
    assert not rise.fails({"ttft_p99": math.nan}, {"ttft_p99": 100.0}) and not rise.fails({}, {"ttft_p99": 1.0})
    # A zero baseline with a percentage: any rise fails.
    assert parse_rule("error_rate:+10%").fails({"error_rate": 0.01}, {"error_rate": 0.0})


def level(label: str, **summary: float) -> LevelResult:
    return LevelResult(label=label, mode="sweep", concurrency=1, rate=None, duration_s=1.0, summary=dict(summary))


def test_compare_runs_matches_levels_by_label():
    current = BenchRun(meta={}, levels=[level("c=1", ttft_p99=130.0), level("c=4", ttft_p99=100.0),
                                        level("c=16", ttft_p99=1.0)])
    baseline = BenchRun(meta={}, levels=[level("c=1", ttft_p99=100.0), level("c=4", ttft_p99=100.0)])
    comparison = compare_runs(current, baseline, parse_rules("ttft_p99:+10%"))
    assert [(o.level, o.failed) for o in comparison.outcomes] == [("c=1", True), ("c=4", False)]
    assert comparison.failed and comparison.unmatched == ("c=16",)
    lines = comparison.lines()
    assert "REGRESSION" in lines[0] and "+30.0%" in lines[0] and lines[1].endswith("ok")
    assert "not in the baseline" in lines[2]
    informational = compare_runs(current, baseline, report_only_rules(("ttft_p99",)))
    assert not informational.failed and "+30.0%" in informational.lines()[0]


def test_workload_bodies_and_dataset_files(tmp_path):
    fixed = build_workload("m", prompt="hello", max_tokens=9, params={"temperature": 0})
    body = orjson.loads(fixed.body(5))
    assert body == {"temperature": 0, "model": "m", "messages": [{"role": "user", "content": "hello"}],
                    "stream": True, "stream_options": {"include_usage": True}, "max_tokens": 9}
    text = tmp_path / "prompts.txt"
    text.write_text("first\n\nsecond\n")
    from_text = build_workload("m", dataset=text)
    assert [orjson.loads(b)["messages"][0]["content"] for b in from_text.bodies] == ["first", "second"]
    assert orjson.loads(from_text.body(3))["messages"][0]["content"] == "second"  # cycled
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"prompt": "p1", "max_tokens": 3}\n'
                    '{"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]}\n'
                    '{"inputs": {"question": "q"}, "expected": "x"}\n'
                    '{"prompt": "p1", "max_tokens": 3}\n')  # a load test may repeat a row
    from_rows = build_workload("m", dataset=rows, max_tokens=50)
    first, second, third, fourth = (orjson.loads(b) for b in from_rows.bodies)
    assert third["messages"] == [{"role": "user", "content": "q"}] and fourth == first
    assert first["max_tokens"] == 3 and first["messages"] == [{"role": "user", "content": "p1"}]
    assert second["max_tokens"] == 50 and len(second["messages"]) == 2
    assert from_rows.describe()["distinct_requests"] == 4
    table = tmp_path / "rows.csv"
    table.write_text("prompt,max_tokens\nc1,4\nc2,\n")
    from_csv = [orjson.loads(b) for b in build_workload("m", dataset=table, max_tokens=8).bodies]
    assert [(b["messages"][0]["content"], b["max_tokens"]) for b in from_csv] == [("c1", 4), ("c2", 8)]


def test_workload_errors(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"answer": 1}\n')
    with pytest.raises(BenchError, match=r"bad.jsonl:1: no prompt"):
        build_workload("m", dataset=bad)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n")
    with pytest.raises(BenchError, match="no prompts"):
        build_workload("m", dataset=empty)
    with pytest.raises(BenchError, match="either a prompt or a dataset"):
        build_workload("m", prompt="x", dataset=empty)
    with pytest.raises(BenchError, match="max tokens"):
        build_workload("m", max_tokens=0)
    with pytest.raises(BenchError, match="cannot read prompts"):
        build_workload("m", dataset=tmp_path / "missing.jsonl")
    with pytest.raises(DatasetError, match="no such dataset"):
        build_workload("m", dataset=tmp_path / "missing.csv")
    not_json = tmp_path / "not.jsonl"
    not_json.write_text('{"prompt": "a"}\n[1]\n')
    with pytest.raises(BenchError, match=r"not.jsonl:2: each line must be a JSON object"):
        build_workload("m", dataset=not_json)


@pytest.mark.parametrize("plan, message", [
    (BenchPlan(mode="rate"), "needs --rate"),
    (BenchPlan(mode="burst"), "unknown mode"),
    (BenchPlan(requests=0), "at least 1"),
    (BenchPlan(duration_s=-1.0), "positive number"),
    (BenchPlan(mode="sweep", concurrency=(4, 0)), "at least 1"),
])
def test_bad_plans_are_rejected(plan, message):
    with pytest.raises(BenchError, match=message):
        plan.checked()


def test_plan_defaults():
    assert BenchPlan().checked().requests == 50
    rate = BenchPlan(mode="rate", rate=2.0).checked()
    assert rate.duration_s == 10.0 and rate.requests is None and rate.connections == 256
    assert BenchPlan(mode="sequential", concurrency=(8,)).checked().concurrency == (1,)
    assert BenchPlan(mode="sweep", concurrency=(1, 16, 4)).checked().connections == 16
