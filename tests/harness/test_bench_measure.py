"""`tollgate bench` measurements over real loopback HTTP against the fake upstream with known delays.

The fake sends the first token `ttft_s` after the request and each later token `inter_token_s` after the one
before. Timings are never compared with thresholds here (a loaded machine stretches or shrinks every one of
them; `benchmarks/` prints figures): the tests check what must hold on any machine — counts, order (queue <=
TTFT <= end-to-end), consistency between fields, and which requests overlap.
"""

from __future__ import annotations

import itertools
import math
import statistics

import numpy as np
import pytest
from scipy import stats as scipy_stats

from harness.bench import BenchPlan, build_workload, poisson_arrivals, run_bench
from harness.bench.stats import SLO, summarize
from sidecar.fake_upstream import FakeBehaviour, start_fake_upstream_thread

TTFT_S, ITL_S, TOKENS = 0.05, 0.01, 10


@pytest.fixture(scope="module")
def fake():
    with start_fake_upstream_thread(FakeBehaviour(ttft_s=TTFT_S, inter_token_s=ITL_S, output_tokens=TOKENS)) as f:
        yield f


def workload(prompt: str = "one two three four five"):
    return build_workload("fake-model", prompt=prompt, max_tokens=64)


def test_sequential_measures_ttft_gaps_tokens_and_e2e(fake):
    run = run_bench(fake.url, workload(), BenchPlan(mode="sequential", requests=6))
    (level,) = run.levels
    assert level.label == "sequential"
    assert [r.index for r in level.records] == list(range(6))
    for record in level.records:
        assert record.ok and record.status == 200, record.error
        assert 0.0 <= record.queue_ms <= record.ttft_ms <= record.e2e_ms
        assert len(record.itl_ms) == TOKENS - 1 and all(gap >= 0.0 for gap in record.itl_ms)
        # The gaps are measured between the tokens that follow the first, so they fit inside the answer.
        assert record.ttft_ms + sum(record.itl_ms) <= record.e2e_ms + 1e-6
        assert record.tokens_out == TOKENS  # from the usage block
        assert record.tokens_in == 5  # the fake counts the prompt's five words
        assert record.tpot_ms == pytest.approx((record.e2e_ms - record.ttft_ms) / (TOKENS - 1))
        assert record.tpot_ms > 0.0
    # Sequential: each request is due only once the one before has finished.
    for before, after in itertools.pairwise(level.records):
        assert after.scheduled_s >= before.scheduled_s + before.e2e_ms / 1e3 - 1e-6
    summary = level.summary
    assert summary["requests"] == 6 and summary["completed"] == 6 and summary["error_rate"] == 0.0
    assert summary["tokens_out"] == 6 * TOKENS
    assert 0.0 < summary["ttft_p50"] <= summary["e2e_p50"] <= summary["e2e_p99"]
    assert summary["itl_p50"] == pytest.approx(statistics.median(g for r in level.records for g in r.itl_ms))
    assert summary["output_tokens_per_s"] == pytest.approx(summary["requests_per_s"] * TOKENS)
    assert summary["goodput"] == 1.0  # no SLO: every successful request counts


def test_the_request_sends_stream_usage_and_max_tokens(fake):
    fake.reset()
    run_bench(fake.url, build_workload("fake-model", prompt="hi there", max_tokens=7), BenchPlan(requests=1))
    body = fake.stats()["recent"][-1]["body"]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["max_tokens"] == 7 and body["messages"] == [{"role": "user", "content": "hi there"}]


def test_sweep_runs_each_level_at_its_concurrency(fake):
    run = run_bench(fake.url, workload(), BenchPlan(mode="sweep", concurrency=(1, 4), requests=8))
    assert [level.label for level in run.levels] == ["c=1", "c=4"]
    for level, width in zip(run.levels, (1, 4), strict=True):
        assert len(level.records) == 8 and all(r.ok for r in level.records)
        assert level.concurrency == width
        assert max_overlap(level.records) == width


def max_overlap(records) -> int:
    """The most requests in flight at once, from each request's [due, end] interval."""
    events = sorted([(r.scheduled_s, 1) for r in records] + [(r.scheduled_s + r.e2e_ms / 1e3, -1) for r in records],
                    key=lambda e: (e[0], e[1]))
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return peak


def test_duration_bounds_a_closed_loop_level(fake):
    run = run_bench(fake.url, workload(), BenchPlan(mode="sequential", duration_s=0.5))
    (level,) = run.levels
    # No request is due after the duration, and the loop is closed: one in flight at a time.
    assert len(level.records) >= 1 and all(r.ok for r in level.records)
    assert all(r.scheduled_s < 0.5 for r in level.records)
    assert max_overlap(level.records) == 1


@pytest.mark.parametrize("rate, duration", [(5.0, 40.0), (50.0, 20.0), (200.0, 10.0)])
def test_poisson_arrivals_count_and_gaps(rate, duration):
    expected = rate * duration
    for seed in range(3):
        arrivals = poisson_arrivals(rate, duration, seed=seed)
        assert abs(len(arrivals) - expected) < 5 * math.sqrt(expected)  # ~5 standard deviations
        assert arrivals == sorted(arrivals) and 0 < arrivals[0] and arrivals[-1] <= duration
        gaps = np.diff([0.0, *arrivals])
        # Exponential gaps of mean 1/rate: a KS test that fails only on a real mistake (p < 1e-4).
        assert scipy_stats.kstest(gaps, "expon", args=(0, 1 / rate)).pvalue > 1e-4
    assert poisson_arrivals(rate, duration, seed=1) == poisson_arrivals(rate, duration, seed=1)
    assert len(poisson_arrivals(rate, duration, limit=7)) == 7


