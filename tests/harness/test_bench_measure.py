"""`tollgate bench` measurements over real loopback HTTP against the fake upstream with known delays.

The fake sends the first token `ttft_s` after the request and each later token `inter_token_s` after the one
before, so the sleeps give hard lower bounds; upper bounds are deliberately generous (the machine is shared).
"""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from scipy import stats as scipy_stats

from harness.bench import BenchPlan, build_workload, poisson_arrivals, run_bench
from sidecar.fake_upstream import FakeBehaviour, start_fake_upstream_thread

TTFT_S, ITL_S, TOKENS = 0.05, 0.01, 10
# The least a whole answer can take: the first token's wait plus nine gaps.
MIN_E2E_MS = (TTFT_S + (TOKENS - 1) * ITL_S) * 1e3
SLACK_MS = 200.0


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
        assert TTFT_S * 1e3 <= record.ttft_ms < TTFT_S * 1e3 + SLACK_MS
        assert len(record.itl_ms) == TOKENS - 1
        assert statistics.median(record.itl_ms) >= ITL_S * 1e3
        assert record.tokens_out == TOKENS  # from the usage block
        assert record.tokens_in == 5  # the fake counts the prompt's five words
        assert MIN_E2E_MS <= record.e2e_ms < MIN_E2E_MS + SLACK_MS
        assert record.tpot_ms == pytest.approx((record.e2e_ms - record.ttft_ms) / (TOKENS - 1))
        assert record.tpot_ms >= ITL_S * 1e3
        assert 0.0 <= record.queue_ms < SLACK_MS  # a closed loop sends when the request is due
    summary = level.summary
    assert summary["requests"] == 6 and summary["completed"] == 6 and summary["error_rate"] == 0.0
    assert summary["tokens_out"] == 6 * TOKENS
    assert summary["ttft_p50"] >= TTFT_S * 1e3 and summary["itl_p50"] >= ITL_S * 1e3
    assert summary["e2e_p99"] >= MIN_E2E_MS
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
    # Each request takes at least MIN_E2E_MS, so no more than this many fit in 0.5 s (one may start at the end).
    assert 1 <= len(level.records) <= math.floor(500 / MIN_E2E_MS) + 1
    assert all(r.scheduled_s < 0.5 for r in level.records)


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
    # Open loop: arrivals do not wait for completions, so requests overlap (each takes >= 140 ms, and
    # at 40 req/s several arrive within that time).
    assert max_overlap(level.records) > 1


def test_rate_mode_counts_client_queueing_when_concurrency_is_capped(fake):
    # One request in flight, each taking >= 140 ms: the fake serves < 7.2 req/s while 20 req/s arrive.
    run = run_bench(fake.url, workload(), BenchPlan(mode="rate", rate=20.0, duration_s=1.0, max_concurrency=1))
    records = run.levels[0].records
    assert len(records) >= 5
    first_send = records[0].scheduled_s + records[0].queue_ms / 1e3
    for k, record in enumerate(records):
        # Request k cannot be sent before k earlier requests of >= MIN_E2E_MS each have finished.
        bound_ms = (first_send + k * MIN_E2E_MS / 1e3 - record.scheduled_s) * 1e3
        assert record.queue_ms >= bound_ms - 1.0
        # Latency counts from the due time, so the wait is inside TTFT and end-to-end latency.
        assert record.ttft_ms >= record.queue_ms + TTFT_S * 1e3
        assert record.e2e_ms >= record.queue_ms + MIN_E2E_MS
    assert records[-1].queue_ms > 100.0  # guaranteed by the bound above once k * 140 ms outruns arrivals
    summary = run.levels[0].summary
    assert summary["queue_p99"] >= summary["queue_p50"] > 0
    assert summary["e2e_p50"] >= summary["queue_p50"] + MIN_E2E_MS - 1.0


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

    # Every TTFT is >= 50 ms, so a 1 ms TTFT SLO fails all of them; a 10 s end-to-end SLO fails none.
    failing = run_bench(fake.url, workload(), BenchPlan(requests=3), slos=parse_slos("ttft_ms=1"))
    passing = run_bench(fake.url, workload(), BenchPlan(requests=3), slos=parse_slos("e2e_ms=10s"))
    assert failing.levels[0].summary["goodput"] == 0.0 and failing.levels[0].summary["goodput_per_s"] == 0.0
    assert passing.levels[0].summary["goodput"] == 1.0
    assert failing.meta["slos"] == {"ttft_ms": 1.0} and passing.meta["slos"] == {"e2e_ms": 10000.0}


def test_unreachable_endpoint_gives_error_records():
    from tests.conftest import free_port

    run = run_bench(f"http://127.0.0.1:{free_port()}/v1", workload(), BenchPlan(requests=2, timeout_s=5))
    assert [r.status for r in run.levels[0].records] == [0, 0]
    assert all(r.error and r.error.startswith("ClientConnectorError") for r in run.levels[0].records)
    assert math.isnan(run.levels[0].summary["ttft_p50"])