def test_rate_mode_issues_the_drawn_arrivals_on_schedule(fake):
    rate, duration = 40.0, 1.5
    run = run_bench(fake.url, workload(), BenchPlan(mode="rate", rate=rate, duration_s=duration, seed=3))
    (level,) = run.levels
    arrivals = poisson_arrivals(rate, duration, seed=3)
    assert level.label == "rate=40" and level.rate == rate
    assert len(level.records) == len(arrivals)
    assert abs(len(arrivals) - rate * duration) < 5 * math.sqrt(rate * duration)
    assert [r.scheduled_s for r in level.records] == pytest.approx(arrivals)
    assert all(r.ok for r in level.records)
    # Open loop: arrivals do not wait for completions, so requests overlap (each sleeps 140 ms in the fake,
    # and at 40 req/s several arrive within that time; a slower machine only adds overlap).
    assert max_overlap(level.records) > 1


def test_rate_mode_counts_client_queueing_when_concurrency_is_capped(fake):
    # One request in flight, each sleeping 140 ms in the fake: it serves < 7.2 req/s while 20 req/s arrive.
    plan = BenchPlan(mode="rate", rate=20.0, duration_s=1.0, max_concurrency=1, seed=5)
    run = run_bench(fake.url, workload(), plan)
    records = run.levels[0].records
    assert [r.scheduled_s for r in records] == pytest.approx(poisson_arrivals(20.0, 1.0, seed=5))
    for record in records:
        # Latency counts from the due time, so the wait is inside TTFT and end-to-end latency. (No `0 <=`:
        # the event loop's timer may wake a request a fraction of a millisecond before it is due.)
        assert record.queue_ms <= record.ttft_ms <= record.e2e_ms
    # Never two in flight: each request is sent only after the one before it has finished.
    for before, after in itertools.pairwise(records):
        sent = after.scheduled_s + after.queue_ms / 1e3
        assert sent >= before.scheduled_s + before.e2e_ms / 1e3 - 1e-3
    # Arrivals outrun the service, so the wait grows along the run.
    assert records[-1].queue_ms > records[0].queue_ms
    summary = run.levels[0].summary
    assert summary["queue_p99"] >= summary["queue_p50"] > 0
    assert summary["e2e_p50"] >= summary["queue_p50"]


def test_errors_are_recorded_per_request(fake):
    fake.script({"fault": "status", "status": 503}, {"fault": "cut", "cut_after": 2}, {"fault": "garbage"})
    run = run_bench(fake.url, workload(), BenchPlan(requests=4))
    records = run.levels[0].records
    assert records[0].status == 503 and records[0].error.startswith("HTTP 503: fake upstream injected status 503")
    # A stream cut mid-way: the chunked body ends early, after the 200 status.
    assert records[1].status == 200 and records[1].error.startswith("ClientPayloadError")
    assert records[2].error.startswith("stream sent an event that is not JSON")
    assert records[3].ok and records[3].tokens_out == TOKENS
    summary = run.levels[0].summary
    assert summary["errors"] == 3 and summary["error_rate"] == 0.75 and summary["goodput"] == 0.25
    assert summary["ttft_p50"] == pytest.approx(records[3].ttft_ms)  # latencies of successes only


def test_slos_decide_goodput(fake):
    from harness.bench import parse_slos

    slos = parse_slos("ttft_ms=1,e2e_ms=10s")
    run = run_bench(fake.url, workload(), BenchPlan(requests=3), slos=slos)
    (level,) = run.levels
    assert run.meta["slos"] == {"ttft_ms": 1.0, "e2e_ms": 10000.0}
    assert level.summary["goodput"] == summarize(level.records, level.duration_s, slos)["goodput"]
    # Limits set from what was measured, so the verdicts do not depend on how fast this machine is.
    fastest_ttft = min(r.ttft_ms for r in level.records)
    slowest_e2e = max(r.e2e_ms for r in level.records)
    failing = summarize(level.records, level.duration_s, [SLO("ttft_ms", fastest_ttft / 2)])
    passing = summarize(level.records, level.duration_s, [SLO("e2e_ms", slowest_e2e * 2)])
    assert failing["goodput"] == 0.0 and failing["goodput_per_s"] == 0.0
    assert passing["goodput"] == 1.0 and passing["goodput_per_s"] > 0.0


def test_unreachable_endpoint_gives_error_records():
    from tests.conftest import free_port

    run = run_bench(f"http://127.0.0.1:{free_port()}/v1", workload(), BenchPlan(requests=2, timeout_s=5))
    assert [r.status for r in run.levels[0].records] == [0, 0]
    assert all(r.error and r.error.startswith("ClientConnectorError") for r in run.levels[0].records)
    assert math.isnan(run.levels[0].summary["ttft_p50"])
